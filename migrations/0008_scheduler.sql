-- 0008_scheduler: the scheduler's row per clinic, and the leases that
-- divide clinics between vetsyncd instances sharing this database.
--
-- clinic_leases: one row per clinic (users.id) the scheduler has seen.
-- next_notes_at / next_schedule_at are when its next notes reconciliation
-- and nightly schedule sync are due (NULL: not planned yet; the scheduler
-- plans it from the last session of that kind).  instance / expires_at are
-- the lease: an instance claims due clinics whose lease is free or expired
-- (SELECT ... FOR UPDATE SKIP LOCKED), renews its leases while it holds
-- them, and frees them when the clinic's jobs are done or it stops.  A dead
-- instance's leases lapse at expires_at, and its clinics go to the others.
--
-- vetsync_instances: each instance's heartbeat, so an instance can count
-- the live ones and take only its share of the due clinics.
--
-- vetsyncd alone reads and writes these, as service_role; nobody else sees
-- them.  A NOTIFY on vetsync_clinics ({"user_id"}) tells the scheduler that
-- a clinic may have come or gone (sync enabled or disabled, credentials'
-- state) or changed its time zone (its schedule sync is planned again).

create table if not exists clinic_leases (
	user_id uuid primary key references users (id) on delete cascade,
	instance text,
	expires_at timestamptz,
	claimed_at timestamptz,
	next_notes_at timestamptz,
	next_schedule_at timestamptz,
	created_at timestamptz not null default now(),
	updated_at timestamptz not null default now(),
	check ((instance is null) = (expires_at is null))
);
create index if not exists clinic_leases_due_idx
    on clinic_leases (least(next_notes_at, next_schedule_at));
create index if not exists clinic_leases_instance_idx
    on clinic_leases (instance) where instance is not null;

create table if not exists vetsync_instances (
	name text primary key,
	started_at timestamptz not null default now(),
	seen_at timestamptz not null default now()
);

create trigger vetsync_touch before update on clinic_leases
    for each row execute function vetsync_touch_updated_at();

do $$
declare
	t text;
begin
	foreach t in array array['clinic_leases', 'vetsync_instances'] loop
		execute format('alter table %I enable row level security', t);
		execute format('alter table %I force row level security', t);
		execute format('revoke all on %I from public, anon, '
		    'authenticated, service_role, vetsync_tenant', t);
		execute format('create policy %I on %I for all to service_role '
		    'using (true) with check (true)',
		    'vetsync_' || t || '_service', t);
		execute format('grant select, insert, update, delete on %I '
		    'to service_role', t);
	end loop;
end
$$;

-- The sessions the scheduler reads: the last of each kind per clinic.
create index if not exists idexx_sync_sessions_user_kind_started_idx
    on idexx_sync_sessions (user_id, kind, started_at desc);

create or replace function vetsync_clinics_notify() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, public
as $$
begin
	if tg_table_name = 'users' then
		if tg_op = 'UPDATE' and old.timezone is distinct from
		    new.timezone then
			-- The nightly slot moves with the zone.
			update clinic_leases set next_schedule_at = null
			    where user_id = new.id;
		end if;
		perform pg_notify('vetsync_clinics',
		    json_build_object('user_id', new.id)::text);
		return null;
	end if;
	if tg_op = 'UPDATE' and old.state is not distinct from new.state then
		return null;
	end if;
	perform pg_notify('vetsync_clinics', json_build_object('user_id',
	    case when tg_op = 'DELETE' then old.user_id
	    else new.user_id end)::text);
	return null;
end
$$;

create trigger vetsync_clinics_notify
    after update of idexx_sync_enabled, timezone on users
    for each row execute function vetsync_clinics_notify();
create trigger vetsync_clinics_notify
    after insert or update of state or delete on idexx_credentials
    for each row execute function vetsync_clinics_notify();
