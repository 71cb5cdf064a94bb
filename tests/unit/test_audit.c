/*
 * Unit tests for the audit spool (supervisor/audit.c) through audit.h:
 * records come back in order, each once until confirmed; the cursor makes
 * a reopened spool resume where the database stopped; a record cut short
 * by a crash is removed; the limit refuses records and keeps the earlier
 * ones; compaction and the numbering of a spool written without a cursor.
 * Files live in a fresh directory (on tmpfs when there is one: fsync).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "supervisor/audit.h"

static char dir[PATH_MAX], spool[PATH_MAX + 32], cursor[PATH_MAX + 32];

static int
setup(void **state)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";

	(void)state;
	snprintf(dir, sizeof(dir), "%s/vs-audit-XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(spool, sizeof(spool), "%s/audit.spool", dir);
	snprintf(cursor, sizeof(cursor), "%s/audit.spool.cursor", dir);
	unsetenv(AUDIT_SPOOL_ENV);
	return 0;
}

static int
teardown(void **state)
{
	char path[PATH_MAX + 64];

	(void)state;
	audit_close();
	unlink(spool);
	unlink(cursor);
	snprintf(path, sizeof(path), "%s.tmp", spool);
	unlink(path);
	snprintf(path, sizeof(path), "%s.tmp", cursor);
	unlink(path);
	rmdir(dir);
	unsetenv(AUDIT_SPOOL_ENV);
	return 0;
}

static off_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void
emit(const char *event, int n)
{
	json_t *f = json_object();

	json_object_set_new(f, "n", json_integer(n));
	assert_int_equal(audit_emit(&(struct audit_event){ .event = event,
	    .clinic = "c1", .job = 7 }, f), 0);
}

/* Read everything not yet handed out; check seqs first..last in order. */
static void
expect_batch(struct audit_batch *b, uint64_t first, uint64_t last)
{
	json_t *rec;
	size_t i;
	int n;

	n = audit_spool_next(1000, 1 << 20, b);
	assert_int_equal(n, (int)(last - first + 1));
	assert_int_equal(b->first_seq, first);
	assert_int_equal(b->last_seq, last);
	json_array_foreach(b->records, i, rec)
		assert_int_equal(json_integer_value(json_object_get(rec,
		    "seq")), first + i);
}

static void
test_fields(void **state)
{
	struct audit_batch b;
	json_t *rec, *err = json_object();

	(void)state;
	assert_int_equal(audit_open(spool), 0);
	assert_int_equal(strlen(audit_spool_epoch()), AUDIT_EPOCH_LEN - 1);
	assert_true(file_size(cursor) > 0);
	json_object_set_new(err, "class", json_string("seccomp"));
	assert_int_equal(audit_emit(&(struct audit_event){
	    .event = "worker_exit", .clinic = "c1", .job = 42,
	    .status = "seccomp", .policy_hash = "abc", .error = err }, NULL),
	    0);
	audit_record("supervisor_started", NULL, 0, NULL);
	expect_batch(&b, 1, 2);
	rec = json_array_get(b.records, 0);
	assert_string_equal(json_string_value(json_object_get(rec, "event")),
	    "worker_exit");
	assert_string_equal(json_string_value(json_object_get(rec, "session")),
	    "job-42");
	assert_string_equal(json_string_value(json_object_get(rec, "actor")),
	    "vetsyncd");
	assert_string_equal(json_string_value(json_object_get(rec, "status")),
	    "seccomp");
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(rec, "error"), "class")), "seccomp");
	rec = json_array_get(b.records, 1);
	assert_null(json_object_get(rec, "session"));
	assert_null(json_object_get(rec, "clinic"));
	assert_int_equal(audit_count(), 2);
	audit_batch_release(&b);
}

