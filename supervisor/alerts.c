/*
 * Alerts by email (see alerts.h).  Three stages, each on the event loop:
 * detection (one statement over the sessions, or an operational alert
 * raised by another module), the claim in vetsync_alerts (in the same
 * statement for the thresholds: candidates are claimed by a data-modifying
 * CTE and only the claimed ones come back), and the mail queue.
 *
 * alerts_raise() only stores the alert and arms a zero timer: it is called
 * from inside audit_emit() (the spool is full), and auditing the alert from
 * there would re-enter the spool.  The pure parts (names, thresholds,
 * the message's format) are in alerts_text.c.
 */
#include <sys/queue.h>
#include <sys/random.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/alerts.h"
#include "supervisor/audit.h"
#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/outbound.h"
#include "supervisor/secrets.h"
#include "supervisor/supervisor.h"

#define NAME_MAX_BYTES	100	/* of a clinic's name in a mail */
#define LOCAL_KEYS_MAX	64	/* keys deduplicated without the database */
#define POKE_DELAY_MS	500	/* gathers the jobs that end together */
#define MAIL_TIMEOUT_MS	30000

enum alert_state {
	AS_RAISED,		/* operational, waiting to be claimed */
	AS_CLAIMING,
	AS_QUEUED,		/* a mail waits (or waits to be retried) */
	AS_SENDING,
};

struct alert {
	enum alert_kind kind;
	enum alert_state state;
	char key[ALERTS_KEY_MAX];
	char clinic[65];	/* users.id or a clinic id; "" for none */
	char *figure, *look;	/* operational alerts */
	char *subject;
	struct buf message;
	bool claimed_in_db;	/* its row is ours to update */
	unsigned attempts;
	uint64_t claimed_ms;	/* monotonic */
	uint64_t next_ms;
	TAILQ_ENTRY(alert) entry;
};

TAILQ_HEAD(alert_list, alert);

struct local_key {
	char key[ALERTS_KEY_MAX];
	uint64_t at_ms;
};

static struct {
	const struct supervisor *sv;	/* not the global: see alerts_start() */
	struct event_base *base;
	struct db_async *db;
	char *instance;
	struct buf password;
	bool have_password;
	struct event *scan_timer, *poke_timer, *raise_timer, *mail_timer;
	uint64_t scan_ms;
	bool scanning;
	char poke_clinic[65];	/* "" : several, evaluate all */
	bool poked;
	struct alert_list alerts;	/* every alert in flight */
	size_t count;
	struct local_key local[LOCAL_KEYS_MAX];
	bool started;
} al = { .alerts = TAILQ_HEAD_INITIALIZER(al.alerts) };


/*
 * The thresholds' candidates, claimed.  $1 instance, $2 repeat_after ms,
 * $3 consecutive failures, $4 failure rate (millionths), $5 slow_sync ms,
 * $6 stale_after ms, $7 the rate's minimum of sessions, $8 one clinic
 * (its failures and the rate only) or NULL (everything).
 */
