/*
 * Clinic leases in PostgreSQL (see lease.h).  Every statement runs as
 * service_role in a unit of its own; a unit may be sent twice after a lost
 * connection, which each statement tolerates: a second claim only claims
 * more (what this process does not know of lapses unrenewed), a second
 * release or renewal changes nothing more.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/db.h"
#include "supervisor/lease.h"

struct lease {
	char user[LEASE_ID_LEN + 1];
	uint64_t claimed_ms;	/* monotonic, when the claim was sent */
	uint64_t ok_ms;		/* when the last claim/renewal that held it
				   was sent */
	TAILQ_ENTRY(lease) entry;
};

static TAILQ_HEAD(, lease) leases = TAILQ_HEAD_INITIALIZER(leases);
static size_t n_leases;
static struct db_async *ldb;
static char *instance;
static uint64_t lease_ms;
static lease_lost_fn *lost_fn;
static void *lost_arg;
static unsigned in_flight;	/* claims and renewals */
static bool renewing, claiming;

static const char sql_role[] = "SET LOCAL ROLE service_role";

static const char sql_beat[] =
    "INSERT INTO vetsync_instances (name) VALUES ($1) "
    "ON CONFLICT (name) DO UPDATE SET seen_at = now()";

static const char sql_forget[] =
    "UPDATE clinic_leases SET instance = NULL, expires_at = NULL "
    "WHERE instance = $1";

/*
 * Due clinics (sync enabled, credentials active) whose lease is free or
 * expired, oldest due first, at most $3 and at most this instance's share:
 * the due ones divided by the instances alive within a lease time.
 */
static const char sql_claim_due[] =
    "WITH live AS ("
    " SELECT greatest(count(*), 1) AS n FROM vetsync_instances"
    " WHERE seen_at > now() - $2::bigint * interval '1 millisecond'),"
    "due AS ("
    " SELECT l.user_id FROM clinic_leases l"
    " JOIN users u ON u.id = l.user_id"
    " JOIN idexx_credentials c ON c.user_id = l.user_id"
    " WHERE u.idexx_sync_enabled AND c.state = 'active'"
    " AND (l.next_notes_at <= now() OR l.next_schedule_at <= now())"
    " AND (l.instance IS NULL OR l.expires_at < now())),"
    "pick AS ("
    " SELECT l.user_id FROM clinic_leases l"
    " WHERE l.user_id IN (SELECT user_id FROM due)"
    " AND (l.instance IS NULL OR l.expires_at < now())"
    " AND (l.next_notes_at <= now() OR l.next_schedule_at <= now())"
    " ORDER BY least(l.next_notes_at, l.next_schedule_at), l.user_id"
    " LIMIT (SELECT least($3::int, ceil((SELECT count(*) FROM due)::numeric"
    "  / live.n))::int FROM live)"
    " FOR UPDATE OF l SKIP LOCKED) "
    "UPDATE clinic_leases l SET instance = $1,"
    " expires_at = now() + $2::bigint * interval '1 millisecond',"
    " claimed_at = now() "
    "FROM pick, users u WHERE l.user_id = pick.user_id AND u.id = l.user_id "
    "RETURNING l.user_id, coalesce(u.timezone, ''),"
    " coalesce(l.next_notes_at <= now(), false),"
    " coalesce(l.next_schedule_at <= now(), false)";

static const char sql_claim_one[] =
    "WITH c AS ("
    " INSERT INTO clinic_leases (user_id, instance, expires_at, claimed_at)"
    " SELECT id, $2, now() + $3::bigint * interval '1 millisecond', now()"
    " FROM users WHERE id = $1::uuid"
    " ON CONFLICT (user_id) DO UPDATE SET instance = excluded.instance,"
    " expires_at = excluded.expires_at, claimed_at = excluded.claimed_at"
    " WHERE clinic_leases.instance IS NULL"
    " OR clinic_leases.expires_at < now()"
    " OR clinic_leases.instance = excluded.instance"
    " RETURNING user_id) "
    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1::uuid),"
    " EXISTS (SELECT 1 FROM c)";

static const char sql_renew[] =
    "UPDATE clinic_leases"
    " SET expires_at = now() + $2::bigint * interval '1 millisecond' "
    "WHERE instance = $1 AND user_id = ANY ($3::uuid[]) RETURNING user_id";

