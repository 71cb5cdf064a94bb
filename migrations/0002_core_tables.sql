-- 0002_core_tables: users, clinics and cases, where they do not exist yet.
--
-- On Supabase these tables are the application's and exist already; then
-- this migration only adds the columns vetsync reads and writes (ADD COLUMN
-- IF NOT EXISTS, nullable or with a constant default, so it is cheap and
-- changes no existing row's meaning), the indexes of vetsync's lookups, and
-- RLS policies named vetsync_*.  Their existing grants are left alone; the
-- grants below only add what vetsync needs.
--
-- A clinic is keyed by its user (users.id): the PRD's one IDEXX account per
-- user.  Times are timestamptz; users.timezone is an IANA zone name used for
-- "tomorrow" and "the same local day".

create table if not exists users (
	id uuid primary key default gen_random_uuid(),
	created_at timestamptz not null default now(),
	updated_at timestamptz not null default now()
);
alter table users add column if not exists clinic_name text;
alter table users add column if not exists idexx_sync_enabled boolean
    not null default false;
alter table users add column if not exists timezone text;

create table if not exists clinics (
	id uuid primary key default gen_random_uuid(),
	name text,
	created_at timestamptz not null default now()
);
alter table clinics add column if not exists user_id uuid
    references users (id) on delete cascade;
alter table clinics add column if not exists timezone text;

create table if not exists cases (
	id uuid primary key default gen_random_uuid(),
	created_at timestamptz not null default now(),
	updated_at timestamptz not null default now()
);
alter table cases add column if not exists user_id uuid
    references users (id) on delete cascade;
alter table cases add column if not exists clinic_id uuid
    references clinics (id) on delete set null;
alter table cases add column if not exists patient_name text;
alter table cases add column if not exists scheduled_at timestamptz;
alter table cases add column if not exists status text;
alter table cases add column if not exists source text;
alter table cases add column if not exists metadata jsonb
    not null default '{}'::jsonb;
alter table cases add column if not exists idexx_consultation_id text;
alter table cases add column if not exists idexx_appointment_id text;
alter table cases add column if not exists idexx_patient_id text;

-- The daemon's lookups: the clinics to sync, a user's clinics, and the three
-- reconciliation rules (consultation id, appointment id, patient + day).
create index if not exists users_idexx_sync_enabled_idx
    on users (id) where idexx_sync_enabled;
create index if not exists clinics_user_id_idx on clinics (user_id);
create index if not exists cases_user_consultation_idx
    on cases (user_id, idexx_consultation_id)
    where idexx_consultation_id is not null;
create index if not exists cases_user_appointment_idx
    on cases (user_id, idexx_appointment_id)
    where idexx_appointment_id is not null;
create index if not exists cases_user_patient_day_idx
    on cases (user_id, clinic_id, patient_name, scheduled_at);

-- updated_at moves only when something else in the row changed, so that
-- applying the same sync results twice leaves the rows exactly as they were.
create or replace function vetsync_touch_updated_at() returns trigger
    language plpgsql
as $$
begin
	new.updated_at := old.updated_at;
	if new is distinct from old then
		new.updated_at := now();
	end if;
	return new;
end
$$;

alter table users enable row level security;
alter table users force row level security;
alter table clinics enable row level security;
alter table clinics force row level security;
alter table cases enable row level security;
alter table cases force row level security;

create policy vetsync_users_own on users for select to authenticated
    using (id = (select auth.uid()));
create policy vetsync_users_own_update on users for update to authenticated
    using (id = (select auth.uid())) with check (id = (select auth.uid()));
create policy vetsync_users_service on users for all to service_role
    using (true) with check (true);

create policy vetsync_clinics_own on clinics for select to authenticated
    using (user_id = (select auth.uid()));
create policy vetsync_clinics_service on clinics for all to service_role
    using (true) with check (true);

create policy vetsync_cases_own on cases for all to authenticated
    using (user_id = (select auth.uid()))
    with check (user_id = (select auth.uid()));
create policy vetsync_cases_service on cases for all to service_role
    using (true) with check (true);

grant select on users, clinics to authenticated, service_role;
grant update (clinic_name, idexx_sync_enabled, timezone) on users
    to authenticated;
grant select, insert, update on cases to authenticated, service_role;