#define SQL_MS(p) "(" p "::bigint * interval '1 millisecond')"
static const char sql_scan[] =
    "WITH en AS ("
    " SELECT u.id, coalesce(u.clinic_name, '') AS name FROM users u"
    " WHERE u.idexx_sync_enabled AND ($8::uuid IS NULL OR u.id = $8::uuid)),"
    "cf AS ("
    " SELECT 'consecutive_failures:' || en.id AS key,"
    "  'consecutive_failures' AS kind, en.id AS user_id,"
    "  json_build_object('n', count(*), 'class',"
    "  (array_agg(s.class ORDER BY s.started_at DESC))[1],"
    "  'last_at', max(s.completed_at)) AS facts"
    " FROM en CROSS JOIN LATERAL (SELECT x.status, x.started_at,"
    "  x.completed_at, x.error_details->>'class' AS class"
    "  FROM idexx_sync_sessions x WHERE x.user_id = en.id"
    "  AND x.kind <> 'validate' AND x.status <> 'running'"
    "  ORDER BY x.started_at DESC LIMIT $3::int) s"
    " GROUP BY en.id HAVING count(*) = $3::int"
    " AND bool_and(s.status IN ('failed', 'timeout'))),"
    "w AS ("
    " SELECT x.user_id, x.status IN ('failed', 'timeout') AS bad"
    " FROM idexx_sync_sessions x WHERE x.completed_at > now() -"
    " interval '1 hour' AND x.kind <> 'validate'),"
    "rate AS ("
    " SELECT 'failure_rate' AS key, 'failure_rate' AS kind,"
    "  NULL::uuid AS user_id,"
    "  json_build_object('failed', count(*) FILTER (WHERE bad),"
    "  'total', count(*), 'worst', (SELECT json_agg(json_build_object("
    "  'id', t.user_id, 'name', coalesce(u.clinic_name, ''),"
    "  'failed', t.n) ORDER BY t.n DESC, t.user_id)"
    "  FROM (SELECT user_id, count(*) AS n FROM w WHERE bad"
    "  GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 5) t"
    "  LEFT JOIN users u ON u.id = t.user_id)) AS facts"
    " FROM w HAVING count(*) >= $7::int"
    " AND count(*) FILTER (WHERE bad) * 1000000 > $4::bigint * count(*)),"
    "slow AS ("
    " SELECT 'slow_sync:' || x.user_id AS key, 'slow_sync' AS kind,"
    "  x.user_id, json_build_object('started_at', min(x.started_at),"
    "  'minutes', floor(extract(epoch FROM now() - min(x.started_at))"
    "  / 60), 'instance', min(x.instance)) AS facts"
    " FROM idexx_sync_sessions x WHERE $8::uuid IS NULL"
    " AND x.status = 'running' AND x.started_at < now() - " SQL_MS("$5")
    " GROUP BY x.user_id),"
    "stale AS ("
    " SELECT 'stale:' || u.id AS key, 'stale' AS kind, u.id AS user_id,"
    "  json_build_object('last_at', l.last_at, 'since', c.created_at)"
    "  AS facts"
    " FROM users u JOIN idexx_credentials c ON c.user_id = u.id"
    "  AND c.state = 'active'"
    /* The latest completed one, by the index on (user_id, started_at). */
    " LEFT JOIN LATERAL (SELECT x.completed_at AS last_at"
    "  FROM idexx_sync_sessions x WHERE x.user_id = u.id"
    "  AND x.kind <> 'validate' AND x.status = 'completed'"
    "  ORDER BY x.started_at DESC LIMIT 1) l ON true"
    " WHERE $8::uuid IS NULL AND u.idexx_sync_enabled"
    " AND coalesce(l.last_at, c.created_at) < now() - " SQL_MS("$6") "),"
    "cand AS (SELECT * FROM cf UNION ALL SELECT * FROM rate"
    " UNION ALL SELECT * FROM slow UNION ALL SELECT * FROM stale),"
    "claimed AS ("
    " INSERT INTO vetsync_alerts AS a (key, kind, user_id, claimed_by)"
    " SELECT key, kind, user_id, $1 FROM cand"
    " ON CONFLICT (key) DO UPDATE SET claimed_by = excluded.claimed_by,"
    " claimed_at = now(), state = 'pending', last_error = NULL"
    " WHERE a.claimed_at <= now() - " SQL_MS("$2")
    " RETURNING a.key) "
    "SELECT c.key, c.kind, coalesce(c.user_id::text, ''),"
    " coalesce(u.clinic_name, ''), c.facts::text"
    " FROM cand c JOIN claimed USING (key)"
    " LEFT JOIN users u ON u.id = c.user_id";

/*
 * One operational alert: $1 instance, $2 repeat_after, $3 key, $4 kind,
 * $5 its clinic's users.id or NULL.
 */
static const char sql_claim[] =
    "WITH claimed AS ("
    " INSERT INTO vetsync_alerts AS a (key, kind, user_id, claimed_by)"
    " VALUES ($3, $4, $5::uuid, $1)"
    " ON CONFLICT (key) DO UPDATE SET claimed_by = excluded.claimed_by,"
    " claimed_at = now(), state = 'pending', last_error = NULL"
    " WHERE a.claimed_at <= now() - " SQL_MS("$2")
    " RETURNING a.key, a.user_id) "
    "SELECT c.key, coalesce(u.clinic_name, '') FROM claimed c"
    " LEFT JOIN users u ON u.id = c.user_id";

/* The mail's fate: $1 key, $2 instance, $3 state, $4 subject, $5 error. */
static const char sql_mailed[] =
    "UPDATE vetsync_alerts SET state = $3, subject = $4, last_error = $5,"
    " mails = mails + CASE WHEN $3 = 'sent' THEN 1 ELSE 0 END,"
    " sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END"
    " WHERE key = $1 AND claimed_by = $2";

