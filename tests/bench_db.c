/*
 * Benchmark (not a test; tests/bench/db.sh, "make bench-db"): the database
 * work of reconciliation.  NCLINICS clinics (users.id uuids the script
 * created, 00000000-0000-4000-8000-<12-digit i>) each deliver NCONS
 * completed consultations with 1.5 KiB of notes, through reconcile_start(),
 * reconcile_record() and reconcile_finish() as workers.c calls them, into
 * the asynchronous layer of db.c.  Everything is queued at once, then the
 * loop runs until the queue is empty.  Two passes: the first creates the
 * cases, the second finds nothing to change.  Prints the wall time and
 * the time per consultation of each.
 *
 * usage: bench_db CONNINFO [NCLINICS [NCONS]]  (password: PGPASSWORD)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"

#include "proto/frame.h"

#include "supervisor/db.h"
#include "supervisor/reconcile.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

struct supervisor *sv;

static struct db_async *db;
static struct event_base *base;

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (db_async_pending(db) == 0)
		event_base_loopbreak(base);
}

static void
pass(unsigned nclinics, unsigned ncons, int n)
{
	static char notes[1537];
	char clinic[37], cid[32], aid[32], pid[32], pname[32], date[32];
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Consultation c = VETSYNC__CONSULTATION__INIT;
	Vetsync__Patient p = VETSYNC__PATIENT__INIT;
	struct worker_outcome o;
	struct worker_job job;
	struct event *tick;
	struct timeval tv = { 0, 2000 };
	uint64_t t0, t1;

	memset(notes, 'n', sizeof(notes) - 1);
	env.msg_case = VETSYNC__ENVELOPE__MSG_CONSULTATION;
	env.consultation = &c;
	c.patient = &p;
	c.status = "completed";
	c.notes = notes;
	c.discharge_summary = "Discharged; recheck in two weeks.";
	memset(&o, 0, sizeof(o));
	o.cls = WORKER_EXIT_CLEAN;
	o.result_ok = true;

	t0 = clock_mono_ns();
	for (unsigned i = 1; i <= nclinics; i++) {
		struct reconcile *r;

		snprintf(clinic, sizeof(clinic),
		    "00000000-0000-4000-8000-%012u", i);
		memset(&job, 0, sizeof(job));
		job.id = i;
		job.kind = WORKER_JOB_RECONCILE_NOTES;
		job.clinic = clinic;
		job.timezone = "America/Denver";
		r = reconcile_start(&job);
		for (unsigned k = 1; k <= ncons; k++) {
			c.job_id = i;
			snprintf(cid, sizeof(cid), "%u", i * 1000 + k);
			snprintf(aid, sizeof(aid), "a%u", i * 1000 + k);
			snprintf(pid, sizeof(pid), "p%u", k);
			snprintf(pname, sizeof(pname), "Patient %u", k);
			snprintf(date, sizeof(date),
			    "2026-01-%02uT%02u:00:00Z", 1 + k % 28, k % 24);
			c.consultation_id = cid;
			c.appointment_id = aid;
			c.date_utc = date;
			p.id = pid;
			p.name = pname;
			reconcile_record(r, &env);
		}
		reconcile_finish(r, &o);
	}
	t1 = clock_mono_ns();
	tick = event_new(base, -1, EV_PERSIST, drain_cb, NULL);
	evtimer_add(tick, &tv);
	event_base_dispatch(base);
	event_free(tick);
	{
		uint64_t t2 = clock_mono_ns();
		double total = (double)(t2 - t0) / 1e6;
		double per = total / ((double)nclinics * ncons);

		printf("pass %d: %u clinics x %u consultations: queued in "
		    "%.0f ms, written in %.0f ms; %.3f ms per consultation "
		    "(%s)\n", n, nclinics, ncons, (double)(t1 - t0) / 1e6,
		    total, per, n == 1 ? "creates the cases" :
		    "the same results again: nothing changes");
	}
}

int
main(int argc, char **argv)
{
	struct db_params p;
	unsigned nclinics, ncons;

	if (argc < 2) {
		fprintf(stderr,
		    "usage: bench_db CONNINFO [NCLINICS [NCONS]]\n");
		return 2;
	}
	nclinics = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 1000;
	ncons = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 50;
	log_init("bench_db", LOG_LEVEL_WARNING);
	if ((base = event_base_new()) == NULL)
		fatalx("cannot create the event base");
	memset(&p, 0, sizeof(p));
	p.conninfo = argv[1];
	p.application_name = "bench_db";
	if (db_async_new(base, &p, &db) < 0)
		fatalx("cannot start the database layer");
	/* Everything is queued at once, well past what vetsyncd would hold. */
	(void)db_async_set_queue_max(db, SIZE_MAX);
	reconcile_init(db);
	pass(nclinics, ncons, 1);
	pass(nclinics, ncons, 2);
	reconcile_init(NULL);
	db_async_free(db);
	event_base_free(base);
	return 0;
}
