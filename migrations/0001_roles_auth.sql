-- 0001_roles_auth: the roles and auth.* functions vetsync's policies use.
--
-- On Supabase all of this exists already and nothing here changes it; on
-- plain PostgreSQL it creates what Supabase would have:
--
--   anon, authenticated   NOLOGIN NOINHERIT: what PostgREST switches to per
--                         request; RLS policies name them.
--   service_role          NOLOGIN NOINHERIT (BYPASSRLS when the migrating
--                         role may grant it, as on Supabase); vetsync's
--                         policies also admit it explicitly, so it works
--                         either way.
--   auth.uid(), auth.role(), auth.email(), auth.jwt()
--                         read the claims PostgREST (or vetsyncd) stores in
--                         request.jwt.claims, as Supabase's own do.
--
-- And two roles of vetsync's own:
--
--   vetsync_tenant        NOLOGIN, a member of authenticated (inheriting
--                         its privileges and policies): the role vetsyncd's
--                         per-clinic transactions switch to (SET LOCAL ROLE,
--                         with request.jwt.claims naming the clinic's user),
--                         so RLS bounds even the daemon's writes to one
--                         tenant.  Unlike authenticated, it may write the
--                         sync tables; users reading their dashboard may not.
--   vetsync_daemon        NOINHERIT, a member of vetsync_tenant and
--                         service_role: the role vetsyncd logs in as.  It
--                         holds no privilege of its own, so every statement
--                         it runs has first chosen a role.  Created NOLOGIN;
--                         the administrator gives it LOGIN and a password
--                         (ALTER ROLE vetsync_daemon LOGIN PASSWORD ...).
--
-- Migrations run as the schema owner, never as vetsync_daemon.

do $$
declare
	super boolean;
begin
	select rolsuper or rolbypassrls into super
	    from pg_roles where rolname = current_user;
	if to_regrole('anon') is null then
		create role anon nologin noinherit;
	end if;
	if to_regrole('authenticated') is null then
		create role authenticated nologin noinherit;
	end if;
	if to_regrole('service_role') is null then
		if super then
			create role service_role nologin noinherit bypassrls;
		else
			create role service_role nologin noinherit;
		end if;
	end if;
	if to_regrole('vetsync_tenant') is null then
		create role vetsync_tenant nologin inherit;
	end if;
	if to_regrole('vetsync_daemon') is null then
		create role vetsync_daemon nologin noinherit;
	end if;
end
$$;

grant authenticated to vetsync_tenant;
grant vetsync_tenant, service_role to vetsync_daemon;

-- The auth schema and its functions, only where Supabase's are missing.
-- Settings are read missing-ok, and '' (what a setting reads after the
-- transaction that set it LOCAL ends) counts as unset.
do $$
declare
	c record;
begin
	if not exists (select 1 from pg_namespace where nspname = 'auth') then
		create schema auth;
	end if;
	if to_regprocedure('auth.jwt()') is null then
		create function auth.jwt() returns jsonb
		    language sql stable
		as $f$
			select coalesce(
			    nullif(current_setting('request.jwt.claim', true), ''),
			    nullif(current_setting('request.jwt.claims', true),
			    ''))::jsonb
		$f$;
	end if;
	-- uid(), role() and email(): one claim each, the same way.
	for c in select * from (values ('uid', 'sub', 'uuid'),
	    ('role', 'role', 'text'), ('email', 'email', 'text'))
	    v (fn, claim, type) loop
		if to_regprocedure(format('auth.%I()', c.fn)) is null then
			execute format($f$
				create function auth.%I() returns %s
				    language sql stable
				as $b$
					select coalesce(
					    nullif(current_setting(%L, true),
					    ''),
					    (nullif(current_setting(
					    'request.jwt.claims', true),
					    '')::jsonb ->> %L))::%s
				$b$
			$f$, c.fn, c.type, 'request.jwt.claim.' || c.claim,
			    c.claim, c.type);
		end if;
	end loop;
end
$$;

-- Grants only on what this migration owns: on Supabase the auth schema
-- belongs to supabase_auth_admin and is granted already.
do $$
begin
	if (select nspowner = current_user::regrole from pg_namespace
	    where nspname = 'auth') then
		grant usage on schema auth to anon, authenticated, service_role;
	end if;
	if (select bool_and(proowner = current_user::regrole) from pg_proc
	    where oid in ('auth.uid()'::regprocedure,
	    'auth.role()'::regprocedure, 'auth.email()'::regprocedure,
	    'auth.jwt()'::regprocedure)) then
		grant execute on function auth.uid(), auth.role(), auth.email(),
		    auth.jwt() to anon, authenticated, service_role;
	end if;
end
$$;