static void mail_pump(void);
static void alert_free(struct alert *);

/* --- the text of each kind --------------------------------------------- */

static const char *
jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

/* A word of [a-z_] (an exit class) or "unknown". */
static const char *
word(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz_");

	return n > 0 && n <= 40 && s[n] == '\0' ? s : "unknown";
}

static void
fmt_duration(uint64_t ms, char *out, size_t size)
{
	if (ms % 3600000 == 0)
		snprintf(out, size, "%" PRIu64 "h", ms / 3600000);
	else if (ms % 60000 == 0)
		snprintf(out, size, "%" PRIu64 "m", ms / 60000);
	else
		snprintf(out, size, "%" PRIu64 "s", ms / 1000);
}

/*
 * Subject and body of a, from facts (the scan's JSON, or the figure and
 * look of an operational alert) and the clinic's name from the database.
 */
static void
alert_compose(struct alert *a, const char *name_raw, json_t *facts,
    struct buf *body)
{
	const struct config *cf = al.sv->config;
	char name[NAME_MAX_BYTES + 1], sname[NAME_MAX_BYTES + 1];
	char rep[32], d[32], clinic[256], subject[300];
	const char *threshold = "", *figure_s = "", *look = "";
	char figure[512];
	json_t *worst;
	size_t i;

