-- 0003_idexx_tables: the PRD's sync tables (§6.1) and the discharge-call
-- outbox.
--
-- Columns are the PRD's, plus what vetsync needs beside them (added with
-- ADD COLUMN IF NOT EXISTS, so a database that already has the PRD's tables
-- gains them too).  Deliberate differences from the PRD: user_id is NOT
-- NULL (a row nobody owns would be invisible to every policy), and
-- validation_status defaults to 'unknown'.
--
-- Who may do what (policies and grants together):
--   authenticated    reads its own rows (credentials: not the ciphertexts);
--                    writes nothing here: sync state is vetsyncd's to write.
--   vetsync_tenant   vetsyncd inside one clinic's transaction: reads and
--                    writes that user's rows only.
--   service_role     vetsyncd across clinics: scheduling, key rotation,
--                    stale-session cleanup, discharge-call claims.
--   anon             nothing.

create table if not exists idexx_credentials (
	id uuid primary key default gen_random_uuid(),
	user_id uuid not null references users (id) on delete cascade,
	encrypted_username text not null,
	encrypted_password text not null,
	encryption_key_id text not null,
	last_validated_at timestamptz,
	validation_status text default 'unknown'
	    check (validation_status in ('valid', 'invalid', 'unknown')),
	created_at timestamptz default now(),
	updated_at timestamptz default now(),
	unique (user_id)
);

-- The outbox of FR-1.8: written with the notes, then published to QStash;
-- claimed exactly once when QStash delivers (status pending/published ->
-- claimed), never dialled twice.  dedup_id is the QStash deduplication id,
-- derived from the consultation.
create table if not exists scheduled_discharge_calls (
	id uuid primary key default gen_random_uuid(),
	user_id uuid not null references users (id) on delete cascade,
	case_id uuid references cases (id) on delete set null,
	consultation_id text not null,
	scheduled_for timestamptz not null,
	status text not null default 'pending'
	    check (status in ('pending', 'published', 'claimed', 'completed',
	    'failed', 'cancelled')),
	dedup_id text not null unique,
	qstash_message_id text,
	vapi_call_id text,
	claimed_at timestamptz,
	claimed_by text,
	attempts integer not null default 0,
	last_error jsonb,
	created_at timestamptz not null default now(),
	updated_at timestamptz not null default now(),
	unique (user_id, consultation_id)
);

create table if not exists idexx_sync_sessions (
	id uuid primary key default gen_random_uuid(),
	user_id uuid not null references users (id) on delete cascade,
	clinic_id uuid references clinics (id),
	status text check (status in ('running', 'completed', 'failed',
	    'timeout')),
	started_at timestamptz default now(),
	completed_at timestamptz,
	consultations_synced integer default 0,
	consultations_failed integer default 0,
	discharge_calls_scheduled integer default 0,
	error_details jsonb,
	next_scheduled_sync timestamptz,
	created_at timestamptz default now()
);
alter table idexx_sync_sessions add column if not exists kind text
    not null default 'notes' check (kind in ('notes', 'schedule', 'validate'));
alter table idexx_sync_sessions add column if not exists instance text;
alter table idexx_sync_sessions add column if not exists updated_at
    timestamptz not null default now();

create table if not exists consultation_sync_status (
	id uuid primary key default gen_random_uuid(),
	consultation_id text not null,
	user_id uuid not null references users (id) on delete cascade,
	case_id uuid references cases (id),
	sync_status text check (sync_status in ('pending', 'synced', 'failed')),
	has_clinical_notes boolean default false,
	notes_synced_at timestamptz,
	discharge_call_scheduled boolean default false,
	discharge_call_id uuid references scheduled_discharge_calls (id),
	last_sync_attempt timestamptz,
	created_at timestamptz default now(),
	updated_at timestamptz default now(),
	unique (consultation_id, user_id)
);
-- How the case was found (FR-1.5); 'ambiguous' rows have no case_id and
-- list the candidates in match_details.
alter table consultation_sync_status add column if not exists
    idexx_appointment_id text;
alter table consultation_sync_status add column if not exists match_rule
    text check (match_rule in ('consultation', 'appointment', 'patient_day',
    'created', 'ambiguous'));
alter table consultation_sync_status add column if not exists match_details
    jsonb;

-- The daemon's lookups.  unique (user_id) serves credentials by user and
-- unique (consultation_id, user_id) sync status by consultation.
create index if not exists idexx_credentials_key_id_idx
    on idexx_credentials (encryption_key_id);
create index if not exists idexx_sync_sessions_user_started_idx
    on idexx_sync_sessions (user_id, started_at desc);
create index if not exists idexx_sync_sessions_running_idx
    on idexx_sync_sessions (started_at) where status = 'running';
create index if not exists idexx_sync_sessions_clinic_idx
    on idexx_sync_sessions (clinic_id);
create index if not exists consultation_sync_status_user_idx
    on consultation_sync_status (user_id, updated_at desc);
create index if not exists consultation_sync_status_case_idx
    on consultation_sync_status (case_id);
create index if not exists consultation_sync_status_call_idx
    on consultation_sync_status (discharge_call_id);
create index if not exists scheduled_discharge_calls_due_idx
    on scheduled_discharge_calls (status, scheduled_for);
create index if not exists scheduled_discharge_calls_case_idx
    on scheduled_discharge_calls (case_id);

create trigger vetsync_touch before update on idexx_credentials
    for each row execute function vetsync_touch_updated_at();
create trigger vetsync_touch before update on idexx_sync_sessions
    for each row execute function vetsync_touch_updated_at();
create trigger vetsync_touch before update on consultation_sync_status
    for each row execute function vetsync_touch_updated_at();
create trigger vetsync_touch before update on scheduled_discharge_calls
    for each row execute function vetsync_touch_updated_at();

do $$
declare
	t text;
begin
	foreach t in array array['idexx_credentials', 'idexx_sync_sessions',
	    'consultation_sync_status', 'scheduled_discharge_calls'] loop
		execute format('alter table %I enable row level security', t);
		execute format('alter table %I force row level security', t);
		-- Supabase grants everything on new tables to its API roles by
		-- default; start from nothing.
		execute format('revoke all on %I from public, anon, '
		    'authenticated, service_role, vetsync_tenant', t);
		execute format('create policy %I on %I for select '
		    'to authenticated using (user_id = (select auth.uid()))',
		    'vetsync_' || t || '_own', t);
		execute format('create policy %I on %I for all '
		    'to vetsync_tenant using (user_id = (select auth.uid())) '
		    'with check (user_id = (select auth.uid()))',
		    'vetsync_' || t || '_tenant', t);
		execute format('create policy %I on %I for all to service_role '
		    'using (true) with check (true)',
		    'vetsync_' || t || '_service', t);
		execute format('grant select, insert, update, delete on %I '
		    'to vetsync_tenant, service_role', t);
		if t <> 'idexx_credentials' then
			execute format('grant select on %I to authenticated',
			    t);
		end if;
	end loop;
end
$$;

grant select (id, user_id, encryption_key_id, last_validated_at,
    validation_status, created_at, updated_at) on idexx_credentials
    to authenticated;