static const char sql_release[] =
    "UPDATE clinic_leases SET instance = NULL, expires_at = NULL,"
    " next_notes_at = CASE WHEN $3::bigint >= 0"
    "  THEN to_timestamp($3::bigint / 1000.0) ELSE next_notes_at END,"
    " next_schedule_at = CASE WHEN $4::bigint >= 0"
    "  THEN to_timestamp($4::bigint / 1000.0) ELSE next_schedule_at END "
    "WHERE user_id = $1::uuid AND instance = $2";

/* The clinic's latest session carries when it runs next. */
static const char sql_session_next[] =
    "UPDATE idexx_sync_sessions s SET next_scheduled_sync = l.n "
    "FROM (SELECT least(next_notes_at, next_schedule_at) AS n"
    " FROM clinic_leases WHERE user_id = $1::uuid) l "
    "WHERE s.id = (SELECT id FROM idexx_sync_sessions"
    " WHERE user_id = $1::uuid ORDER BY started_at DESC LIMIT 1)"
    " AND s.next_scheduled_sync IS DISTINCT FROM l.n";

static const char sql_release_all[] =
    "UPDATE clinic_leases SET instance = NULL, expires_at = NULL "
    "WHERE instance = $1 AND NOT (user_id = ANY ($2::uuid[]))";

static const char sql_unbeat[] =
    "DELETE FROM vetsync_instances WHERE name = $1";

static struct lease *
lease_find(const char *user)
{
	struct lease *l;

	TAILQ_FOREACH(l, &leases, entry)
		if (strcmp(l->user, user) == 0)
			return l;
	return NULL;
}

static void
lease_drop(struct lease *l, bool tell)
{
	char user[LEASE_ID_LEN + 1];

	snprintf(user, sizeof(user), "%s", l->user);
	TAILQ_REMOVE(&leases, l, entry);
	n_leases--;
	free(l);
	if (tell && lost_fn != NULL)
		lost_fn(user, lost_arg);
}

static struct lease *
lease_add(const char *user, uint64_t sent_ms)
{
	struct lease *l = lease_find(user);

	if (l == NULL) {
		l = xcalloc(1, sizeof(*l));
		snprintf(l->user, sizeof(l->user), "%s", user);
		l->claimed_ms = sent_ms;
		TAILQ_INSERT_TAIL(&leases, l, entry);
		n_leases++;
	}
	if (sent_ms > l->ok_ms)
		l->ok_ms = sent_ms;
	return l;
}

static struct db_unit *
unit_begin(struct db_unit *u)
{
	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, sql_role, 0, NULL);
	return u;
}

static void
unit_submit(struct db_unit *u)
{
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(ldb, u);
}

static void
ms_param(char *buf, size_t bufsz, int64_t v)
{
	snprintf(buf, bufsz, "%lld", (long long)v);
}

/* "{a,b,...}" of the ids held, for a uuid[] parameter. */
static char *
ids_array(const char *const *keep, size_t n)
{
	struct buf b;
	struct lease *l;
	size_t i = 0;

	buf_init(&b, 0);
	(void)buf_puts(&b, "{");
	if (keep != NULL) {
		for (; i < n; i++)
			(void)buf_printf(&b, "%s%s", i > 0 ? "," : "", keep[i]);
	} else
		TAILQ_FOREACH(l, &leases, entry)
			(void)buf_printf(&b, "%s%s", i++ > 0 ? "," : "", l->user);
	(void)buf_puts(&b, "}");
	return buf_detach(&b, NULL);
}

static void
forget_done(int r, const char *error, void *arg)
{
	if (r < 0 && r != -ECANCELED)
		log_warnx("leases: cannot free the leases a previous run of "
		    "instance %s left: %s", log_q(instance), error);
}

void
lease_init(struct db_async *db, const char *name, uint64_t ms,
    lease_lost_fn *lost, void *arg)
{
	struct db_unit *u;

	lease_reset();
	ldb = db;
	instance = xstrdup(name);
	lease_ms = ms;
	lost_fn = lost;
	lost_arg = arg;
	if (ldb == NULL)
		return;
	u = unit_begin(db_unit_new(forget_done, NULL));
	(void)db_unit_add(u, sql_forget, 1, (const char *const *)&instance);
	unit_submit(u);
}

void
lease_reset(void)
{
	struct lease *l;

	while ((l = TAILQ_FIRST(&leases)) != NULL)
		lease_drop(l, false);
	free(instance);
	instance = NULL;
	ldb = NULL;
	lost_fn = NULL;
}

struct claim_ctx {
	uint64_t sent_ms;
	lease_claimed_fn *fn;
	lease_one_fn *one;
	void *arg;
	char user[LEASE_ID_LEN + 1];
};

