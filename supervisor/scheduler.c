/*
 * The scheduler (see scheduler.h): timers over clinic_leases.  This
 * process keeps a plan only for the clinics it holds a lease on (or wants
 * one for): which kinds it claimed them for, their zone, and the next due
 * times to write when their work is done.  Everything else lives in
 * PostgreSQL, so any instance can pick up any clinic.
 */
#include <sys/queue.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/lease.h"
#include "supervisor/reconcile.h"
#include "supervisor/schedule.h"
#include "supervisor/scheduler.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

#define SCHED_REFRESH_MS	(10 * 60 * 1000)	/* the safety net */
#define SCHED_CLAIM_MS		1000
#define SCHED_NOTIFY_DELAY_MS	200	/* gathers a burst of NOTIFYs */
#define SCHED_SCALE_MAX		100000
#define KIND_BIT(k)		(1u << (k))

struct plan {
	char user[LEASE_ID_LEN + 1];
	char tz[65];
	unsigned kinds;		/* claimed for: bits of enum worker_job_kind */
	int64_t next_notes_ms, next_schedule_ms;	/* -1: unchanged */
	bool want;		/* a job waits for the lease */
	bool asking;		/* a claim of it is in flight */
	bool unleased;		/* not a user of the database: no lease */
	TAILQ_ENTRY(plan) entry;
};

static TAILQ_HEAD(, plan) plans = TAILQ_HEAD_INITIALIZER(plans);
static struct db_async *sdb;
static struct event *claim_timer, *renew_timer, *refresh_timer,
    *notify_timer;
static bool running, refreshing, refresh_again;
static unsigned scale = 1;

/* Users to plan, with the start of their last session of each kind. */
static const char sql_refresh[] =
    "WITH el AS ("
    " SELECT u.id, coalesce(u.timezone, '') AS tz FROM users u"
    " JOIN idexx_credentials c ON c.user_id = u.id"
    " WHERE u.idexx_sync_enabled AND c.state = 'active'),"
    "ins AS ("
    " INSERT INTO clinic_leases (user_id) SELECT id FROM el"
    " ON CONFLICT (user_id) DO NOTHING) "
    "SELECT el.id, el.tz, l.next_notes_at IS NULL,"
    " l.next_schedule_at IS NULL,"
    " (SELECT floor(extract(epoch FROM max(s.started_at)) * 1000)::bigint"
    "  FROM idexx_sync_sessions s"
    "  WHERE s.user_id = el.id AND s.kind = 'notes'),"
    " (SELECT floor(extract(epoch FROM max(s.started_at)) * 1000)::bigint"
    "  FROM idexx_sync_sessions s"
    "  WHERE s.user_id = el.id AND s.kind = 'schedule') "
    "FROM el LEFT JOIN clinic_leases l ON l.user_id = el.id "
    "WHERE l.next_notes_at IS NULL OR l.next_schedule_at IS NULL";

/* Fill what is still unplanned: another instance may have been first. */
static const char sql_plan[] =
    "UPDATE clinic_leases l SET"
    " next_notes_at = coalesce(l.next_notes_at,"
    "  to_timestamp(x.n / 1000.0)),"
    " next_schedule_at = coalesce(l.next_schedule_at,"
    "  to_timestamp(x.s / 1000.0)) "
    "FROM jsonb_to_recordset($1::jsonb) AS x(u uuid, n bigint, s bigint) "
    "WHERE l.user_id = x.u AND (l.next_notes_at IS NULL"
    " OR l.next_schedule_at IS NULL)";

static uint64_t
notes_interval_ms(void)
{
	uint64_t v = sv->config->schedule.notes_interval_ms / scale;

	return v > 0 ? v : 1;
}

static uint64_t
jitter_ms(void)
{
	return sv->config->schedule.jitter_ms / scale;
}

static const char *
zone_of(const char *tz)
{
	if (tz != NULL && *tz != '\0' && schedule_tz_valid(tz))
		return tz;
	return sv->config->schedule.default_timezone;
}

