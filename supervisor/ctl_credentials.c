/*
 * vetsyncctl credentials set|revoke and keys status|rotate.
 *
 * set goes through vetsyncd (it alone runs workers: the validation is a
 * sandboxed job) and stores nothing itself.  revoke, status and rotate
 * work on the database directly, as service_role: a revocation is an
 * UPDATE whose trigger notifies every vetsyncd; a rotation re-encrypts the
 * rows in batches, each batch its own transaction, so it can be stopped
 * at any point and run again to finish, while syncs go on (a row is
 * readable under its old key until its batch commits, under the new one
 * after).  Passwords never come from the command line.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/parse.h"

#include "supervisor/auditlog.h"
#include "supervisor/config.h"
#include "supervisor/credcrypt.h"
#include "supervisor/credstore.h"
#include "supervisor/db.h"
#include "supervisor/secrets.h"
#include "supervisor/vetsyncctl.h"

#define LINE_MAX_CRED	1024	/* a username or a password */
#define BATCH_DEFAULT	100
#define BATCH_MAX	10000

/*
 * Read one line into buf (size bytes) from fd, without its newline.
 * Returns its length, or -1 at end of input, on error, or when the line
 * does not fit.
 */
static ssize_t
read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	char ch;
	ssize_t r;

	while ((r = read(fd, &ch, 1)) == 1) {
		if (ch == '\n')
			break;
		if (n + 1 >= size)
			return -1;
		buf[n++] = ch;
	}
	if (r < 0 || (r == 0 && n == 0))
		return -1;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return (ssize_t)n;
}

/* Ask on the terminal; echo off for a password. */
static ssize_t
prompt(const char *what, bool secret, char *buf, size_t size)
{
	struct termios old, quiet;
	ssize_t n;
	int fd;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) == -1)
		return -1;
	dprintf(fd, "%s: ", what);
	if (secret && tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		(void)tcsetattr(fd, TCSAFLUSH, &quiet);
		n = read_line(fd, buf, size);
		(void)tcsetattr(fd, TCSAFLUSH, &old);
		dprintf(fd, "\n");
	} else
		n = read_line(fd, buf, size);
	close(fd);
	return n;
}

/* From the terminal when stdin is one, else a line of stdin. */
static ssize_t
get_line(const char *what, bool secret, char *buf, size_t size)
{
	if (isatty(STDIN_FILENO))
		return prompt(what, secret, buf, size);
	return read_line(STDIN_FILENO, buf, size);
}

static int
credentials_set(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "username", required_argument, NULL, 'n' },
		{ "company-id", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	const char *user = NULL, *username = NULL, *company = NULL;
	char name[LINE_MAX_CRED], pass[LINE_MAX_CRED];
	bool as_json = false;
	json_t *req, *ans = NULL;
	const char *status;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "u:n:i:j", opts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			user = optarg;
			break;
		case 'n':
			username = optarg;
			break;
		case 'i':
			company = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (user == NULL || optind != argc) {
		fprintf(stderr, "vetsyncctl credentials set: --user ID is "
		    "required; the password is read from stdin or a prompt, "
		    "never from the command line\n");
		return EXIT_USAGE;
	}
	if (!parse_uuid_ok(user)) {
		fprintf(stderr, "vetsyncctl credentials set: --user '%s' is "
		    "not a user id (a lowercase uuid)\n", log_q(user));
		return EXIT_USAGE;
	}
	if (username == NULL) {
		if (get_line("IDEXX username", false, name, sizeof(name)) <= 0) {
			fprintf(stderr, "vetsyncctl credentials set: no "
			    "username given\n");
			return EXIT_USAGE;
		}
		username = name;
	}
	if (get_line("IDEXX password", true, pass, sizeof(pass)) <= 0) {
		explicit_bzero(pass, sizeof(pass));
		fprintf(stderr, "vetsyncctl credentials set: no password given "
		    "(one line on stdin, at most %d bytes)\n", LINE_MAX_CRED - 1);
		return EXIT_USAGE;
	}
	req = json_pack("{s:s,s:s,s:s,s:s,s:s?}", "cmd", "credentials-set",
	    "clinic", user, "username", username, "password", pass,
	    "company_id", company);
	explicit_bzero(pass, sizeof(pass));
	if (req == NULL) {
		fprintf(stderr, "vetsyncctl credentials set: the username or "
		    "the password is not UTF-8 text\n");
		return EXIT_USAGE;
	}
	fprintf(stderr, "validating with IDEXX in a sandboxed worker...\n");
	r = ctl_ask(req, &ans);
	json_decref(req);
	if (r < 0)
		return -r;
	if (!ctl_answer_ok(ans)) {
		json_decref(ans);
		return EXIT_FAILED;
	}
	status = json_string_value(json_object_get(ans, "validationStatus"));
	if (as_json) {
		json_object_del(ans, "ok");
		json_dumpf(ans, stdout, JSON_INDENT(2));
		putchar('\n');
	} else if (json_is_true(json_object_get(ans, "success")))
		printf("clinic %s: credentials valid, stored encrypted "
		    "(validated %s)\n", user,
		    json_string_value(json_object_get(ans, "lastValidated")));
	else
		printf("clinic %s: credentials %s, nothing stored: %s\n", user,
		    status != NULL ? status : "unknown",
		    json_string_value(json_object_get(ans, "error")));
	r = json_is_true(json_object_get(ans, "success")) ? 0 : EXIT_FAILED;
	json_decref(ans);
	return r;
}

