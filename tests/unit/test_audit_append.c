/*
 * auditlog_append() (supervisor/auditlog.h) on a real PostgreSQL: run by
 * tests/integration/audit.sh with $VETSYNC_TEST_CONNINFO naming a migrated
 * database and the daemon's role; every case is skipped without it.  The
 * rows it appends are checked column by column, and refused input must
 * send nothing (the chain head does not move).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/auditlog.h"
#include "supervisor/db.h"

#define USER "11111111-2222-4333-8444-5555555555aa"

static int
setup(void **state)
{
	struct db_params p = { .application_name = "test_audit_append" };
	char err[DB_ERR_MAX];
	struct db *db = NULL;

	*state = NULL;
	if ((p.conninfo = getenv("VETSYNC_TEST_CONNINFO")) == NULL)
		return 0;
	if (db_connect(&p, &db, err, sizeof(err)) < 0) {
		print_error("%s\n", err);
		return -1;
	}
	/* head() reads the chain head, as auditlog_append() will write. */
	if (db_exec(db, "SET ROLE service_role") < 0) {
		print_error("%s\n", db_error(db));
		db_free(db);
		return -1;
	}
	*state = db;
	return 0;
}

static int
teardown(void **state)
{
	db_free(*state);
	return 0;
}

/* One text value of one row; "" for SQL NULL. */
static void
value(struct db *db, const char *sql, int64_t seq, char *out, size_t outsz)
{
	struct db_result *res = NULL;
	char s[32];
	const char *p[1] = { s };

	snprintf(s, sizeof(s), "%lld", (long long)seq);
	assert_int_equal(db_query(db, sql, 1, p, &res), 0);
	assert_int_equal(db_result_rows(res), 1);
	snprintf(out, outsz, "%s", db_result_value(res, 0, 0) != NULL ?
	    db_result_value(res, 0, 0) : "");
	db_result_free(res);
}

static int64_t
head(struct db *db)
{
	char v[32];

	value(db, "SELECT seq::text FROM idexx_sync_audit_chain "
	    "WHERE $1::bigint IS NOT NULL", 0, v, sizeof(v));
	return strtoll(v, NULL, 10);
}

static void
test_append_columns(void **state)
{
	struct db *db = *state;
	struct auditlog_entry e = {
		.action = "keys_rotated", .clinic = USER, .actor = "operator",
		.session_id = "rotation-1", .status = "ok",
		.policy_hash = "abc", .metadata = "{\"rows\": 3}",
	};
	int64_t seq = 0, before;
	char v[512];

	if (db == NULL)
		skip();
	before = head(db);
	assert_int_equal(auditlog_append(db, &e, &seq), 0);
	assert_int_equal(seq, before + 1);
	value(db, "SELECT concat_ws('|', user_id, clinic_id, actor, action, "
	    "status, session_id, policy_hash, error_details IS NULL, metadata) "
	    "FROM idexx_sync_audit_log l WHERE l.seq = $1::bigint", seq, v,
	    sizeof(v));
	assert_string_equal(v, USER "|" USER "|operator|keys_rotated|ok|"
	    "rotation-1|abc|t|{\"rows\": 3}");
}

static void
test_append_defaults(void **state)
{
	struct db *db = *state;
	struct auditlog_entry e = {
		.action = "credentials_revoked", .clinic = "test-clinic",
		.status = "failed", .error_details = "{\"class\": \"db\"}",
	};
	int64_t seq = 0;
	char v[512];

	if (db == NULL)
		skip();
	assert_int_equal(auditlog_append(db, &e, &seq), 0);
	/* Not a uuid: no user_id, the clinic is in metadata. */
	value(db, "SELECT concat_ws('|', coalesce(user_id::text, '-'), actor, "
	    "error_details, metadata) FROM idexx_sync_audit_log l "
	    "WHERE l.seq = $1::bigint", seq, v, sizeof(v));
	assert_string_equal(v, "-|vetsyncctl|{\"class\": \"db\"}|"
	    "{\"clinic\": \"test-clinic\"}");
}

static void
test_append_refused(void **state)
{
	static const struct auditlog_entry bad[] = {
		{ .action = NULL },
		{ .action = "" },
		{ .action = "x", .metadata = "[1, 2]" },
		{ .action = "x", .metadata = "{\"a\": " },
		{ .action = "x", .error_details = "\"text\"" },
	};
	struct db *db = *state;
	int64_t before;

	if (db == NULL)
		skip();
	before = head(db);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (auditlog_append(db, &bad[i], NULL) != -EINVAL)
			fail_msg("entry %zu accepted", i);
	assert_int_equal(head(db), before);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_columns),
		cmocka_unit_test(test_append_defaults),
		cmocka_unit_test(test_append_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
