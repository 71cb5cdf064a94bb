/*
 * vetsyncctl: the operators' command line.  Talks to a running vetsyncd
 * over its control socket, or works on the installed files directly
 * (policy show).
 *
 * Exit codes: 0 success, 1 the operation failed, 2 usage error,
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

#include "policy/policy.h"

#include "supervisor/config.h"
#include "supervisor/policyhash.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
#define EXIT_UNAVAILABLE 4
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
"                                       queue a job for a clinic now\n"
"  policy show                          what confines the workers\n"
"  migrate, credentials, keys, audit    not available in this release\n"
"options:\n"
"  -c, --config FILE    vetsyncd.conf (default %s)\n"
"  -S, --socket PATH    control socket (default $RUNTIME_DIRECTORY/control.sock\n"
"                       or /run/vetsync/control.sock)\n"
"exit codes: 0 ok, 1 failed, 2 usage, 3 vetsyncd unreachable, 4 unavailable\n",
	    CONFIG_DEFAULT_PATH);
}

/* Send one request line, read the one answer line. */
static int
ask(json_t *req, json_t **ret)
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
	dprintf(fd, "%s\n", line);
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

static int
answer_ok(json_t *ans)
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
	r = ask(req, &ans);
	json_decref(req);
	if (r < 0)
		return -r;
	if (!answer_ok(ans)) {
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
		{ NULL, 0, NULL, 0 }
	};
	const char *user = NULL, *kind = "notes";
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
		default:
			return EXIT_USAGE;
		}
	}
	if (user == NULL) {
		fprintf(stderr, "vetsyncctl sync: --user ID is required\n");
		return EXIT_USAGE;
	}
	req = json_pack("{s:s,s:s,s:s}", "cmd", "sync", "clinic", user,
	    "kind", kind);
	r = ask(req, &ans);
	json_decref(req);
	if (r < 0)
		return -r;
	r = answer_ok(ans) ? 0 : EXIT_FAILED;
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
	if (ask(req, &ans) == 0 && answer_ok(ans))
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
	if (strcmp(cmd, "migrate") == 0 || strcmp(cmd, "credentials") == 0 ||
	    strcmp(cmd, "keys") == 0 || strcmp(cmd, "audit") == 0) {
		fprintf(stderr, "vetsyncctl %s: not available in this release "
		    "(it needs the database layer)\n", cmd);
		return EXIT_UNAVAILABLE;
	}
	fprintf(stderr, "vetsyncctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