static int64_t
next_notes(const char *user, int64_t after_ms)
{
	return schedule_notes_next(user, after_ms, notes_interval_ms(),
	    jitter_ms());
}

static int64_t
next_schedule(const char *tz, int64_t after_ms)
{
	time_t t;

	if (schedule_local_next((time_t)(after_ms / 1000), zone_of(tz),
	    sv->config->schedule.schedule_sync_minutes, &t) < 0 &&
	    schedule_local_next((time_t)(after_ms / 1000), "UTC",
	    sv->config->schedule.schedule_sync_minutes, &t) < 0)
		return after_ms + 24 * 3600 * 1000LL;
	return (int64_t)t * 1000;
}

static struct plan *
plan_find(const char *user)
{
	struct plan *p;

	TAILQ_FOREACH(p, &plans, entry)
		if (strcmp(p->user, user) == 0)
			return p;
	return NULL;
}

static struct plan *
plan_get(const char *user)
{
	struct plan *p = plan_find(user);

	if (p != NULL)
		return p;
	p = xcalloc(1, sizeof(*p));
	snprintf(p->user, sizeof(p->user), "%s", user);
	p->next_notes_ms = p->next_schedule_ms = -1;
	TAILQ_INSERT_TAIL(&plans, p, entry);
	return p;
}

static void
plan_free(struct plan *p)
{
	TAILQ_REMOVE(&plans, p, entry);
	free(p);
}

static void
claim_soon(void)
{
	struct timeval tv = { 0, 0 };

	if (running)
		evtimer_add(claim_timer, &tv);
}

/* The clinic's work is done here: write when it runs next, free it. */
static void
plan_finish(struct plan *p)
{
	if (lease_held(p->user)) {
		log_debug("scheduler: clinic %s done, lease freed", p->user);
		lease_release(p->user, p->next_notes_ms, p->next_schedule_ms);
	}
	plan_free(p);
	claim_soon();
}

/* Kind k of p's clinic was served (or skipped): plan its next slot. */
static void
plan_advance(struct plan *p, enum worker_job_kind k)
{
	int64_t now = clock_wall_ms();

	if (!(p->kinds & KIND_BIT(k)))
		return;
	p->kinds &= ~KIND_BIT(k);
	/*
	 * Half an interval on: a run on its slot gets the next slot, a
	 * catch-up run off its slot is not followed at once by another.
	 */
	if (k == WORKER_JOB_RECONCILE_NOTES)
		p->next_notes_ms = next_notes(p->user, now +
		    (int64_t)notes_interval_ms() / 2);
	else if (k == WORKER_JOB_SYNC_SCHEDULE)
		p->next_schedule_ms = next_schedule(p->tz, now);
}

static bool
clinic_busy(const char *user)
{
	struct clinic *c = clinic_find(user);

	return c != NULL && (clinic_state(c) == CLINIC_QUEUED ||
	    clinic_state(c) == CLINIC_RUNNING);
}

static void
claimed_cb(const struct lease_claim *lc, void *arg)
{
	struct plan *p = plan_get(lc->user);
	struct clinic *c;

	snprintf(p->tz, sizeof(p->tz), "%s", lc->timezone);
	p->want = false;
	if (!running) {
		plan_finish(p);
		return;
	}
	if (lc->notes_due) {
		p->kinds |= KIND_BIT(WORKER_JOB_RECONCILE_NOTES);
		(void)clinic_request(lc->user, WORKER_JOB_RECONCILE_NOTES,
		    false);
	}
	if (lc->schedule_due) {
		p->kinds |= KIND_BIT(WORKER_JOB_SYNC_SCHEDULE);
		(void)clinic_request(lc->user, WORKER_JOB_SYNC_SCHEDULE,
		    false);
	}
	log_info("scheduler: clinic %s due (%s%s%s)", lc->user,
	    lc->notes_due ? "notes" : "", lc->notes_due && lc->schedule_due ?
	    ", " : "", lc->schedule_due ? "schedule" : "");
	if (clinic_busy(lc->user))
		return;
	/* Held (circuit breaker, credentials): this slot is skipped. */
	c = clinic_find(lc->user);
	log_info("scheduler: clinic %s is %s: slot skipped", lc->user,
	    c != NULL ? clinic_state_name(clinic_state(c)) : "unknown");
	plan_advance(p, WORKER_JOB_RECONCILE_NOTES);
	plan_advance(p, WORKER_JOB_SYNC_SCHEDULE);
	plan_finish(p);
}

