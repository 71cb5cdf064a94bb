/*
 * vetsyncctl: the operators' command line.  Talks to a running vetsyncd
 * over its control socket, works on the installed files directly (policy
 * show), or on the database (migrate, audit) through supervisor/db.h.
 *
 * Exit codes: 0 success, 1 the operation failed (the database unreachable,
 * a migration refused or failed, the audit chain broken), 2 usage error,
 * 3 vetsyncd is not reachable, 4 not available in this release.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "policy/policy.h"

#include "supervisor/auditlog.h"
#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/migrate.h"
#include "supervisor/policyhash.h"
#include "supervisor/vetsyncctl.h"

#define ANSWER_MAX (16 * 1024 * 1024)

static const char *socket_path;
static const char *config_path = CONFIG_DEFAULT_PATH;

static void
usage(FILE *f)
{
	fprintf(f,
"usage: vetsyncctl [-c FILE] [-S SOCKET] COMMAND [ARGS]\n"
"commands:\n"
"  status [--json]                      the daemon, its workers and clinics\n"
"  sync --user ID [--kind notes|schedule|validate]\n"
"       [--from YYYY-MM-DD --to YYYY-MM-DD]\n"
"                                       queue a job for a clinic now (for\n"
"                                       those clinic-local dates)\n"
"  policy show                          what confines the workers\n"
"  migrate [--dry-run] [--dir DIR] [--conninfo CONNINFO]\n"
"                                       apply the pending schema migrations\n"
"                                       (from %s)\n"
"  audit verify [--conninfo CONNINFO]   check the audit log's hash chain\n"
"  audit tail [-n N] [--conninfo CONNINFO]\n"
"                                       the latest N audit records (20)\n"
"  credentials set --user ID [--username NAME] [--company-id ID] [--json]\n"
"                                       validate (in a sandboxed worker) and\n"
"                                       store a clinic's IDEXX credentials;\n"
"                                       the password from stdin, or a prompt\n"
"  credentials revoke --user ID [--reason TEXT] [--conninfo CONNINFO]\n"
"                                       delete them now; vetsyncd kills the\n"
"                                       clinic's worker and holds it\n"
"  keys status [--conninfo CONNINFO]    master key ids in use, and present\n"
"  keys rotate --to KEYID [--batch N] [--pause MS] [--conninfo CONNINFO]\n"
"                                       re-encrypt every row under KEYID, N\n"
"                                       rows (100) a transaction, MS apart;\n"
"                                       interrupt and run again to resume\n"
"options:\n"
"  -c, --config FILE    vetsyncd.conf (default %s)\n"
"  -S, --socket PATH    control socket (default $RUNTIME_DIRECTORY/control.sock\n"
"                       or /run/vetsync/control.sock)\n"
"  --conninfo CONNINFO  connect with this libpq string instead of\n"
"                       database.conninfo and the db-password secret (the\n"
"                       password then comes from PGPASSWORD or ~/.pgpass);\n"
"                       migrations run as the schema owner\n"
"exit codes: 0 ok, 1 failed (also: database unreachable, audit chain\n"
"            broken, credentials invalid), 2 usage, 3 vetsyncd unreachable,\n"
"            4 unavailable\n",
	    MIGRATE_DEFAULT_DIR, CONFIG_DEFAULT_PATH);
}

const char *
ctl_config_path(void)
{
	return config_path;
}

int
ctl_ask(json_t *req, json_t **ret)
{
	struct sockaddr_un sun;
	json_error_t jerr;
	struct buf in;
	char chunk[4096], path[108];
	char *line;
	ssize_t n;
	int fd;

	if (socket_path == NULL) {
		const char *rt = getenv("RUNTIME_DIRECTORY");

		snprintf(path, sizeof(path), "%s/control.sock",
		    rt != NULL ? rt : "/run/vetsync");
		socket_path = path;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "vetsyncctl: cannot reach vetsyncd at '%s': %s\n",
		    socket_path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -EXIT_UNREACHABLE;
	}
	line = json_dumps(req, JSON_COMPACT);
	if (line == NULL) {
		close(fd);
		return -EXIT_FAILED;
	}
	dprintf(fd, "%s\n", line);
	explicit_bzero(line, strlen(line));	/* it may hold a password */
	free(line);
	buf_init(&in, ANSWER_MAX);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(&in, chunk, (size_t)n) < 0)
			break;
	close(fd);
	*ret = in.data != NULL ? json_loadb(in.data, in.len, 0, &jerr) : NULL;
	buf_release(&in);
	if (*ret == NULL) {
		fprintf(stderr, "vetsyncctl: no valid answer from vetsyncd\n");
		return -EXIT_FAILED;
	}
	return 0;
}

