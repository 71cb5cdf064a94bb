-- 0006_credentials: the credential lifecycle of PRD §8.3 and the
-- notifications that make a revocation reach every vetsyncd at once.
--
-- state follows the lifecycle (no row: not configured):
--   configured   stored, not yet validated against IDEXX
--   validated    IDEXX accepted them; the clinic's sync is not enabled
--   active       validated and users.idexx_sync_enabled: vetsyncd syncs it
--   suspended    IDEXX refused them (validation_status 'invalid'); held
--                until a re-validation succeeds or new ones are set
--   revoked      deleted on purpose: the ciphertexts are gone (NULL) and the
--                row stays as the marker, until credentials are set again
-- validation_status keeps the PRD's values (valid / invalid / unknown).
--
-- Every change of a row is announced on the channel vetsync_credentials
-- with the JSON {"user_id", "state", "op"}; vetsyncd LISTENs to it, so a
-- revocation kills the clinic's worker without any polling.  The payload
-- holds no secret.

alter table idexx_credentials add column if not exists state text
    not null default 'configured';
alter table idexx_credentials add column if not exists revoked_at
    timestamptz;
alter table idexx_credentials add column if not exists encrypted_company_id
    text;
alter table idexx_credentials alter column encrypted_username drop not null;
alter table idexx_credentials alter column encrypted_password drop not null;

-- Rows of the PRD's own writer: what they say becomes a state.
update idexx_credentials set state = case validation_status
    when 'valid' then 'validated' when 'invalid' then 'suspended'
    else 'configured' end
    where state = 'configured' and validation_status is distinct from
    'unknown';

alter table idexx_credentials add constraint idexx_credentials_state_check
    check (state in ('configured', 'validated', 'active', 'suspended',
    'revoked'));
-- Only a revoked row lacks its ciphertexts, and a revoked row has none.
alter table idexx_credentials add constraint idexx_credentials_revoked_check
    check ((state = 'revoked') = (encrypted_password is null) and
    (state = 'revoked') = (encrypted_username is null));

create index if not exists idexx_credentials_state_idx
    on idexx_credentials (state);

create or replace function vetsync_credentials_notify() returns trigger
    language plpgsql
    set search_path = pg_catalog, public
as $$
declare
	r idexx_credentials;
begin
	if tg_op = 'DELETE' then
		r := old;
	else
		r := new;
	end if;
	if tg_op = 'UPDATE' and old.state is not distinct from new.state and
	    old.encryption_key_id is not distinct from new.encryption_key_id
	    and old.encrypted_password is not distinct from
	    new.encrypted_password then
		return null;
	end if;
	perform pg_notify('vetsync_credentials', json_build_object(
	    'user_id', r.user_id,
	    'state', case when tg_op = 'DELETE' then 'deleted' else r.state end,
	    'op', lower(tg_op))::text);
	return null;
end
$$;

create trigger vetsync_credentials_notify
    after insert or update or delete on idexx_credentials
    for each row execute function vetsync_credentials_notify();

-- active = validated and the user's sync enabled: kept so when the user
-- turns sync on or off.
create or replace function vetsync_credentials_follow_user() returns trigger
    language plpgsql
    set search_path = pg_catalog, public
as $$
begin
	update idexx_credentials set state = case when new.idexx_sync_enabled
	    then 'active' else 'validated' end
	    where user_id = new.id and state in ('validated', 'active')
	    and state is distinct from case when new.idexx_sync_enabled
	    then 'active' else 'validated' end;
	return null;
end
$$;

create trigger vetsync_credentials_follow_user
    after update of idexx_sync_enabled on users
    for each row execute function vetsync_credentials_follow_user();
