-- 0004_audit_log: the append-only, hash-chained audit log (PRD §6.1 table 4,
-- NFR-5), its chain head, and retention checkpoints.
--
-- Chain.  Every row gets, in a BEFORE INSERT trigger, the next sequence
-- number seq (1, 2, 3, ... without gaps: a rolled-back insert rolls the head
-- back too), prev_hash (the hash of row seq - 1; 64 zeros before row 1) and
--
--   hash = lower hex SHA-256 of the UTF-8 bytes of
--          "vetsync-audit-v1\n" || F(seq) || F(prev_hash) || F(id)
--          || F(timestamp) || F(created_at) || F(user_id) || F(clinic_id)
--          || F(actor) || F(action) || F(status) || F(ip_address)
--          || F(session_id) || F(policy_hash) || F(error_details)
--          || F(metadata)
--
-- where F(NULL) = "~" and F(v) = <byte length of v in decimal> ":" v ","
-- (a netstring) of the text of v: seq in decimal, uuids in their usual
-- lowercase form, times as YYYY-MM-DDTHH:MM:SS.ffffffZ in UTC, ip_address
-- as inet's text cast (address/masklen), jsonb in PostgreSQL's normalised
-- output.  vetsync_audit_canonical() is that encoding; supervisor/auditlog.c
-- computes it again, independently, to verify.
--
-- The trigger takes the single row of idexx_sync_audit_chain FOR UPDATE, so
-- writers from any number of sessions and instances append to one chain, one
-- at a time, in commit order.  "timestamp" is when the event happened (the
-- writer may set it: events replayed from the spool keep their time);
-- created_at is when the row joined the chain, set here, and only the
-- table's owner may backdate it (vetsync.audit_backdate = on; for imports
-- and tests).
--
-- Append-only.  A trigger refuses UPDATE, DELETE and TRUNCATE, whoever asks
-- (the owner too); the one exception is vetsync_audit_retain(), which runs
-- as the owner and sets vetsync.audit_retention for its own transaction.
-- The same holds for the checkpoints, and the chain head moves only with an
-- append.  A superuser can still disable triggers (session_replication_role
-- = replica): that is what verification is for.
--
-- Retention (6 years, NFR-5).  vetsync_audit_retain() deletes the oldest
-- rows, always a prefix of the chain (every row before the first one that
-- is younger than the cutoff), and records a checkpoint: the seq and hash of
-- the last row it deleted.  Verification starts from the latest checkpoint.
--
-- user_id has no foreign key: deleting a user must not delete (or be
-- blocked by) its audit trail.  Rows of a pre-existing PRD table that lack
-- a seq stay outside the chain.

create table if not exists idexx_sync_audit_log (
	id uuid primary key default gen_random_uuid(),
	"timestamp" timestamptz default now(),
	user_id uuid,
	action text not null,
	status text,
	ip_address inet,
	session_id text,
	error_details jsonb,
	metadata jsonb
);
alter table idexx_sync_audit_log add column if not exists seq bigint;
alter table idexx_sync_audit_log add column if not exists prev_hash text;
alter table idexx_sync_audit_log add column if not exists hash text;
alter table idexx_sync_audit_log add column if not exists created_at
    timestamptz not null default now();
alter table idexx_sync_audit_log add column if not exists clinic_id uuid;
alter table idexx_sync_audit_log add column if not exists actor text;
alter table idexx_sync_audit_log add column if not exists policy_hash text;

create unique index if not exists idexx_sync_audit_log_seq_idx
    on idexx_sync_audit_log (seq);
create index if not exists idexx_sync_audit_log_created_idx
    on idexx_sync_audit_log (created_at);
create index if not exists idexx_sync_audit_log_user_idx
    on idexx_sync_audit_log (user_id, created_at desc);

create table idexx_sync_audit_chain (
	singleton boolean primary key default true check (singleton),
	seq bigint not null,
	hash text not null
);
insert into idexx_sync_audit_chain (seq, hash) values (0, repeat('0', 64));

create table idexx_sync_audit_checkpoints (
	id bigint generated always as identity primary key,
	created_at timestamptz not null default now(),
	cutoff timestamptz not null,
	through_seq bigint not null,
	through_hash text not null,
	rows_deleted bigint not null
);