int
ctl_answer_ok(json_t *ans)
{
	if (json_is_true(json_object_get(ans, "ok")))
		return 1;
	fprintf(stderr, "vetsyncctl: %s\n",
	    json_string_value(json_object_get(ans, "error")));
	return 0;
}

static int
cmd_status(int argc, char **argv)
{
	json_t *req, *ans = NULL, *v;
	bool as_json = argc > 1 && strcmp(argv[1], "--json") == 0;
	size_t i;
	int r;

	req = json_pack("{s:s}", "cmd", "status");
	r = ctl_ask(req, &ans);
	json_decref(req);
	if (r < 0)
		return -r;
	if (!ctl_answer_ok(ans)) {
		json_decref(ans);
		return EXIT_FAILED;
	}
	if (as_json) {
		json_dumpf(ans, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(ans);
		return 0;
	}
	printf("instance:   %s (pid %lld)%s\n",
	    json_string_value(json_object_get(ans, "instance")),
	    json_integer_value(json_object_get(ans, "pid")),
	    json_is_true(json_object_get(ans, "stopping")) ? ", stopping" : "");
	printf("caps:       %s\n",
	    json_string_value(json_object_get(ans, "mechanism")));
	printf("policy:     sha256 %s\n",
	    json_string_value(json_object_get(ans, "policy_sha256")));
	printf("clinics:    %lld known, %lld running, %lld queued "
	    "(at most %lld at once)\n",
	    json_integer_value(json_object_get(ans, "clinics_known")),
	    json_integer_value(json_object_get(ans, "clinics_running")),
	    json_integer_value(json_object_get(ans, "clinics_queued")),
	    json_integer_value(json_object_get(ans, "max_concurrent")));
	json_array_foreach(json_object_get(ans, "workers"), i, v)
		printf("worker:     clinic %s pid %lld job %lld %s\n",
		    json_string_value(json_object_get(v, "clinic")),
		    json_integer_value(json_object_get(v, "pid")),
		    json_integer_value(json_object_get(v, "job")),
		    json_string_value(json_object_get(v, "state")));
	json_array_foreach(json_object_get(ans, "clinics"), i, v)
		printf("clinic:     %s %s, %lld ok, %lld failed, last %s\n",
		    json_string_value(json_object_get(v, "clinic")),
		    json_string_value(json_object_get(v, "state")),
		    json_integer_value(json_object_get(v, "jobs_ok")),
		    json_integer_value(json_object_get(v, "jobs_failed")),
		    json_object_get(v, "last_outcome") != NULL ?
		    json_string_value(json_object_get(v, "last_outcome")) :
		    "-");
	json_decref(ans);
	return 0;
}

static int
cmd_sync(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "kind", required_argument, NULL, 'k' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	const char *user = NULL, *kind = "notes", *from = NULL, *to = NULL;
	json_t *req, *ans = NULL;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "u:k:", opts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			user = optarg;
			break;
		case 'k':
			kind = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 't':
			to = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (user == NULL) {
		fprintf(stderr, "vetsyncctl sync: --user ID is required\n");
		return EXIT_USAGE;
	}
	if ((from == NULL) != (to == NULL)) {
		fprintf(stderr, "vetsyncctl sync: --from and --to go "
		    "together\n");
		return EXIT_USAGE;
	}
	req = json_pack("{s:s,s:s,s:s}", "cmd", "sync", "clinic", user,
	    "kind", kind);
	if (from != NULL) {
		/* Checked by vetsyncd, which says what is wrong. */
		json_object_set_new(req, "from", json_string(from));
		json_object_set_new(req, "to", json_string(to));
	}
	r = ctl_ask(req, &ans);
	json_decref(req);
	if (r < 0)
		return -r;
	r = ctl_answer_ok(ans) ? 0 : EXIT_FAILED;
	if (r == 0)
		printf("clinic %s: %s job queued (%s)\n", user, kind,
		    json_string_value(json_object_get(ans, "state")));
	json_decref(ans);
	return r;
}

static int
cmd_policy(int argc, char **argv)
{
	char err[CONFIG_ERR_MAX], hex[65];
	struct config *cf = NULL;
	struct policy *p = NULL;
	json_t *req, *ans = NULL;
	int r;

	if (argc < 2 || strcmp(argv[1], "show") != 0) {
		fprintf(stderr, "vetsyncctl policy: expected 'show'\n");
		return EXIT_USAGE;
	}
	if (config_load(config_path, &cf, err) < 0) {
		fprintf(stderr, "vetsyncctl: %s\n", err);
		return EXIT_FAILED;
	}
	if (policy_load(cf->workers.policy_dir, &p, err, sizeof(err)) < 0) {
		fprintf(stderr, "vetsyncctl: policy: %s\n", err);
		config_free(cf);
		return EXIT_FAILED;
	}
	printf("# policy directory: %s\n", cf->workers.policy_dir);
	r = policyhash_compute(p, cf->workers.binary, hex);
	printf("# sha256 (policy files + %s): %s\n", cf->workers.binary,
	    r == 0 ? hex : strerror(-r));
	printf("# worker caps (configuration): memory %llu bytes, cpu %llu.%06llu,"
	    " tasks %u\n", (unsigned long long)cf->workers.memory_max,
	    (unsigned long long)(cf->workers.cpu_max_micro / 1000000),
	    (unsigned long long)(cf->workers.cpu_max_micro % 1000000),
	    cf->workers.tasks_max);
	req = json_pack("{s:s}", "cmd", "status");
	if (ctl_ask(req, &ans) == 0 && ctl_answer_ok(ans))
		printf("# cgroup mechanism in force: %s\n",
		    json_string_value(json_object_get(ans, "mechanism")));
	else
		printf("# cgroup mechanism: unknown (vetsyncd not running)\n");
	json_decref(req);
	json_decref(ans);
	r = policy_show(p, stdout) < 0 ? EXIT_FAILED : 0;
	policy_free(p);
	config_free(cf);
	return r;
}

/*
 * Connect to the database: with conninfo as given, or as vetsyncd would
 * (configuration and db-password).  No statement timeout: an operator's
 * migration or verification may take its time.
 */
int
ctl_db_open(const char *conninfo, struct db **ret)
{
	char err[DB_ERR_MAX + 256], cerr[CONFIG_ERR_MAX];
	struct config *cf = NULL;
	int r;

	if (conninfo != NULL) {
		struct db_params p = {
			.conninfo = conninfo,
			.application_name = "vetsyncctl",
			.connect_timeout_ms = 10000,
		};

		r = db_connect(&p, ret, err, sizeof(err));
	} else {
		if (config_load(config_path, &cf, cerr) < 0) {
			fprintf(stderr, "vetsyncctl: %s\n", cerr);
			return EXIT_FAILED;
		}
		cf->database.statement_timeout_ms = 0;
		r = db_connect_config(cf, "vetsyncctl", ret, err, sizeof(err));
		config_free(cf);
	}
	if (r < 0) {
		fprintf(stderr, "vetsyncctl: %s\n", err);
		return EXIT_FAILED;
	}
	return 0;
}

static int
cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },
		{ "conninfo", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	struct migrate_options mo = { .progress = stdout };
	struct migrate_result res;
	char err[MIGRATE_ERR_MAX];
	const char *conninfo = NULL;
	struct db *db = NULL;
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "nd:C:", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			mo.dry_run = true;
			break;
		case 'd':
			mo.dir = optarg;
			break;
		case 'C':
			conninfo = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vetsyncctl migrate: unexpected '%s'\n",
		    argv[optind]);
		return EXIT_USAGE;
	}
	if ((r = ctl_db_open(conninfo, &db)) != 0)
		return r;
	if (migrate_run(db, &mo, &res, err, sizeof(err)) < 0) {
		fprintf(stderr, "vetsyncctl migrate: %s\n", err);
		db_free(db);
		return EXIT_FAILED;
	}
	if (mo.dry_run)
		printf("dry run: %u migration%s to apply, %u applied before; "
		    "nothing changed\n", res.applied,
		    res.applied == 1 ? "" : "s", res.already);
	else if (res.applied > 0)
		printf("migrated %s: %u applied, %u applied before; schema "
		    "version %04d\n", db_target(db), res.applied, res.already,
		    res.version);
	else
		printf("schema of %s is up to date: version %04d (%u "
		    "migrations); nothing to do\n", db_target(db), res.version,
		    res.already);
	db_free(db);
	return 0;
}