static int
db_failed(struct db *db, const char *what)
{
	fprintf(stderr, "vetsyncctl: %s: %s\n", what, db_error(db));
	db_free(db);
	return EXIT_FAILED;
}

/* Append one audit row; a failure is said, and fails the command. */
static int
audit(struct db *db, const char *action, const char *clinic,
    const char *status, json_t *meta)
{
	struct auditlog_entry e;
	char *m = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
	int r;

	memset(&e, 0, sizeof(e));
	e.action = action;
	e.clinic = clinic;
	e.actor = "vetsyncctl";
	e.status = status;
	e.metadata = m;
	r = auditlog_append(db, &e, NULL);
	free(m);
	json_decref(meta);
	return r;
}


static int
credentials_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "reason", required_argument, NULL, 'r' },
		{ "conninfo", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	const char *user = NULL, *reason = "revoked by an operator";
	const char *conninfo = NULL;
	struct db_result *res = NULL;
	struct db *db = NULL;
	const char *p[1];
	size_t n;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "u:r:C:", opts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			user = optarg;
			break;
		case 'r':
			reason = optarg;
			break;
		case 'C':
			conninfo = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (user == NULL || optind != argc || !parse_uuid_ok(user)) {
		fprintf(stderr, "vetsyncctl credentials revoke: --user ID (a "
		    "lowercase uuid) is required\n");
		return EXIT_USAGE;
	}
	if ((r = ctl_db_open(conninfo, &db)) != 0)
		return r;
	p[0] = user;
	if (auditlog_service_role(db) < 0 || db_begin(db, NULL) < 0)
		return db_failed(db, "revoke");
	if (db_query(db, CREDSTORE_SQL_REVOKE, 1, p, &res) < 0) {
		db_rollback(db);
		return db_failed(db, "revoke");
	}
	n = db_result_rows(res);
	db_result_free(res);
	if (audit(db, "credentials_revoked", user, n > 0 ? "ok" : "none",
	    json_pack("{s:s,s:b}", "reason", reason, "found", n > 0)) < 0 ||
	    db_commit(db) < 0) {
		db_rollback(db);
		return db_failed(db, "revoke");
	}
	db_free(db);
	if (n == 0)
		printf("clinic %s: no credentials to revoke (none stored, or "
		    "revoked already)\n", user);
	else
		printf("clinic %s: credentials revoked and deleted; vetsyncd "
		    "is notified and stops the clinic's worker\n", user);
	return 0;
}