create function vetsync_audit_field(v text) returns text
    language sql immutable
as $$
	select case when v is null then '~'
	    else octet_length(v)::text || ':' || v || ',' end
$$;

create function vetsync_audit_time(t timestamptz) returns text
    language sql stable
as $$
	select to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

create function vetsync_audit_canonical(r idexx_sync_audit_log) returns text
    language sql stable
    set search_path = pg_catalog, public
as $$
	select 'vetsync-audit-v1' || chr(10)
	    || vetsync_audit_field(r.seq::text)
	    || vetsync_audit_field(r.prev_hash)
	    || vetsync_audit_field(r.id::text)
	    || vetsync_audit_field(vetsync_audit_time(r."timestamp"))
	    || vetsync_audit_field(vetsync_audit_time(r.created_at))
	    || vetsync_audit_field(r.user_id::text)
	    || vetsync_audit_field(r.clinic_id::text)
	    || vetsync_audit_field(r.actor)
	    || vetsync_audit_field(r.action)
	    || vetsync_audit_field(r.status)
	    || vetsync_audit_field(r.ip_address::text)
	    || vetsync_audit_field(r.session_id)
	    || vetsync_audit_field(r.policy_hash)
	    || vetsync_audit_field(r.error_details::text)
	    || vetsync_audit_field(r.metadata::text)
$$;

create function vetsync_audit_hash(r idexx_sync_audit_log) returns text
    language sql stable
    set search_path = pg_catalog, public
as $$
	select encode(sha256(convert_to(vetsync_audit_canonical(r), 'UTF8')),
	    'hex')
$$;

-- First of the two BEFORE INSERT triggers (they fire in name order): runs
-- as the caller, so it can tell whether the caller owns the table.
create function vetsync_audit_stamp() returns trigger
    language plpgsql
as $$
begin
	if new.created_at is null
	    or coalesce(current_setting('vetsync.audit_backdate', true), '')
	    <> 'on'
	    or current_user <> (select pg_get_userbyid(relowner) from pg_class
	    where oid = tg_relid) then
		new.created_at := now();
	end if;
	if new."timestamp" is null then
		new."timestamp" := new.created_at;
	end if;
	return new;
end
$$;

-- Second: links the row into the chain.  SECURITY DEFINER, as the chain head
-- is no writer's to touch.
create function vetsync_audit_link() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, public
as $$
declare
	head record;
begin
	select seq, hash into head from public.idexx_sync_audit_chain
	    for update;
	if not found then
		raise exception
		    'idexx_sync_audit_chain: the chain head is missing';
	end if;
	new.seq := head.seq + 1;
	new.prev_hash := head.hash;
	if new.id is null then
		new.id := gen_random_uuid();
	end if;
	new.hash := public.vetsync_audit_hash(new);
	update public.idexx_sync_audit_chain set seq = new.seq, hash = new.hash;
	return new;
end
$$;

create function vetsync_audit_refuse() returns trigger
    language plpgsql
as $$
begin
	if tg_op = 'DELETE' and tg_table_name = 'idexx_sync_audit_log'
	    and coalesce(current_setting('vetsync.audit_retention', true), '')
	    = 'on'
	    and current_user = (select pg_get_userbyid(relowner) from pg_class
	    where oid = tg_relid) then
		return null;
	end if;
	raise exception '%: rows are append-only; % refused', tg_table_name,
	    tg_op
	    using errcode = 'insufficient_privilege';
end
$$;

-- The chain head moves only from inside vetsync_audit_link() (a trigger
-- fired by a trigger), never by a statement of its own.
create function vetsync_audit_head_guard() returns trigger
    language plpgsql
as $$
begin
	if tg_op = 'UPDATE' and pg_trigger_depth() > 1 then
		return null;
	end if;
	raise exception
	    '%: the chain head moves only with an append; % refused',
	    tg_table_name, tg_op using errcode = 'insufficient_privilege';
end
$$;

create trigger vetsync_audit_1_stamp before insert on idexx_sync_audit_log
    for each row execute function vetsync_audit_stamp();
create trigger vetsync_audit_2_link before insert on idexx_sync_audit_log
    for each row execute function vetsync_audit_link();
-- Statement triggers: refused even when no row matches.
create trigger vetsync_audit_refuse before update or delete or truncate
    on idexx_sync_audit_log
    for each statement execute function vetsync_audit_refuse();