static void
claim_due_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct claim_ctx *cc = arg;
	struct lease_claim c;

	in_flight--;
	claiming = false;
	if (r < 0) {
		if (r != -ECANCELED)
			log_warnx("leases: cannot claim due clinics: %s", error);
		free(cc);
		return;
	}
	for (size_t i = 0; ldb != NULL && i < db_result_rows(rows); i++) {
		const char *user = db_result_value(rows, i, 0);
		const char *tz = db_result_value(rows, i, 1);
		const char *n = db_result_value(rows, i, 2);
		const char *s = db_result_value(rows, i, 3);

		if (user == NULL || strlen(user) != LEASE_ID_LEN)
			continue;
		lease_add(user, cc->sent_ms);
		c.user = user;
		c.timezone = tz != NULL ? tz : "";
		c.notes_due = n != NULL && strcmp(n, "t") == 0;
		c.schedule_due = s != NULL && strcmp(s, "t") == 0;
		log_debug("leases: claimed clinic %s", user);
		cc->fn(&c, cc->arg);
	}
	free(cc);
}

void
lease_claim_due(unsigned max, lease_claimed_fn *fn, void *arg)
{
	struct claim_ctx *cc;
	struct db_unit *u;
	char ms[24], lim[16];
	const char *p[3];

	if (ldb == NULL || claiming || max == 0 || !db_async_connected(ldb))
		return;
	cc = xcalloc(1, sizeof(*cc));
	cc->sent_ms = clock_mono_ms();
	cc->fn = fn;
	cc->arg = arg;
	ms_param(ms, sizeof(ms), (int64_t)lease_ms);
	snprintf(lim, sizeof(lim), "%u", max);
	p[0] = instance;
	p[1] = ms;
	p[2] = lim;
	u = unit_begin(db_unit_new_rows(claim_due_done, cc));
	(void)db_unit_add_prepared(u, sql_claim_due, 3, p);
	claiming = true;
	in_flight++;
	unit_submit(u);
}

static void
claim_one_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct claim_ctx *cc = arg;
	const char *exists, *got;
	bool ok = false, known = false;

	in_flight--;
	if (r < 0 && r != -ECANCELED)
		log_warnx("leases: clinic %s: cannot claim its lease: %s",
		    cc->user, error);
	if (r == 0 && db_result_rows(rows) == 1) {
		exists = db_result_value(rows, 0, 0);
		got = db_result_value(rows, 0, 1);
		known = exists != NULL && strcmp(exists, "t") == 0;
		ok = got != NULL && strcmp(got, "t") == 0;
	}
	if (ok && ldb != NULL)
		lease_add(cc->user, cc->sent_ms);
	/* A failed claim is as one taken elsewhere: asked again later. */
	if (r < 0)
		known = true;
	if (r != -ECANCELED && ldb != NULL)
		cc->one(cc->user, ok, known, cc->arg);
	free(cc);
}

void
lease_claim_one(const char *user, lease_one_fn *fn, void *arg)
{
	struct claim_ctx *cc;
	struct db_unit *u;
	char ms[24];
	const char *p[3];

	if (ldb == NULL || strlen(user) != LEASE_ID_LEN)
		return;
	cc = xcalloc(1, sizeof(*cc));
	cc->sent_ms = clock_mono_ms();
	cc->one = fn;
	cc->arg = arg;
	snprintf(cc->user, sizeof(cc->user), "%s", user);
	ms_param(ms, sizeof(ms), (int64_t)lease_ms);
	p[0] = user;
	p[1] = instance;
	p[2] = ms;
	u = unit_begin(db_unit_new_rows(claim_one_done, cc));
	(void)db_unit_add(u, sql_claim_one, 3, p);
	in_flight++;
	unit_submit(u);
}

struct renew_ctx {
	uint64_t sent_ms;
	size_t n;
	char (*users)[LEASE_ID_LEN + 1];
};

static void
renew_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct renew_ctx *rc = arg;
	struct lease *l;

	in_flight--;
	renewing = false;
	if (r < 0) {
		if (r != -ECANCELED)
			log_warnx("leases: cannot renew: %s", error);
		goto out;
	}
	for (size_t i = 0; ldb != NULL && i < rc->n; i++) {
		bool kept = false;

		if ((l = lease_find(rc->users[i])) == NULL ||
		    l->claimed_ms > rc->sent_ms)
			continue;	/* freed, or claimed again since */
		for (size_t j = 0; j < db_result_rows(rows) && !kept; j++) {
			const char *u = db_result_value(rows, j, 0);

			kept = u != NULL && strcmp(u, l->user) == 0;
		}
		if (kept) {
			if (rc->sent_ms > l->ok_ms)
				l->ok_ms = rc->sent_ms;
			continue;
		}
		log_warnx("leases: clinic %s: lease lost (taken over or "
		    "freed behind us)", l->user);
		lease_drop(l, true);
	}