	alerts_clean(name_raw, NAME_MAX_BYTES, false, name, sizeof(name));
	alerts_clean(name_raw, 60, true, sname, sizeof(sname));
	if (a->clinic[0] != '\0')
		snprintf(clinic, sizeof(clinic), "%s%s(id %s)", name,
		    name[0] != '\0' ? " " : "", a->clinic);
	else
		snprintf(clinic, sizeof(clinic), "all clinics");
	fmt_duration(cf->alerts.repeat_after_ms, rep, sizeof(rep));
	figure[0] = '\0';
	switch (a->kind) {
	case ALERT_CONSECUTIVE_FAILURES:
		snprintf(subject, sizeof(subject), "%u consecutive failed "
		    "syncs: %s", cf->alerts.consecutive_failures,
		    sname[0] != '\0' ? sname : a->clinic);
		threshold = "alerts.consecutive_failures";
		snprintf(figure, sizeof(figure), "its last %" PRId64
		    " syncs failed (threshold %u); the last failure: %s, "
		    "class %s", (int64_t)json_integer_value(json_object_get(
		    facts, "n")), cf->alerts.consecutive_failures,
		    jstr(facts, "last_at"), word(jstr(facts, "class")));
		look = "the clinic's sync sessions and worker exits in the "
		    "audit log (vetsyncctl status); IDEXX Neo's answers to "
		    "its account (locked, expired password, down)";
		break;
	case ALERT_FAILURE_RATE: {
		int64_t f = json_integer_value(json_object_get(facts,
		    "failed"));
		int64_t t = json_integer_value(json_object_get(facts,
		    "total"));
		int n;

		snprintf(subject, sizeof(subject), "sync failure rate %.1f%% "
		    "over the last hour", t > 0 ? 100.0 * (double)f /
		    (double)t : 0.0);
		threshold = "alerts.failure_rate";
		n = snprintf(figure, sizeof(figure), "%" PRId64 " of %" PRId64
		    " syncs that ended in the last hour failed (%.1f%%, "
		    "threshold %.1f%%); most failures:", f, t, t > 0 ?
		    100.0 * (double)f / (double)t : 0.0,
		    (double)cf->alerts.failure_rate_micro / 10000.0);
		worst = json_object_get(facts, "worst");
		for (i = 0; n > 0 && (size_t)n < sizeof(figure) &&
		    i < json_array_size(worst); i++) {
			json_t *w = json_array_get(worst, i);

			alerts_clean(jstr(w, "name"), 40, false, name,
			    sizeof(name));
			n += snprintf(figure + n, sizeof(figure) - (size_t)n,
			    "\n    %s (id %s): %" PRId64 " failed", name,
			    jstr(w, "id"), (int64_t)json_integer_value(
			    json_object_get(w, "failed")));
		}
		look = "what the failures share: IDEXX Neo down or changed "
		    "(UI change alerts, snapshots in the audit log), the "
		    "database, the workers' caps";
		break;
	}
	case ALERT_SLOW_SYNC:
		alerts_clean(jstr(facts, "instance"), 64, true, name,
		    sizeof(name));
		snprintf(subject, sizeof(subject), "sync running for %" PRId64
		    " min: %s", (int64_t)json_integer_value(json_object_get(
		    facts, "minutes")), sname[0] != '\0' ? sname : a->clinic);
		threshold = "alerts.slow_sync";
		fmt_duration(cf->alerts.slow_sync_ms, d, sizeof(d));
		snprintf(figure, sizeof(figure), "a sync started at %s is "
		    "still running after %" PRId64 " min (threshold %s), on "
		    "instance %s", jstr(facts, "started_at"),
		    (int64_t)json_integer_value(json_object_get(facts,
		    "minutes")), d, name);
		look = "the worker of the clinic (vetsyncctl status), IDEXX "
		    "Neo's latency and 429s, the instance's health";
		break;
	case ALERT_STALE:
		fmt_duration(cf->alerts.stale_after_ms, d, sizeof(d));
		snprintf(subject, sizeof(subject), "no completed sync in %s: "
		    "%s", d, sname[0] != '\0' ? sname : a->clinic);
		threshold = "alerts.stale_after";
		if (jstr(facts, "last_at")[0] != '\0')
			snprintf(figure, sizeof(figure), "its last completed "
			    "sync ended at %s (threshold %s)",
			    jstr(facts, "last_at"), d);
		else
			snprintf(figure, sizeof(figure), "no sync has ever "
			    "completed; credentials stored at %s (threshold "
			    "%s)", jstr(facts, "since"), d);
		look = "whether the clinic is scheduled (its lease, "
		    "vetsyncctl status), held, or failing; the instances' "
		    "heartbeats";
		break;
	default:
		snprintf(subject, sizeof(subject), "%s%s%s",
		    a->kind == ALERT_CLINIC_HELD ? "clinic held: " :
		    a->kind == ALERT_AUDIT_SPOOL_FULL ? "audit spool full: " :
		    "audit records refused: ", a->clinic[0] != '\0' ?
		    (sname[0] != '\0' ? sname : a->clinic) : "instance ",
		    a->clinic[0] != '\0' ? "" : al.instance);
		threshold = a->kind == ALERT_CLINIC_HELD ?
		    "workers.failure_threshold, or IDEXX refusing the "
		    "credentials" : "an operational condition";
		figure_s = a->figure != NULL ? a->figure : "";
		look = a->look != NULL ? a->look : "";
		break;
	}
	if (figure[0] == '\0')
		snprintf(figure, sizeof(figure), "%s", figure_s);
	alerts_clean(subject, 200, true, sname, sizeof(sname));
	free(a->subject);
	a->subject = xasprintf("[vetsync] %s", sname);
	buf_printf(body, "vetsync alert: %s\n\n"
	    "Clinic:    %s\n"
	    "Threshold: %s\n"
	    "Figure:    %s\n"
	    "Look at:   %s\n\n"
	    "Instance %s raised it; it is not mailed again within %s "
	    "(alerts.repeat_after) while the condition holds.\n",
	    alerts_kind_name(a->kind), clinic, threshold, figure, look,
	    al.instance, rep);
}

/* --- the queue --------------------------------------------------------- */

static struct alert *
alert_find(const char *key)
{
	struct alert *a;

	TAILQ_FOREACH(a, &al.alerts, entry)
		if (strcmp(a->key, key) == 0)
			return a;
	return NULL;
}

static void
alert_free(struct alert *a)
{
	if (a == NULL)
		return;
	free(a->figure);
	free(a->look);
	free(a->subject);
	buf_release(&a->message);
	free(a);
}

static void
alert_drop(struct alert *a)
{
	TAILQ_REMOVE(&al.alerts, a, entry);
	al.count--;
	alert_free(a);
}

static void
audit_alert(const char *event, const struct alert *a, const char *status,
    const char *error)
{
	json_t *f = json_object();
	struct audit_event e = { .event = event, .status = status,
	    .clinic = a->clinic[0] != '\0' ? a->clinic : NULL };

	json_object_set_new(f, "alert", json_string(a->key));
	json_object_set_new(f, "kind", json_string(alerts_kind_name(a->kind)));
	if (a->subject != NULL)
		json_object_set_new(f, "subject", json_string(a->subject));
	if (error != NULL)
		e.error = json_pack("{s:s}", "reason", error);
	(void)audit_emit(&e, f);
}