create trigger vetsync_audit_head_guard before update or delete or truncate
    on idexx_sync_audit_chain
    for each statement execute function vetsync_audit_head_guard();
create trigger vetsync_audit_refuse before update or delete or truncate
    on idexx_sync_audit_checkpoints
    for each statement execute function vetsync_audit_refuse();

-- Delete the rows older than keep (at least 6 years), as a prefix of the
-- chain, and record a checkpoint.  Returns how many rows went and the seq
-- of the last (NULL when none did).
create function vetsync_audit_retain(keep interval default interval '6 years',
    out rows_deleted bigint, out through_seq bigint)
    language plpgsql
    security definer
    set search_path = pg_catalog, public
as $$
declare
	cutoff timestamptz;
	first_kept bigint;
	last record;
begin
	if keep < interval '6 years' then
		raise exception 'audit retention: keeping % is less than '
		    'the 6 years required', keep
		    using errcode = 'invalid_parameter_value';
	end if;
	cutoff := now() - keep;
	-- No writer may link a row while the prefix is cut.
	perform 1 from public.idexx_sync_audit_chain for update;
	select min(seq) into first_kept from public.idexx_sync_audit_log
	    where seq is not null and created_at >= cutoff;
	select seq, hash into last from public.idexx_sync_audit_log
	    where seq is not null and (first_kept is null or seq < first_kept)
	    order by seq desc limit 1;
	if not found then
		rows_deleted := 0;
		through_seq := null;
		return;
	end if;
	perform set_config('vetsync.audit_retention', 'on', true);
	delete from public.idexx_sync_audit_log where seq <= last.seq;
	get diagnostics rows_deleted = row_count;
	perform set_config('vetsync.audit_retention', 'off', true);
	insert into public.idexx_sync_audit_checkpoints (cutoff, through_seq,
	    through_hash, rows_deleted)
	    values (cutoff, last.seq, last.hash, rows_deleted);
	through_seq := last.seq;
end
$$;

revoke all on function vetsync_audit_retain(interval) from public;
grant execute on function vetsync_audit_retain(interval) to service_role;

-- RLS.  The owner's own policies serve the SECURITY DEFINER functions,
-- should the owner be subject to RLS (FORCE, without BYPASSRLS).
alter table idexx_sync_audit_log enable row level security;
alter table idexx_sync_audit_log force row level security;
alter table idexx_sync_audit_chain enable row level security;
alter table idexx_sync_audit_chain force row level security;
alter table idexx_sync_audit_checkpoints enable row level security;
alter table idexx_sync_audit_checkpoints force row level security;

revoke all on idexx_sync_audit_log, idexx_sync_audit_chain,
    idexx_sync_audit_checkpoints
    from public, anon, authenticated, service_role, vetsync_tenant;

create policy vetsync_audit_own on idexx_sync_audit_log for select
    to authenticated using (user_id = (select auth.uid()));
create policy vetsync_audit_tenant on idexx_sync_audit_log for insert
    to vetsync_tenant with check (user_id = (select auth.uid()));
create policy vetsync_audit_service_read on idexx_sync_audit_log for select
    to service_role using (true);
create policy vetsync_audit_service_append on idexx_sync_audit_log
    for insert to service_role with check (true);
create policy vetsync_chain_service on idexx_sync_audit_chain for select
    to service_role using (true);
create policy vetsync_checkpoints_service on idexx_sync_audit_checkpoints
    for select to service_role using (true);

do $$
begin
	execute format('create policy vetsync_audit_owner on '
	    'idexx_sync_audit_log for all to %I using (true) with check (true)',
	    current_user);
	execute format('create policy vetsync_chain_owner on '
	    'idexx_sync_audit_chain for all to %I using (true) '
	    'with check (true)',
	    current_user);
	execute format('create policy vetsync_checkpoints_owner on '
	    'idexx_sync_audit_checkpoints for all to %I using (true) '
	    'with check (true)', current_user);
end
$$;

grant select on idexx_sync_audit_log to authenticated, service_role;
grant insert on idexx_sync_audit_log to vetsync_tenant, service_role;
grant select on idexx_sync_audit_chain, idexx_sync_audit_checkpoints
    to service_role;
