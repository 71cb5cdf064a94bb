/*
 * Test driver (tests/integration/db_async.sh): db.c's event-loop face,
 * db_async_*(), driven line by line from standard input so that a shell
 * script can restart PostgreSQL, send NOTIFYs from psql and read what the
 * layer did in between.  Each command line is "TAG COMMAND ARGS"; what it
 * leads to is printed as lines starting with TAG, at once or when the unit
 * is done:
 *
 *   TAG rows SQL[ ;; SQL ...]   a unit of these statements, with rows:
 *                               "TAG ok NROWS NCOLS v,v|v,v" (NULL is ~)
 *                               or "TAG err -ERRNO message"
 *   TAG exec SQL[ ;; SQL ...]   a unit without rows: "TAG ok" / "TAG err"
 *   TAG prows, TAG pexec        the same with prepared statements
 *   TAG pending                 "TAG pending N"
 *   TAG connected               "TAG connected 0|1"
 *   TAG listen CHANNEL          "TAG ok" or "TAG err -ERRNO"
 *   TAG cap BYTES               the queue's cap: "TAG ok" / "TAG err"
 *   TAG queued                  "TAG queued BYTES"
 *   TAG reconcile USER N        a notes job of USER delivering N completed
 *                               consultations (1.5 KiB of notes each)
 *                               through reconcile.c: "TAG done"
 *
 * Notifications print as "PTAG notify CHANNEL LATENCY_US PENDING" when
 * the payload is "PTAG:MICROSECONDS" (the sender's clock_timestamp(),
 * so LATENCY_US is how long delivery took; PENDING the units queued
 * then), else as "notify CHANNEL PAYLOAD"; the resynchronisation call
 * (payload NULL) as "resync.CHANNEL.N" (N counts them from 1).
 *
 * A statement's text parameters follow it, separated by tabs.  End of
 * input frees the layer (units still queued print their -ECANCELED) and
 * exits.
 *
 * usage: db_async_drive CONNINFO  (password: PGPASSWORD)
 */
#include <sys/time.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/xmalloc.h"

#include "proto/frame.h"

#include "supervisor/db.h"
#include "supervisor/reconcile.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

struct supervisor *sv;

#define LINE_MAX_LEN	(1024 * 1024)

static struct db_async *db;
static struct event_base *base;
static char inbuf[LINE_MAX_LEN];
static size_t inlen;

struct tagged {
	char tag[64];
};

static struct tagged *
tagged_new(const char *tag)
{
	struct tagged *t = xcalloc(1, sizeof(*t));

	snprintf(t->tag, sizeof(t->tag), "%.63s", tag);
	return t;
}

static void
print_rows(const char *tag, const struct db_result *rows)
{
	size_t nr = db_result_rows(rows), nc = db_result_cols(rows);

	printf("%s ok %zu %zu ", tag, nr, nc);
	for (size_t i = 0; i < nr; i++) {
		for (size_t j = 0; j < nc; j++) {
			const char *v = db_result_value(rows, i, j);

			printf("%s%s", j > 0 ? "," : "", v != NULL ? v : "~");
		}
		if (i + 1 < nr)
			putchar('|');
	}
	putchar('\n');
}

static void
rows_done(int r, const char *error, const struct db_result *rows, void *arg)
{
	struct tagged *t = arg;

	if (r == 0 && rows == NULL)
		printf("%s err 0 success without rows\n", t->tag);
	else if (r == 0)
		print_rows(t->tag, rows);
	else if (rows != NULL)
		printf("%s err %d rows passed with an error\n", t->tag, r);
	else
		printf("%s err %d %s\n", t->tag, r, error != NULL ? error :
		    "(no message)");
	free(t);
}

static void
exec_done(int r, const char *error, void *arg)
{
	struct tagged *t = arg;

	if (r == 0)
		printf("%s ok\n", t->tag);
	else
		printf("%s err %d %s\n", t->tag, r, error != NULL ? error :
		    "(no message)");
	free(t);
}