/* Submit sql as service_role in a transaction of its own. */
static void
submit_service(db_unit_rows_cb *cb, void *arg, const char *sql, int n,
    const char *const *p)
{
	struct db_unit *u = cb != NULL ? db_unit_new_rows(cb, arg) :
	    db_unit_new(NULL, NULL);

	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
	(void)db_unit_add_prepared(u, sql, n, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(al.db, u);
}

/* Write the mail's fate on the alert's row (when the claim was ours). */
static void
record_outcome(const struct alert *a, const char *state, const char *error)
{
	const char *p[5] = { a->key, al.instance, state, a->subject, error };

	if (!a->claimed_in_db || al.db == NULL)
		return;
	submit_service(NULL, NULL, sql_mailed, 5, p);
}

/* The alert was claimed: log, audit, and queue its mail. */
static void
alert_claimed(struct alert *a, const char *name, json_t *facts)
{
	const struct config *cf = al.sv->config;
	struct alert_mail_text m;
	struct buf body;
	uint64_t unique = 0;

	buf_init(&body, 64 * 1024);
	alert_compose(a, name, facts, &body);
	log_warnx("alert: %s: %s", a->key, a->subject);
	audit_alert("alert_raised", a, "raised", NULL);
	if (cf->alerts.smtp_url == NULL) {
		record_outcome(a, "failed", "no mail server (alerts.smtp_url)");
		buf_release(&body);
		alert_drop(a);
		return;
	}
	if (getrandom(&unique, sizeof(unique), 0) != (ssize_t)sizeof(unique))
		unique = clock_mono_ns();
	memset(&m, 0, sizeof(m));
	m.from = cf->alerts.from;
	m.to = cf->alerts.to;
	m.subject = a->subject;
	m.body = body.data != NULL ? body.data : "";
	m.key = a->key;
	m.wall_ms = clock_wall_ms();
	m.unique = unique;
	buf_init(&a->message, OUTBOUND_MAIL_MAX);
	if (alerts_format(&m, &a->message) < 0) {
		log_warnx("alert: %s: the mail could not be built", a->key);
		record_outcome(a, "failed", "the mail could not be built");
		buf_release(&body);
		alert_drop(a);
		return;
	}
	buf_release(&body);
	a->state = AS_QUEUED;
	a->claimed_ms = clock_mono_ms();
	a->next_ms = a->claimed_ms;
	mail_pump();
}

static void
mail_done(const struct outbound_response *r, void *arg)
{
	struct alert *a = arg;
	uint64_t now = clock_mono_ms(), delay;
	char why[OUTBOUND_ERR_MAX + 64];
	bool final;

	if (!al.started) {
		/* alerts_stop() ran: a left the list then. */
		alert_free(a);
		return;
	}
	if (r->error == 0 && r->status >= 200 && r->status < 300) {
		log_info("alert: %s: mailed to %s", a->key,
		    al.sv->config->alerts.to);
		audit_alert("alert_mailed", a, "ok", NULL);
		record_outcome(a, "sent", NULL);
		alert_drop(a);
		mail_pump();
		return;
	}
	if (r->error == 0)
		snprintf(why, sizeof(why), "the mail server answered %ld",
		    r->status);
	else
		snprintf(why, sizeof(why), "%s", r->error_text);
	a->attempts++;
	delay = alerts_retry_ms(a->attempts);
	final = (r->error == 0 && r->status >= 500) ||
	    (r->error == 0 && r->status < 400) || r->error == -ECANCELED ||
	    now + delay > a->claimed_ms + al.sv->config->alerts.repeat_after_ms;
	if (final) {
		log_warnx("alert: %s: not mailed: %s%s", a->key, why,
		    r->error == 0 && r->status >= 500 ? " (refused for good)" :
		    "");
		audit_alert("alert_mailed", a, "failed", why);
		record_outcome(a, "failed", why);
		alert_drop(a);
	} else {
		log_warnx("alert: %s: mail attempt %u failed: %s; again in "
		    "%" PRIu64 " ms", a->key, a->attempts, why, delay);
		a->state = AS_QUEUED;
		a->next_ms = now + delay;
	}
	mail_pump();
}

/* Send the first mail that is due, one at a time. */
static void
mail_pump(void)
{
	const struct config *cf = al.sv->config;
	struct outbound_mail m;
	struct alert *a, *due = NULL;
	struct timeval tv;
	uint64_t now = clock_mono_ms(), next = UINT64_MAX;
	char scratch[1100];
	int n, r;

	if (!al.started)
		return;
	TAILQ_FOREACH(a, &al.alerts, entry) {
		if (a->state == AS_SENDING)
			return;
		if (a->state != AS_QUEUED)
			continue;
		if (a->next_ms <= now && due == NULL)
			due = a;
		else if (a->next_ms < next)
			next = a->next_ms;
	}
	if (due == NULL) {
		if (next != UINT64_MAX) {
			tv = clock_timeval_ms(next - now);
			evtimer_add(al.mail_timer, &tv);
		}
		return;
	}
	memset(&m, 0, sizeof(m));
	m.url = cf->alerts.smtp_url;
	m.password = al.have_password ? al.password.data : NULL;
	m.from = cf->alerts.from;
	m.message = due->message.data;
	m.len = due->message.len;
	m.timeout_ms = MAIL_TIMEOUT_MS;
	n = alerts_split_rcpt(cf->alerts.to != NULL ? cf->alerts.to : "",
	    scratch, sizeof(scratch), m.rcpt, OUTBOUND_RCPT_MAX);
	r = n > 0 ? outbound_mail(&m, mail_done, due) : -EINVAL;
	if (r < 0) {
		log_warnx("alert: %s: not mailed: %s", due->key,
		    strerror(-r));
		audit_alert("alert_mailed", due, "failed", strerror(-r));
		record_outcome(due, "failed", strerror(-r));
		alert_drop(due);
		mail_pump();
		return;
	}
	due->state = AS_SENDING;
}

static void
mail_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	mail_pump();
}