static void
one_cb(const char *user, bool got, bool exists, void *arg)
{
	struct plan *p = plan_find(user);

	if (p == NULL)
		return;
	p->asking = false;
	if (!exists) {
		/* Not a clinic of this database: nothing to share. */
		p->unleased = true;
		p->want = false;
		clinic_kick(user);
		return;
	}
	if (!got) {
		log_debug("scheduler: clinic %s: leased by another instance, "
		    "waiting", user);
		return;		/* asked again at the next claim tick */
	}
	p->want = false;
	clinic_kick(user);
}

static void
ask(struct plan *p)
{
	if (p->asking || !db_async_connected(sdb))
		return;
	p->asking = true;
	lease_claim_one(p->user, one_cb, NULL);
}

/* clinics.c asks before it starts a job. */
static bool
gate(const char *id, bool manual)
{
	struct plan *p;

	if (!running || !reconcile_uuid_valid(id) || lease_fresh(id))
		return true;
	p = plan_get(id);
	if (p->unleased)
		return true;
	if (manual && !db_async_connected(sdb)) {
		log_warnx("scheduler: clinic %s: the database is unreachable: "
		    "an operator's request runs without a lease", id);
		return true;
	}
	p->want = true;
	ask(p);
	return false;
}

static void
ended(const char *id, enum worker_job_kind kind,
    const struct worker_outcome *o, bool idle)
{
	struct plan *p = plan_find(id);

	if (p == NULL)
		return;
	/* Cancelled (stopping, lease lost): the slot is still to serve. */
	if (o->cls != WORKER_EXIT_CANCELLED)
		plan_advance(p, kind);
	if (idle && !p->want)
		plan_finish(p);
}

static void
lost_cb(const char *user, void *arg)
{
	struct plan *p = plan_find(user);

	/* Before the cancel: the job's end may come back here at once. */
	if (p != NULL && p->want)
		p->kinds = 0;
	else if (p != NULL)
		plan_free(p);
	clinic_cancel(user, "its lease was lost");
}

static void
claim_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	unsigned cap = 2 * sv->config->workers.max_concurrent;
	struct plan *p;
	struct timeval tv = clock_timeval_ms(SCHED_CLAIM_MS / scale > 250 ?
	    SCHED_CLAIM_MS / scale : 250);

	if (!running)
		return;
	evtimer_add(claim_timer, &tv);
	if (!db_async_connected(sdb))
		return;
	TAILQ_FOREACH(p, &plans, entry)
		if (p->want)
			ask(p);
	if (lease_count() < cap)
		lease_claim_due(cap - (unsigned)lease_count(), claimed_cb,
		    NULL);
}

struct sweep_ctx {
	const char *users[64];
	size_t n;
};

static void
sweep_one(const char *user, void *arg)
{
	struct sweep_ctx *sc = arg;
	struct plan *p = plan_find(user);

	if (clinic_busy(user) || (p != NULL && (p->want || p->asking)) ||
	    sc->n == sizeof(sc->users) / sizeof(sc->users[0]))
		return;
	sc->users[sc->n++] = user;
}

/*
 * Leases of clinics with nothing queued or running here (held, in
 * backoff, or a request that went away): free them.
 */
static void
sweep(void)
{
	struct sweep_ctx sc = { .n = 0 };
	char users[64][LEASE_ID_LEN + 1];

	lease_foreach(sweep_one, &sc);
	for (size_t i = 0; i < sc.n; i++)
		snprintf(users[i], sizeof(users[i]), "%s", sc.users[i]);
	for (size_t i = 0; i < sc.n; i++) {
		struct plan *p = plan_find(users[i]);
		struct clinic *c = clinic_find(users[i]);

		if (clock_mono_ms() - lease_claimed_ms(users[i]) < 2000)
			continue;
		if (p == NULL) {
			lease_release(users[i], -1, -1);
			continue;
		}
		if (c != NULL && clinic_state(c) == CLINIC_HELD) {
			plan_advance(p, WORKER_JOB_RECONCILE_NOTES);
			plan_advance(p, WORKER_JOB_SYNC_SCHEDULE);
		}
		plan_finish(p);
	}
}