int
cmd_credentials(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "set") == 0)
		return credentials_set(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "revoke") == 0)
		return credentials_revoke(argc - 1, argv + 1);
	fprintf(stderr, "vetsyncctl credentials: expected 'set' or 'revoke'\n");
	return EXIT_USAGE;
}

/* The configured key for new writes, or NULL when the file is unreadable. */
static char *
configured_key_id(void)
{
	char err[CONFIG_ERR_MAX];
	struct config *cf = NULL;
	char *id;

	if (config_load(ctl_config_path(), &cf, err) < 0)
		return NULL;
	id = strdup(cf->credentials.key_id);
	config_free(cf);
	return id;
}

static bool
key_present(const char *id)
{
	char err[SECRET_ERR_MAX];
	struct buf secret;

	buf_init(&secret, 0);
	if (secret_encryption_key(id, &secret, err, sizeof(err)) < 0)
		return false;
	buf_release_secret(&secret);
	return true;
}

static int
keys_status(const char *conninfo)
{
	struct db_result *res = NULL;
	struct db *db = NULL;
	char *configured = configured_key_id();
	bool seen = false;
	int r;

	if ((r = ctl_db_open(conninfo, &db)) != 0) {
		free(configured);
		return r;
	}
	if (auditlog_service_role(db) < 0 || db_query(db, "SELECT encryption_key_id, "
	    "count(*) FILTER (WHERE state <> 'revoked'), count(*) FROM "
	    "idexx_credentials GROUP BY 1 ORDER BY 1", 0, NULL, &res) < 0) {
		free(configured);
		return db_failed(db, "keys status");
	}
	for (size_t i = 0; i < db_result_rows(res); i++) {
		const char *id = db_result_value(res, i, 0);

		if (strcmp(db_result_value(res, i, 1), "0") == 0)
			continue;	/* revoked rows hold no ciphertext */
		printf("key %-20s %s row(s)  %s%s\n", id,
		    db_result_value(res, i, 1),
		    key_present(id) ? "present here" : "MISSING here",
		    configured != NULL && strcmp(configured, id) == 0 ?
		    ", new writes" : "");
		if (configured != NULL && strcmp(configured, id) == 0)
			seen = true;
	}
	if (configured != NULL && !seen)
		printf("key %-20s 0 row(s)  %s, new writes\n", configured,
		    key_present(configured) ? "present here" : "MISSING here");
	db_result_free(res);
	db_free(db);
	free(configured);
	return 0;
}

static volatile sig_atomic_t interrupted;

static void
on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct rotation {
	struct db *db;
	struct credcrypt *keys;
	const char *to;
	unsigned long batch;
	unsigned long pause_ms;	/* between batches */
	json_t *failed;		/* ids of rows that cannot be read */
	unsigned long rotated, batches;
};

/* Re-encrypt one stored text; NULL stays NULL. */
static int
recrypt(struct rotation *rt, const char *in, char **out, char *err,
    size_t errsz)
{
	*out = NULL;
	if (in == NULL)
		return 0;
	return credcrypt_reencrypt(rt->keys, in, rt->to, out, err, errsz);
}

static const char sql_batch[] =
    "SELECT id, user_id, encryption_key_id, encrypted_username, "
    "encrypted_password, encrypted_company_id FROM idexx_credentials "
    "WHERE state <> 'revoked' AND encryption_key_id <> $1 "
    "AND NOT (id = ANY ($2::uuid[])) ORDER BY id LIMIT $3 "
    "FOR UPDATE SKIP LOCKED";

static const char sql_rewrite[] =
    "UPDATE idexx_credentials SET encrypted_username = $2, "
    "encrypted_password = $3, encrypted_company_id = $4, "
    "encryption_key_id = $5 WHERE id = $1::uuid";

static const char sql_left[] =
    "SELECT count(*) FROM idexx_credentials WHERE state <> 'revoked' "
    "AND encryption_key_id <> $1 AND NOT (id = ANY ($2::uuid[]))";