static void
test_confirm_truncates_and_resumes(void **state)
{
	struct audit_batch b;
	char epoch[AUDIT_EPOCH_LEN];

	(void)state;
	assert_int_equal(audit_open(spool), 0);
	snprintf(epoch, sizeof(epoch), "%s", audit_spool_epoch());
	for (int i = 0; i < 3; i++)
		emit("e", i);
	expect_batch(&b, 1, 3);
	/* Handed out once: nothing more until confirmed or rewound. */
	{
		struct audit_batch b2;

		assert_int_equal(audit_spool_next(10, 1 << 20, &b2), 0);
		audit_batch_release(&b2);
	}
	assert_int_equal(audit_spool_confirm(&b), 0);
	audit_batch_release(&b);
	assert_int_equal(file_size(spool), 0);
	assert_int_equal(audit_spool_confirmed(), 3);
	audit_close();

	/* Reopened: the same epoch, numbering goes on from the cursor. */
	assert_int_equal(audit_open(spool), 0);
	assert_string_equal(audit_spool_epoch(), epoch);
	emit("e", 4);
	expect_batch(&b, 4, 4);
	audit_batch_release(&b);
}

static void
test_unconfirmed_replayed(void **state)
{
	struct audit_batch b, b1;

	(void)state;
	assert_int_equal(audit_open(spool), 0);
	for (int i = 0; i < 5; i++)
		emit("e", i);
	/* Two batches out, the first confirmed; then a crash. */
	assert_int_equal(audit_spool_next(2, 1 << 20, &b1), 2);
	assert_int_equal(audit_spool_next(10, 1 << 20, &b), 3);
	assert_int_equal(audit_spool_confirm(&b1), 0);
	audit_batch_release(&b1);
	audit_batch_release(&b);
	audit_close();

	assert_int_equal(audit_open(spool), 0);
	assert_int_equal(audit_spool_confirmed(), 2);
	expect_batch(&b, 3, 5);
	audit_batch_release(&b);
	/* Refused by the database: rewound, handed out again. */
	audit_spool_rewind();
	expect_batch(&b, 3, 5);
	assert_int_equal(audit_spool_confirm(&b), 0);
	audit_batch_release(&b);
	assert_int_equal(audit_spool_backlog(), 0);
}

/* The cursor moved, then a crash before the spool was truncated. */
static void
test_confirmed_not_truncated(void **state)
{
	struct audit_batch b;
	char text[128];
	int fd, n;

	(void)state;
	assert_int_equal(audit_open(spool), 0);
	emit("e", 1);
	emit("e", 2);
	n = snprintf(text, sizeof(text), "{\"epoch\":\"%s\",\"seq\":2}\n",
	    audit_spool_epoch());
	audit_close();
	fd = open(cursor, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, (size_t)n), n);
	close(fd);

	assert_int_equal(audit_open(spool), 0);
	assert_int_equal(file_size(spool), 0);
	assert_int_equal(audit_spool_next(10, 1 << 20, &b), 0);
	audit_batch_release(&b);
	emit("e", 3);
	expect_batch(&b, 3, 3);
	audit_batch_release(&b);
}

static void
test_torn_record_removed(void **state)
{
	struct audit_batch b;
	int fd;

	(void)state;
	assert_int_equal(audit_open(spool), 0);
	emit("e", 1);
	emit("e", 2);
	audit_close();
	fd = open(spool, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"event\":\"e\",\"seq\":3,\"t", 24), 24);
	close(fd);

	assert_int_equal(audit_open(spool), 0);
	emit("e", 3);
	expect_batch(&b, 1, 3);
	audit_batch_release(&b);
}