/* --- claims ------------------------------------------------------------ */

/* Without the database: the same key at most once per repeat_after here. */
static bool
local_claim(const char *key)
{
	uint64_t now = clock_mono_ms();
	size_t oldest = 0;

	for (size_t i = 0; i < LOCAL_KEYS_MAX; i++) {
		if (strcmp(al.local[i].key, key) == 0) {
			if (now - al.local[i].at_ms <
			    al.sv->config->alerts.repeat_after_ms)
				return false;
			al.local[i].at_ms = now;
			return true;
		}
		if (al.local[i].at_ms < al.local[oldest].at_ms)
			oldest = i;
	}
	snprintf(al.local[oldest].key, sizeof(al.local[oldest].key), "%s",
	    key);
	al.local[oldest].at_ms = now;
	return true;
}

static bool
is_uuid(const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' :
		    strchr(hex, s[i]) == NULL || s[i] == '\0')
			return false;
	return true;
}

static void
claim_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct alert *a = arg;
	json_t *facts;

	if (!al.started) {
		alert_free(a);
		return;
	}
	if (r == -ECANCELED) {
		alert_drop(a);
		return;
	}
	facts = json_pack("{s:s,s:s}", "figure", a->figure != NULL ?
	    a->figure : "", "look", a->look != NULL ? a->look : "");
	if (r < 0) {
		/* The database said no: this process decides alone. */
		log_debug("alert: %s: claim failed (%s): deduplicated here",
		    a->key, error != NULL ? error : strerror(-r));
		if (local_claim(a->key))
			alert_claimed(a, "", facts);
		else
			alert_drop(a);
	} else if (db_result_rows(rows) == 1) {
		a->claimed_in_db = true;
		alert_claimed(a, db_result_value(rows, 0, 1), facts);
	} else {
		log_debug("alert: %s: mailed within alerts.repeat_after "
		    "already", a->key);
		alert_drop(a);
	}
	json_decref(facts);
}

static void
raise_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct alert *a;
	char rep[32];
	const char *p[5];

	TAILQ_FOREACH(a, &al.alerts, entry) {
		if (a->state != AS_RAISED)
			continue;
		a->state = AS_CLAIMING;
		if (al.db == NULL || !db_async_connected(al.db)) {
			claim_done(-ENOTCONN, "not connected", NULL, a);
			/* claim_done() may have dropped a: start again. */
			event_active(al.raise_timer, EV_TIMEOUT, 1);
			return;
		}
		snprintf(rep, sizeof(rep), "%" PRIu64,
		    al.sv->config->alerts.repeat_after_ms);
		p[0] = al.instance;
		p[1] = rep;
		p[2] = a->key;
		p[3] = alerts_kind_name(a->kind);
		p[4] = is_uuid(a->clinic) ? a->clinic : NULL;
		submit_service(claim_done, a, sql_claim, 5, p);
	}
}