/* Rows still to do (locked ones included). */
static long
rotation_left(struct rotation *rt)
{
	struct db_result *res = NULL;
	char *failed = json_dumps(rt->failed, JSON_COMPACT);
	const char *p[2];
	long n = -1;

	/* A JSON array of uuids is a valid uuid[] literal once bracketed. */
	failed[0] = '{';
	failed[strlen(failed) - 1] = '}';
	p[0] = rt->to;
	p[1] = failed;
	if (db_query(rt->db, sql_left, 2, p, &res) == 0)
		n = atol(db_result_value(res, 0, 0));
	db_result_free(res);
	free(failed);
	return n;
}

/* One batch in one transaction; returns rows rotated, or -errno. */
static long
rotation_batch(struct rotation *rt)
{
	struct db_result *res = NULL;
	char *failed = json_dumps(rt->failed, JSON_COMPACT);
	char limit[32], err[CREDCRYPT_ERR_MAX];
	const char *p[5];
	long done = 0;
	int r;

	failed[0] = '{';
	failed[strlen(failed) - 1] = '}';
	snprintf(limit, sizeof(limit), "%lu", rt->batch);
	p[0] = rt->to;
	p[1] = failed;
	p[2] = limit;
	if ((r = db_begin(rt->db, NULL)) < 0 ||
	    (r = db_query(rt->db, sql_batch, 3, p, &res)) < 0)
		goto fail;
	for (size_t i = 0; i < db_result_rows(res); i++) {
		const char *id = db_result_value(res, i, 0);
		const char *user = db_result_value(res, i, 1);
		char *u = NULL, *pw = NULL, *co = NULL;

		r = recrypt(rt, db_result_value(res, i, 3), &u, err,
		    sizeof(err));
		if (r == 0)
			r = recrypt(rt, db_result_value(res, i, 4), &pw, err,
			    sizeof(err));
		if (r == 0)
			r = recrypt(rt, db_result_value(res, i, 5), &co, err,
			    sizeof(err));
		if (r < 0) {
			fprintf(stderr, "vetsyncctl keys rotate: clinic %s "
			    "(key %s): %s; left as it is\n", user,
			    db_result_value(res, i, 2), err);
			json_array_append_new(rt->failed, json_string(id));
			r = audit(rt->db, "credential_access", user, "failed",
			    json_pack("{s:s,s:s,s:s}", "purpose", "rotation",
			    "error", err, "to", rt->to));
		} else {
			const char *q[5] = { id, u, pw, co, rt->to };

			struct db_result *ur = NULL;

			r = db_query(rt->db, sql_rewrite, 5, q, &ur);
			db_result_free(ur);
			if (r == 0)
				r = audit(rt->db, "credential_access", user,
				    "ok", json_pack("{s:s,s:s,s:s}", "purpose",
				    "rotation", "from",
				    db_result_value(res, i, 2), "to", rt->to));
			if (r == 0)
				done++;
		}
		free(u);
		free(pw);
		free(co);
		if (r < 0)
			goto fail;
	}
	db_result_free(res);
	res = NULL;
	if ((r = db_commit(rt->db)) < 0)
		goto fail;
	free(failed);
	return done;
fail:
	fprintf(stderr, "vetsyncctl keys rotate: %s\n", db_error(rt->db));
	db_result_free(res);
	db_rollback(rt->db);
	free(failed);
	return r;
}