/* Add "SQL\tP1\tP2 ;; SQL ..." to u; returns 0 or a negative errno. */
static int
add_statements(struct db_unit *u, char *text, bool prepared)
{
	const char *params[DB_PARAMS_MAX + 1];
	char *stmt, *next, *sep, *sql;
	int n, r;

	for (stmt = text; stmt != NULL; stmt = next) {
		if ((sep = strstr(stmt, " ;; ")) != NULL) {
			*sep = '\0';
			next = sep + 4;
		} else
			next = NULL;
		sql = strsep(&stmt, "\t");
		for (n = 0; stmt != NULL && n <= DB_PARAMS_MAX; n++)
			params[n] = strsep(&stmt, "\t");
		r = prepared ? db_unit_add_prepared(u, sql, n, params) :
		    db_unit_add(u, sql, n, params);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A notes job of user delivering n consultations, as workers.c does it. */
static void
reconcile_job(const char *user, unsigned n)
{
	static char notes[1537];
	static uint64_t job_id;
	char cid[48], date[32];
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Consultation c = VETSYNC__CONSULTATION__INIT;
	struct worker_outcome o;
	struct worker_job job;
	struct reconcile *r;

	memset(notes, 'n', sizeof(notes) - 1);
	env.msg_case = VETSYNC__ENVELOPE__MSG_CONSULTATION;
	env.consultation = &c;
	c.status = "completed";
	c.notes = notes;
	memset(&job, 0, sizeof(job));
	job.id = ++job_id;
	job.kind = WORKER_JOB_RECONCILE_NOTES;
	job.clinic = user;
	job.timezone = "UTC";
	r = reconcile_start(&job);
	for (unsigned k = 1; k <= n; k++) {
		snprintf(cid, sizeof(cid), "%llu-%u",
		    (unsigned long long)job_id, k);
		snprintf(date, sizeof(date), "2026-01-%02uT10:00:00Z",
		    1 + k % 28);
		c.consultation_id = cid;
		c.date_utc = date;
		reconcile_record(r, &env);
	}
	memset(&o, 0, sizeof(o));
	o.cls = WORKER_EXIT_CLEAN;
	o.result_ok = true;
	reconcile_finish(r, &o);
}

static void
notified(const char *channel, const char *payload, void *arg)
{
	unsigned *resyncs = arg;
	const char *colon;
	struct timeval tv;
	long long sent, now;

	if (payload == NULL) {
		printf("resync.%s.%u\n", channel, ++*resyncs);
		return;
	}
	if ((colon = strchr(payload, ':')) == NULL || colon == payload) {
		printf("notify %s %s\n", channel, payload);
		return;
	}
	gettimeofday(&tv, NULL);
	sent = strtoll(colon + 1, NULL, 10);
	now = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
	printf("%.*s notify %s %lld %zu\n", (int)(colon - payload), payload,
	    channel, now - sent, db_async_pending(db));
}

static void
command(char *line)
{
	char *tag, *cmd, *rest;
	struct db_unit *u;
	int r;

	tag = line;
	if ((cmd = strchr(tag, ' ')) == NULL) {
		printf("%s bad command\n", tag);
		return;
	}
	*cmd++ = '\0';
	if ((rest = strchr(cmd, ' ')) != NULL)
		*rest++ = '\0';
	else
		rest = cmd + strlen(cmd);

	if (strcmp(cmd, "rows") == 0 || strcmp(cmd, "exec") == 0 ||
	    strcmp(cmd, "prows") == 0 || strcmp(cmd, "pexec") == 0) {
		struct tagged *t = tagged_new(tag);
		bool prepared = cmd[0] == 'p';

		u = cmd[prepared] == 'r' ? db_unit_new_rows(rows_done, t) :
		    db_unit_new(exec_done, t);
		if ((r = add_statements(u, rest, prepared)) < 0) {
			printf("%s err %d cannot add statement\n", tag, r);
			db_unit_free(u);
			free(t);
			return;
		}
		db_async_submit(db, u);
	} else if (strcmp(cmd, "pending") == 0) {
		printf("%s pending %zu\n", tag, db_async_pending(db));
	} else if (strcmp(cmd, "listen") == 0) {
		static unsigned resyncs[16];
		static size_t nlisten;

		if (nlisten == sizeof(resyncs) / sizeof(resyncs[0]))
			printf("%s err too many listeners\n", tag);
		else if ((r = db_async_listen(db, rest, notified,
		    &resyncs[nlisten])) < 0)
			printf("%s err %d\n", tag, r);
		else {
			nlisten++;
			printf("%s ok\n", tag);
		}
	} else if (strcmp(cmd, "cap") == 0) {
		r = db_async_set_queue_max(db, strtoull(rest, NULL, 10));
		if (r < 0)
			printf("%s err %d\n", tag, r);
		else
			printf("%s ok\n", tag);
	} else if (strcmp(cmd, "queued") == 0) {
		printf("%s queued %zu\n", tag, db_async_queued_bytes(db));
	} else if (strcmp(cmd, "reconcile") == 0) {
		char *n = strchr(rest, ' ');

		if (n == NULL) {
			printf("%s err usage: reconcile USER N\n", tag);
			return;
		}
		*n++ = '\0';
		reconcile_job(rest, (unsigned)strtoul(n, NULL, 10));
		printf("%s done\n", tag);
	} else if (strcmp(cmd, "connected") == 0) {
		printf("%s connected %d\n", tag, db_async_connected(db));
	} else
		printf("%s unknown command '%s'\n", tag, cmd);
}

static void
stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	char *nl, *start;
	ssize_t n;

	(void)what;
	(void)arg;
	n = read(fd, inbuf + inlen, sizeof(inbuf) - 1 - inlen);
	if (n <= 0) {
		event_base_loopbreak(base);
		return;
	}
	inlen += (size_t)n;
	inbuf[inlen] = '\0';
	start = inbuf;
	while ((nl = strchr(start, '\n')) != NULL) {
		*nl = '\0';
		if (*start != '\0')
			command(start);
		start = nl + 1;
	}
	inlen -= (size_t)(start - inbuf);
	if (start != inbuf)
		memmove(inbuf, start, inlen);
	if (inlen == sizeof(inbuf) - 1)
		fatalx("input line over %d bytes", LINE_MAX_LEN);
}

int
main(int argc, char **argv)
{
	struct db_params p;
	struct event *in;

	if (argc != 2) {
		fprintf(stderr, "usage: db_async_drive CONNINFO\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("db_async_drive", LOG_LEVEL_INFO);
	if ((base = event_base_new()) == NULL)
		fatalx("cannot create the event base");
	memset(&p, 0, sizeof(p));
	p.conninfo = argv[1];
	p.application_name = "db_async_drive";
	p.connect_timeout_ms = 2000;
	if (db_async_new(base, &p, &db) < 0)
		fatalx("cannot start the database layer");
	reconcile_init(db);
	in = event_new(base, 0, EV_READ | EV_PERSIST, stdin_cb, NULL);
	event_add(in, NULL);
	event_base_dispatch(base);
	event_free(in);
	reconcile_init(NULL);
	db_async_free(db);
	event_base_free(base);
	return 0;
}