static void
test_limit_refuses_keeps_earlier(void **state)
{
	struct audit_batch b;
	uint64_t accepted = 0;
	int r, refusals = 0;

	(void)state;
	setenv(AUDIT_SPOOL_ENV, "4096", 1);
	assert_int_equal(audit_open(spool), 0);
	for (int i = 0; i < 200; i++) {
		json_t *f = json_object();

		json_object_set_new(f, "n", json_integer(i));
		r = audit_emit(&(struct audit_event){ .event = "e" }, f);
		if (r == 0)
			accepted++;
		else {
			assert_int_equal(r, -ENOSPC);
			refusals++;
		}
	}
	assert_true(accepted > 10);
	assert_true(refusals > 0);
	assert_int_equal(audit_refused(), (uint64_t)refusals);
	assert_true(file_size(spool) <= 4096);
	/* Five are in the database: the spool makes room by compacting. */
	assert_int_equal(audit_spool_next(5, 1 << 20, &b), 5);
	assert_int_equal(audit_spool_confirm(&b), 0);
	audit_batch_release(&b);
	assert_int_equal(audit_emit(&(struct audit_event){ .event = "e" },
	    NULL), 0);
	assert_true(file_size(spool) <= 4096);
	{
		char head[256] = "";
		int fd = open(spool, O_RDONLY);

		assert_true(fd >= 0);
		assert_true(read(fd, head, sizeof(head) - 1) > 0);
		close(fd);
		*strchr(head, '\n') = '\0';
		if (strstr(head, "\"seq\":6,") == NULL)
			fail_msg("not compacted: the spool starts '%s'", head);
	}
	/* Every accepted record is there, in order, none missing. */
	expect_batch(&b, 6, accepted + 1);
	assert_int_equal(audit_spool_confirm(&b), 0);
	audit_batch_release(&b);
	assert_int_equal(file_size(spool), 0);
}

static void
test_bad_limit_and_cursor(void **state)
{
	static const char *const bad[] = { "abc", "100", "-5", "12k", " 9999" };
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(AUDIT_SPOOL_ENV, bad[i], 1);
		if (audit_open(spool) != -EINVAL)
			fail_msg("limit '%s' accepted", bad[i]);
	}
	unsetenv(AUDIT_SPOOL_ENV);
	fd = open(cursor, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"epoch\":\"xyz\",\"seq\":1}\n", 24), 24);
	close(fd);
	assert_int_equal(audit_open(spool), -EINVAL);
	unlink(cursor);
	assert_int_equal(audit_open(spool), 0);
}

static void
test_old_spool_renumbered(void **state)
{
	static const char old[] =
	    "{\"event\":\"a\",\"seq\":1,\"ts\":\"x\"}\n"
	    "{\"event\":\"b\",\"seq\":2,\"ts\":\"x\"}\n"
	    "not a record\n"
	    "{\"event\":\"c\",\"seq\":1,\"ts\":\"x\"}\n";
	struct audit_batch b;
	int fd;

	(void)state;
	fd = open(spool, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, old, sizeof(old) - 1),
	    (ssize_t)sizeof(old) - 1);
	close(fd);
	assert_int_equal(audit_open(spool), 0);
	emit("d", 0);
	expect_batch(&b, 1, 4);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(b.records, 2), "event")), "c");
	audit_batch_release(&b);
}

static void
test_compaction(void **state)
{
	char pad[900];
	struct audit_batch b;
	off_t before;
	int total = 1600;

	(void)state;
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	assert_int_equal(audit_open(spool), 0);
	for (int i = 0; i < total; i++) {
		json_t *f = json_object();

		json_object_set_new(f, "pad", json_string(pad));
		assert_int_equal(audit_emit(&(struct audit_event){
		    .event = "e" }, f), 0);
	}
	before = file_size(spool);
	assert_true(before > 1400 * 1024);
	assert_int_equal(audit_spool_next(1300, 1 << 22, &b), 1300);
	assert_int_equal(audit_spool_confirm(&b), 0);
	audit_batch_release(&b);
	/* The confirmed prefix is gone; the rest follows. */
	assert_true(file_size(spool) < before / 3);
	assert_int_equal(file_size(spool), (off_t)audit_spool_size());
	emit("after", 0);
	expect_batch(&b, 1301, total + 1);
	audit_batch_release(&b);
	audit_close();
	/* And the same after a reopen (the cursor says 1300). */
	assert_int_equal(audit_open(spool), 0);
	expect_batch(&b, 1301, total + 1);
	audit_batch_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_confirm_truncates_and_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unconfirmed_replayed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirmed_not_truncated,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_record_removed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_limit_refuses_keeps_earlier, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_limit_and_cursor,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_spool_renumbered,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
