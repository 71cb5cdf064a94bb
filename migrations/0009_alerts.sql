-- 0009_alerts: the alerts vetsyncd has mailed, one row per alert key, so
-- that instances sharing this database mail each alert once.
--
-- An alert key names a condition and its subject: 'consecutive_failures:'
-- followed by the clinic (users.id), 'stale:<clinic>', 'slow_sync:<clinic>',
-- 'clinic_held:<clinic>', 'failure_rate' (all clinics), or an instance's
-- own 'audit_spool_full:<instance>'.  Every instance evaluates the
-- thresholds; the one whose INSERT ... ON CONFLICT DO UPDATE ... WHERE
-- claimed_at is older than alerts.repeat_after returns the row is the one
-- that mails it (claimed_by), and the others see no row and stay quiet.
-- state is that mail's fate: 'pending' while it is queued or retried,
-- 'sent' once the server took it, 'failed' when it refused it for good or
-- retries ran out; subject is the mail's, written with its fate.  A
-- pending claim of an instance that died is taken up
-- by the same instance when it starts again and sees the condition.
--
-- vetsyncd alone reads and writes this, as service_role; nobody else sees
-- it.  No secret and no clinical text is stored: the subject names the
-- clinic and the figure, nothing more.

create table if not exists vetsync_alerts (
	key text primary key,
	kind text not null check (kind in ('consecutive_failures',
	    'failure_rate', 'slow_sync', 'stale', 'clinic_held',
	    'audit_spool_full', 'audit_refused')),
	user_id uuid references users (id) on delete cascade,
	subject text,
	claimed_by text not null,
	claimed_at timestamptz not null default now(),
	state text not null default 'pending' check (state in ('pending',
	    'sent', 'failed')),
	mails integer not null default 0,
	sent_at timestamptz,
	last_error text,
	created_at timestamptz not null default now(),
	updated_at timestamptz not null default now()
);

create trigger vetsync_touch before update on vetsync_alerts
    for each row execute function vetsync_touch_updated_at();

alter table vetsync_alerts enable row level security;
alter table vetsync_alerts force row level security;
revoke all on vetsync_alerts from public, anon, authenticated, service_role,
    vetsync_tenant;
create policy vetsync_alerts_service on vetsync_alerts for all
    to service_role using (true) with check (true);
grant select, insert, update, delete on vetsync_alerts to service_role;

-- The failure rate reads the sessions that ended in the last hour.
create index if not exists idexx_sync_sessions_completed_idx
    on idexx_sync_sessions (completed_at);