static void
renew_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = clock_timeval_ms(
	    sv->config->instance.lease_time_ms / 3);

	if (!running)
		return;
	evtimer_add(renew_timer, &tv);
	lease_renew();
	sweep();
}

static void refresh(void);

static void
plan_done(int r, const char *error, void *arg)
{
	if (r < 0 && r != -ECANCELED)
		log_warnx("scheduler: cannot plan clinics: %s", error);
	claim_soon();
}

static int64_t
value_ms(const struct db_result *rows, size_t i, size_t col)
{
	const char *v = db_result_value(rows, i, col);

	return v != NULL ? strtoll(v, NULL, 10) : -1;
}

static void
refresh_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	json_t *a;
	struct db_unit *u;
	char *text;
	int64_t now = clock_wall_ms();
	size_t n = 0;

	refreshing = false;
	if (r < 0) {
		if (r != -ECANCELED)
			log_warnx("scheduler: cannot read the clinics: %s",
			    error);
		return;
	}
	a = json_array();
	for (size_t i = 0; i < db_result_rows(rows); i++) {
		const char *user = db_result_value(rows, i, 0);
		const char *tz = db_result_value(rows, i, 1);
		const char *need_n = db_result_value(rows, i, 2);
		const char *need_s = db_result_value(rows, i, 3);
		int64_t nn = -1, ns = -1;

		if (user == NULL || !reconcile_uuid_valid(user))
			continue;
		if (need_n != NULL && strcmp(need_n, "t") == 0)
			nn = schedule_notes_first(user, value_ms(rows, i, 4),
			    now, notes_interval_ms(), jitter_ms());
		if (need_s != NULL && strcmp(need_s, "t") == 0 &&
		    schedule_daily_first(zone_of(tz),
		    sv->config->schedule.schedule_sync_minutes,
		    value_ms(rows, i, 5), now, &ns) < 0)
			ns = next_schedule(tz, now);
		json_array_append_new(a, json_pack("{s:s, s:o, s:o}", "u", user,
		    "n", nn >= 0 ? json_integer(nn) : json_null(),
		    "s", ns >= 0 ? json_integer(ns) : json_null()));
		n++;
	}
	if (n > 0 && running) {
		text = json_dumps(a, JSON_COMPACT);
		u = db_unit_new(plan_done, NULL);
		(void)db_unit_add(u, "BEGIN", 0, NULL);
		(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
		(void)db_unit_add(u, sql_plan, 1, (const char *const *)&text);
		(void)db_unit_add(u, "COMMIT", 0, NULL);
		db_async_submit(sdb, u);
		free(text);
		log_info("scheduler: %zu clinic(s) planned", n);
	}
	json_decref(a);
	if (refresh_again) {
		refresh_again = false;
		refresh();
	}
}

static void
refresh(void)
{
	struct db_unit *u;

	if (!running)
		return;
	if (refreshing) {
		refresh_again = true;
		return;
	}
	refreshing = true;
	u = db_unit_new_rows(refresh_done, NULL);
	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
	(void)db_unit_add(u, sql_refresh, 0, NULL);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(sdb, u);
}

static void
refresh_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = clock_timeval_ms(SCHED_REFRESH_MS / scale + 1000);

	if (!running)
		return;
	evtimer_add(refresh_timer, &tv);
	refresh();
}

static void
notify_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	refresh();
}

/* A clinic came, went or changed (payload NULL: some may be missed). */
static void
clinics_notified(const char *channel, const char *payload, void *arg)
{
	struct timeval tv = clock_timeval_ms(SCHED_NOTIFY_DELAY_MS);

	if (!running || evtimer_pending(notify_timer, NULL))
		return;
	evtimer_add(notify_timer, &tv);
}