/* Text from the database is escaped; jsonb's output is JSON already. */
static void
field(const char *key, const char *value)
{
	if (value != NULL)
		printf(" %s=%s", key, log_q(value));
}

static void
field_json(const char *key, const char *value)
{
	if (value != NULL)
		printf(" %s=%s", key, value);
}

static int
print_row(const struct auditlog_row *row, void *arg)
{
	(void)arg;
	printf("%s %s %s", row->seq, row->created_at != NULL ?
	    row->created_at : "-", log_q(row->action));
	field("status", row->status);
	field("time", row->timestamp != NULL && row->created_at != NULL &&
	    strcmp(row->timestamp, row->created_at) != 0 ? row->timestamp :
	    NULL);
	field("user", row->user_id);
	field("clinic", row->clinic_id);
	field("actor", row->actor);
	field("session", row->session_id);
	field("ip", row->ip_address);
	field("policy", row->policy_hash);
	field_json("error", row->error_details);
	field_json("metadata", row->metadata);
	putchar('\n');
	return 0;
}

static int
cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "conninfo", required_argument, NULL, 'C' },
		{ "lines", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	struct auditlog_verify v;
	const char *conninfo = NULL, *sub;
	unsigned long lines = 20;
	struct db *db = NULL;
	char *end;
	int ch, r;

	if (argc < 2 || (strcmp(argv[1], "verify") != 0 &&
	    strcmp(argv[1], "tail") != 0)) {
		fprintf(stderr, "vetsyncctl audit: expected 'verify' or "
		    "'tail'\n");
		return EXIT_USAGE;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "C:n:", opts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			conninfo = optarg;
			break;
		case 'n':
			errno = 0;
			lines = strtoul(optarg, &end, 10);
			if (strcmp(sub, "tail") != 0 || errno != 0 ||
			    *end != '\0' || lines < 1 ||
			    lines > AUDITLOG_TAIL_MAX) {
				fprintf(stderr, "vetsyncctl audit: -n takes "
				    "1 to %d (with tail)\n", AUDITLOG_TAIL_MAX);
				return EXIT_USAGE;
			}
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vetsyncctl audit %s: unexpected '%s'\n", sub,
		    argv[optind]);
		return EXIT_USAGE;
	}
	if ((r = ctl_db_open(conninfo, &db)) != 0)
		return r;
	if (strcmp(sub, "tail") == 0) {
		r = auditlog_tail(db, (unsigned)lines, print_row, NULL);
		if (r < 0)
			fprintf(stderr, "vetsyncctl audit tail: %s\n",
			    db_error(db));
		db_free(db);
		return r < 0 ? EXIT_FAILED : 0;
	}
	if ((r = auditlog_verify(db, &v)) < 0) {
		fprintf(stderr, "vetsyncctl audit verify: %s\n", db_error(db));
		db_free(db);
		return EXIT_FAILED;
	}
	db_free(db);
	if (v.broken) {
		printf("audit chain BROKEN at seq %lld%s%s%s: %s\n",
		    (long long)v.broken_seq, v.broken_id[0] != '\0' ? " (id " :
		    "", v.broken_id, v.broken_id[0] != '\0' ? ")" : "",
		    v.reason);
		printf("%llu rows before it verified\n",
		    (unsigned long long)v.rows);
		return EXIT_FAILED;
	}
	if (v.rows == 0)
		printf("audit chain intact: no rows");
	else
		printf("audit chain intact: %llu rows verified, seq %lld to "
		    "%lld", (unsigned long long)v.rows, (long long)v.first_seq,
		    (long long)v.last_seq);
	if (v.checkpoint_seq > 0)
		printf(", after the retention checkpoint at seq %lld",
		    (long long)v.checkpoint_seq);
	putchar('\n');
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cmd;
	int ch;

	log_init("vetsyncctl", LOG_LEVEL_WARNING);
	/* A password passes through JSON (credentials set): wiped when freed. */
	json_set_alloc_funcs(malloc, xfree_wiped);
	while ((ch = getopt_long(argc, argv, "+c:S:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'S':
			socket_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[0];
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "status") == 0)
		return cmd_status(argc, argv);
	if (strcmp(cmd, "sync") == 0)
		return cmd_sync(argc, argv);
	if (strcmp(cmd, "policy") == 0)
		return cmd_policy(argc, argv);
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate(argc, argv);
	if (strcmp(cmd, "audit") == 0)
		return cmd_audit(argc, argv);
	if (strcmp(cmd, "credentials") == 0)
		return cmd_credentials(argc, argv);
	if (strcmp(cmd, "keys") == 0)
		return cmd_keys(argc, argv);
	fprintf(stderr, "vetsyncctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