static int
keys_rotate(const char *conninfo, const char *to, unsigned long batch,
    unsigned long pause_ms)
{
	char err[CREDCRYPT_ERR_MAX];
	struct rotation rt;
	long total, left, n;
	unsigned waits = 0;
	int r;

	memset(&rt, 0, sizeof(rt));
	rt.to = to;
	rt.batch = batch;
	rt.pause_ms = pause_ms;
	if ((r = credcrypt_new(&rt.keys)) < 0) {
		fprintf(stderr, "vetsyncctl keys rotate: %s\n", strerror(-r));
		return EXIT_FAILED;
	}
	if (credcrypt_load_key(rt.keys, to, err, sizeof(err)) < 0) {
		fprintf(stderr, "vetsyncctl keys rotate: %s\n", err);
		credcrypt_free(rt.keys);
		return EXIT_FAILED;
	}
	if ((r = ctl_db_open(conninfo, &rt.db)) != 0) {
		credcrypt_free(rt.keys);
		return r;
	}
	rt.failed = json_array();
	if (auditlog_service_role(rt.db) < 0 || (total = rotation_left(&rt)) < 0) {
		json_decref(rt.failed);
		credcrypt_free(rt.keys);
		return db_failed(rt.db, "keys rotate");
	}
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);
	fprintf(stderr, "rotating %ld row(s) to key %s, %lu per batch\n",
	    total, to, batch);
	r = 0;
	while (!interrupted) {
		if ((n = rotation_batch(&rt)) < 0) {
			r = EXIT_FAILED;
			break;
		}
		rt.batches++;
		rt.rotated += (unsigned long)n;
		if (n > 0) {
			fprintf(stderr, "  %lu/%ld rotated\n", rt.rotated, total);
			if (rt.pause_ms > 0)
				usleep((useconds_t)(rt.pause_ms * 1000));
			continue;
		}
		/* Nothing free to take: done, or rows locked by a sync. */
		if ((left = rotation_left(&rt)) <= 0 || ++waits > 300)
			break;
		usleep(100 * 1000);
	}
	left = rotation_left(&rt);
	(void)audit(rt.db, "keys_rotated", NULL, r == 0 && left == 0 &&
	    json_array_size(rt.failed) == 0 ? "ok" : "incomplete",
	    json_pack("{s:s,s:I,s:I,s:I,s:I,s:b}", "to", to,
	    "rotated", (json_int_t)rt.rotated,
	    "failed", (json_int_t)json_array_size(rt.failed),
	    "left", (json_int_t)left, "batches", (json_int_t)rt.batches,
	    "interrupted", interrupted != 0));
	printf("rotated %lu row(s) to key %s in %lu batch(es); %zu "
	    "unreadable, %ld left%s\n", rt.rotated, to, rt.batches,
	    json_array_size(rt.failed), left < 0 ? 0 : left,
	    interrupted ? " (interrupted: run it again to finish)" : "");
	if (left != 0 || json_array_size(rt.failed) > 0)
		r = EXIT_FAILED;
	json_decref(rt.failed);
	credcrypt_free(rt.keys);
	db_free(rt.db);
	return r;
}

int
cmd_keys(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "batch", required_argument, NULL, 'b' },
		{ "pause", required_argument, NULL, 'p' },
		{ "conninfo", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	const char *sub, *to = NULL, *conninfo = NULL;
	unsigned long batch = BATCH_DEFAULT, pause_ms = 0;
	char *end;
	int ch;

	if (argc < 2 || (strcmp(argv[1], "status") != 0 &&
	    strcmp(argv[1], "rotate") != 0)) {
		fprintf(stderr, "vetsyncctl keys: expected 'status' or "
		    "'rotate'\n");
		return EXIT_USAGE;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "t:b:p:C:", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			to = optarg;
			break;
		case 'b':
			errno = 0;
			batch = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || batch < 1 ||
			    batch > BATCH_MAX) {
				fprintf(stderr, "vetsyncctl keys rotate: "
				    "--batch takes 1 to %d\n", BATCH_MAX);
				return EXIT_USAGE;
			}
			break;
		case 'p':
			errno = 0;
			pause_ms = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || pause_ms > 60000) {
				fprintf(stderr, "vetsyncctl keys rotate: "
				    "--pause takes 0 to 60000 (ms)\n");
				return EXIT_USAGE;
			}
			break;
		case 'C':
			conninfo = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return EXIT_USAGE;
	if (strcmp(sub, "status") == 0)
		return keys_status(conninfo);
	if (to == NULL) {
		fprintf(stderr, "vetsyncctl keys rotate: --to KEYID is "
		    "required\n");
		return EXIT_USAGE;
	}
	return keys_rotate(conninfo, to, batch, pause_ms);
}