void
alerts_raise(enum alert_kind kind, const char *id, const char *figure,
    const char *look)
{
	struct alert *a;
	char key[ALERTS_KEY_MAX];

	if (!al.started)
		return;
	if (id != NULL && id[0] != '\0')
		snprintf(key, sizeof(key), "%s:%s", alerts_kind_name(kind),
		    id);
	else
		snprintf(key, sizeof(key), "%s:%s", alerts_kind_name(kind),
		    al.instance);
	if (alert_find(key) != NULL)
		return;
	if (al.count >= ALERTS_QUEUE_MAX) {
		log_warnx("alert: %s: dropped: %zu alerts already wait",
		    key, al.count);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->kind = kind;
	a->state = AS_RAISED;
	snprintf(a->key, sizeof(a->key), "%s", key);
	snprintf(a->clinic, sizeof(a->clinic), "%s", id != NULL ? id : "");
	a->figure = xstrdup(figure != NULL ? figure : "");
	a->look = xstrdup(look != NULL ? look : "");
	TAILQ_INSERT_TAIL(&al.alerts, a, entry);
	al.count++;
	event_active(al.raise_timer, EV_TIMEOUT, 1);
}

/* --- the scan ---------------------------------------------------------- */

static void
scan_done(int r, const char *error, const struct db_result *rows, void *arg)
{
	json_error_t jerr;
	enum alert_kind kind;
	struct alert *a;
	json_t *facts;

	al.scanning = false;
	if (!al.started)
		return;
	if (r < 0) {
		if (r != -ECANCELED)
			log_warnx("alerts: the thresholds could not be "
			    "evaluated: %s", error != NULL ? error :
			    strerror(-r));
		return;
	}
	for (size_t i = 0; i < db_result_rows(rows); i++) {
		const char *key = db_result_value(rows, i, 0);

		if (key == NULL || !alerts_kind_parse(db_result_value(rows, i,
		    1), &kind))
			continue;
		if (alert_find(key) != NULL)
			continue;
		if (al.count >= ALERTS_QUEUE_MAX) {
			log_warnx("alert: %s: dropped: the mail queue is full",
			    key);
			continue;
		}
		facts = json_loads(db_result_value(rows, i, 4), 0, &jerr);
		a = xcalloc(1, sizeof(*a));
		a->kind = kind;
		a->state = AS_CLAIMING;
		a->claimed_in_db = true;
		snprintf(a->key, sizeof(a->key), "%s", key);
		snprintf(a->clinic, sizeof(a->clinic), "%s",
		    db_result_value(rows, i, 2));
		TAILQ_INSERT_TAIL(&al.alerts, a, entry);
		al.count++;
		alert_claimed(a, db_result_value(rows, i, 3), facts);
		json_decref(facts);
	}
	if (al.poked)
		event_active(al.poke_timer, EV_TIMEOUT, 1);
}

/* Evaluate the thresholds: clinic's failures and the rate, or all. */
static void
scan(const char *clinic)
{
	const struct config *cf = al.sv->config;
	char v[7][24];
	const char *p[8];

	if (al.db == NULL || !db_async_connected(al.db) || al.sv->stopping)
		return;
	snprintf(v[0], sizeof(v[0]), "%" PRIu64, cf->alerts.repeat_after_ms);
	snprintf(v[1], sizeof(v[1]), "%u", cf->alerts.consecutive_failures);
	snprintf(v[2], sizeof(v[2]), "%" PRIu64,
	    cf->alerts.failure_rate_micro);
	snprintf(v[3], sizeof(v[3]), "%" PRIu64, cf->alerts.slow_sync_ms);
	snprintf(v[4], sizeof(v[4]), "%" PRIu64, cf->alerts.stale_after_ms);
	snprintf(v[5], sizeof(v[5]), "%d", ALERTS_RATE_MIN_SESSIONS);
	p[0] = al.instance;
	for (size_t i = 0; i < 6; i++)
		p[i + 1] = v[i];
	p[7] = clinic;
	al.scanning = true;
	submit_service(scan_done, NULL, sql_scan, 8, p);
}

static void
scan_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = clock_timeval_ms(al.scan_ms);

	if (!al.scanning)
		scan(NULL);
	evtimer_add(al.scan_timer, &tv);
}