static unsigned
scale_from_env(void)
{
	const char *s = getenv("VETSYNC_SCHEDULE_SCALE");
	char *end;
	unsigned long v;

	if (s == NULL || *s == '\0')
		return 1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > SCHED_SCALE_MAX) {
		log_warnx("VETSYNC_SCHEDULE_SCALE '%s': not a number from 1 to "
		    "%u; ignored", log_q(s), SCHED_SCALE_MAX);
		return 1;
	}
	if (v > 1)
		log_warnx("scheduler: intervals divided by %lu "
		    "(VETSYNC_SCHEDULE_SCALE, for tests only)", v);
	return (unsigned)v;
}

static struct event *
timer_new(struct event_base *base, event_callback_fn fn)
{
	struct event *ev = evtimer_new(base, fn, NULL);

	if (ev == NULL)
		fatalx("cannot create a timer");
	return ev;
}

void
scheduler_start(struct event_base *base, struct db_async *db)
{
	struct timeval now = { 0, 0 };
	int r;

	if (db == NULL || running)
		return;
	sdb = db;
	scale = scale_from_env();
	claim_timer = timer_new(base, claim_timer_cb);
	renew_timer = timer_new(base, renew_timer_cb);
	refresh_timer = timer_new(base, refresh_timer_cb);
	notify_timer = timer_new(base, notify_timer_cb);
	lease_init(db, sv->config->instance.name,
	    sv->config->instance.lease_time_ms, lost_cb, NULL);
	if ((r = db_async_listen(db, "vetsync_clinics", clinics_notified,
	    NULL)) < 0)
		fatalx("scheduler: cannot listen for clinics: %s",
		    strerror(-r));
	clinics_set_hooks(gate, ended);
	running = true;
	evtimer_add(renew_timer, &now);
	evtimer_add(refresh_timer, &now);
	evtimer_add(claim_timer, &now);
	log_info("scheduler: notes every %llu ms (jitter %llu ms), schedule "
	    "at %02u:%02u local, leases of %llu ms",
	    (unsigned long long)notes_interval_ms(),
	    (unsigned long long)jitter_ms(),
	    sv->config->schedule.schedule_sync_minutes / 60,
	    sv->config->schedule.schedule_sync_minutes % 60,
	    (unsigned long long)sv->config->instance.lease_time_ms);
}

struct keep_ctx {
	const char **ids;
	size_t n, cap;
};

static void
keep_running(const char *user, void *arg)
{
	struct keep_ctx *k = arg;

	if (!clinic_busy(user))
		return;
	if (k->n == k->cap) {
		k->cap = k->cap * 2 + 8;
		k->ids = xreallocarray(k->ids, k->cap, sizeof(*k->ids));
	}
	k->ids[k->n++] = user;
}

void
scheduler_stop(void)
{
	struct keep_ctx k = { NULL, 0, 0 };
	struct plan *p, *next;

	if (!running)
		return;
	running = false;
	evtimer_del(claim_timer);
	evtimer_del(renew_timer);
	evtimer_del(refresh_timer);
	evtimer_del(notify_timer);
	/* Jobs still running free theirs when they end (ended()). */
	lease_foreach(keep_running, &k);
	lease_release_all(k.ids, k.n);
	free(k.ids);
	for (p = TAILQ_FIRST(&plans); p != NULL; p = next) {
		next = TAILQ_NEXT(p, entry);
		p->want = false;
		if (!lease_held(p->user))
			plan_free(p);
	}
}

void
scheduler_free(void)
{
	struct plan *p;

	running = false;
	clinics_set_hooks(NULL, NULL);
	while ((p = TAILQ_FIRST(&plans)) != NULL)
		plan_free(p);
	lease_reset();
	if (claim_timer != NULL) {
		event_free(claim_timer);
		event_free(renew_timer);
		event_free(refresh_timer);
		event_free(notify_timer);
		claim_timer = renew_timer = refresh_timer = notify_timer =
		    NULL;
	}
	sdb = NULL;
}