out:
	free(rc->users);
	free(rc);
}

void
lease_renew(void)
{
	struct lease *l, *next;
	struct renew_ctx *rc;
	struct db_unit *u;
	uint64_t now = clock_mono_ms();
	char ms[24], *ids;
	const char *p[3];
	size_t i = 0;

	if (ldb == NULL)
		return;
	for (l = TAILQ_FIRST(&leases); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		if (now - l->ok_ms > lease_ms * 2 / 3) {
			log_warnx("leases: clinic %s: lease not renewed for "
			    "%llu ms, letting it lapse", l->user,
			    (unsigned long long)(now - l->ok_ms));
			lease_drop(l, true);
		}
	}
	if (renewing || !db_async_connected(ldb))
		return;
	rc = xcalloc(1, sizeof(*rc));
	rc->sent_ms = now;
	rc->n = n_leases;
	rc->users = xcalloc(n_leases + 1, sizeof(*rc->users));
	TAILQ_FOREACH(l, &leases, entry)
		memcpy(rc->users[i++], l->user, sizeof(l->user));
	ids = ids_array(NULL, 0);
	ms_param(ms, sizeof(ms), (int64_t)lease_ms);
	p[0] = instance;
	p[1] = ms;
	p[2] = ids;
	u = unit_begin(db_unit_new_rows(renew_done, rc));
	(void)db_unit_add_prepared(u, sql_beat, 1, p);
	(void)db_unit_add_prepared(u, sql_renew, 3, p);
	free(ids);
	renewing = true;
	in_flight++;
	unit_submit(u);
}

static void
release_done(int r, const char *error, void *arg)
{
	char *user = arg;

	if (r < 0 && r != -ECANCELED)
		log_warnx("leases: clinic %s: cannot free its lease: %s", user,
		    error);
	free(user);
}

void
lease_release(const char *user, int64_t next_notes_ms,
    int64_t next_schedule_ms)
{
	struct lease *l = lease_find(user);
	struct db_unit *u;
	char n[24], s[24];
	const char *p[4];

	if (l == NULL || ldb == NULL)
		return;
	lease_drop(l, false);
	ms_param(n, sizeof(n), next_notes_ms);
	ms_param(s, sizeof(s), next_schedule_ms);
	p[0] = user;
	p[1] = instance;
	p[2] = n;
	p[3] = s;
	u = unit_begin(db_unit_new(release_done, xstrdup(user)));
	(void)db_unit_add_prepared(u, sql_release, 4, p);
	(void)db_unit_add_prepared(u, sql_session_next, 1, p);
	unit_submit(u);
}

void
lease_release_all(const char *const *keep, size_t n)
{
	struct lease *l, *next;
	struct db_unit *u;
	char *ids;
	const char *p[2];

	if (ldb == NULL)
		return;
	for (l = TAILQ_FIRST(&leases); l != NULL; l = next) {
		bool kept = false;

		next = TAILQ_NEXT(l, entry);
		for (size_t i = 0; i < n && !kept; i++)
			kept = strcmp(keep[i], l->user) == 0;
		if (!kept)
			lease_drop(l, false);
	}
	ids = ids_array(keep, n);
	p[0] = instance;
	p[1] = ids;
	u = unit_begin(db_unit_new(release_done, xstrdup("(all)")));
	(void)db_unit_add(u, sql_release_all, 2, p);
	(void)db_unit_add(u, sql_unbeat, 1, p);
	free(ids);
	unit_submit(u);
}

bool
lease_held(const char *user)
{
	return lease_find(user) != NULL;
}

bool
lease_fresh(const char *user)
{
	struct lease *l = lease_find(user);

	return l != NULL && clock_mono_ms() - l->ok_ms < lease_ms * 2 / 3;
}

uint64_t
lease_claimed_ms(const char *user)
{
	struct lease *l = lease_find(user);

	return l != NULL ? l->claimed_ms : 0;
}

size_t
lease_count(void)
{
	return n_leases;
}

void
lease_foreach(void (*fn)(const char *, void *), void *arg)
{
	struct lease *l, *next;

	for (l = TAILQ_FIRST(&leases); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		fn(l->user, arg);
	}
}

bool
lease_busy(void)
{
	return in_flight > 0;
}