static void
poke_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	if (!al.poked || al.scanning)
		return;
	al.poked = false;
	scan(al.poke_clinic[0] != '\0' ? al.poke_clinic : NULL);
}

void
alerts_job_ended(const char *id)
{
	struct timeval tv = clock_timeval_ms(POKE_DELAY_MS);

	if (!al.started || !is_uuid(id))
		return;
	/* Two clinics before the scan: evaluate them all. */
	if (al.poked && strcmp(al.poke_clinic, id) != 0)
		al.poke_clinic[0] = '\0';
	else if (!al.poked)
		snprintf(al.poke_clinic, sizeof(al.poke_clinic), "%s", id);
	al.poked = true;
	evtimer_add(al.poke_timer, &tv);
}

/* --- start and stop ---------------------------------------------------- */

void
alerts_start(const struct supervisor *s, struct db_async *db,
    const char *instance)
{
	struct event_base *base = s->base;
	const char *env = getenv(ALERTS_SCAN_ENV);
	char err[SECRET_ERR_MAX];
	struct timeval tv = clock_timeval_ms(1000);
	char *end;
	int r;

	if (al.started)
		return;
	al.sv = s;
	al.base = base;
	al.db = db;
	al.instance = xstrdup(instance);
	al.scan_ms = ALERTS_SCAN_MS;
	if (env != NULL) {
		unsigned long long v = strtoull(env, &end, 10);

		if (*env != '\0' && *end == '\0' && v >= 200 && v <= 3600000)
			al.scan_ms = v;
		else
			log_warnx("alerts: %s='%s' ignored: 200 to 3600000 "
			    "(ms)", ALERTS_SCAN_ENV, log_q(env));
	}
	buf_init(&al.password, SECRET_SIZE_MAX + 1);
	if (al.sv->config->alerts.smtp_url != NULL) {
		r = secret_read(SECRET_SMTP_PASSWORD, &al.password, err,
		    sizeof(err));
		if (r == 0)
			al.have_password = true;
		else if (r != -ENOENT)
			log_warnx("alerts: mail without a password: %s", err);
		if ((r = outbound_init(base)) < 0)
			log_warnx("alerts: mail cannot be sent: %s",
			    strerror(-r));
		log_info("alerts: mail to %s through %s%s",
		    al.sv->config->alerts.to, outbound_url_loopback(
		    al.sv->config->alerts.smtp_url) ? "a local server" :
		    "the configured server", al.have_password ?
		    ", authenticated" : "");
	} else
		log_info("alerts: no alerts.smtp_url: alerts are logged and "
		    "audited, not mailed");
	al.scan_timer = evtimer_new(base, scan_timer_cb, NULL);
	al.poke_timer = evtimer_new(base, poke_timer_cb, NULL);
	al.raise_timer = evtimer_new(base, raise_timer_cb, NULL);
	al.mail_timer = evtimer_new(base, mail_timer_cb, NULL);
	if (al.scan_timer == NULL || al.poke_timer == NULL ||
	    al.raise_timer == NULL || al.mail_timer == NULL)
		fatalx("out of memory");
	/* The first scan once the database had a second to connect. */
	evtimer_add(al.scan_timer, &tv);
	al.started = true;
}

void
alerts_stop(void)
{
	struct alert *a;
	size_t queued = 0;

	if (!al.started)
		return;
	al.started = false;
	while ((a = TAILQ_FIRST(&al.alerts)) != NULL) {
		TAILQ_REMOVE(&al.alerts, a, entry);
		/* A claim in flight frees its alert in claim_done(). */
		if (a->state == AS_CLAIMING && !a->claimed_in_db)
			continue;
		if (a->state == AS_SENDING)
			continue;	/* outbound_free() calls mail_done() */
		queued += a->state == AS_QUEUED;
		alert_free(a);
	}
	al.count = 0;
	if (queued > 0)
		log_warnx("alerts: stopping: %zu mail(s) not sent", queued);
	event_free(al.scan_timer);
	event_free(al.poke_timer);
	event_free(al.raise_timer);
	event_free(al.mail_timer);
	buf_release_secret(&al.password);
	al.have_password = false;
	free(al.instance);
	al.instance = NULL;
}
