/*
 * vetsyncd: the supervisor.  Loads the configuration and the isolation
 * policy (either being wrong stops it here, before anything runs), sets up
 * the cgroups that cap the workers, and then runs one libevent loop over
 * signals, timers, the control socket and every worker's channel.
 *
 * SIGTERM: stop taking work, cancel running jobs, wait workers.stop_timeout,
 * kill what is left, exit 0.  SIGHUP: reload the configuration if, and only
 * if, the new one is wholly valid; running workers are left alone.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/capability.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "proto/frame.h"
#include "policy/policy.h"

#include "supervisor/alerts.h"
#include "supervisor/api.h"
#include "supervisor/audit.h"
#include "supervisor/auditdb.h"
#include "supervisor/cgroup.h"
#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/control.h"
#include "supervisor/credcrypt.h"
#include "supervisor/credentials.h"
#include "supervisor/credstore.h"
#include "supervisor/db.h"
#include "supervisor/discharge.h"
#include "supervisor/events.h"
#include "supervisor/jobspec.h"
#include "supervisor/kmsg.h"
#include "supervisor/notify.h"
#include "supervisor/policyhash.h"
#include "supervisor/reconcile.h"
#include "supervisor/scheduler.h"
#include "supervisor/secrets.h"
#include "supervisor/spawn.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

#define PROFILE_MAX (64 * 1024)

static struct supervisor the_supervisor;
struct supervisor *sv = &the_supervisor;

static const char *config_path = CONFIG_DEFAULT_PATH;
static struct event *stop_timer, *watchdog_timer;
static struct db_async *database;
static struct credcrypt *master_keys;
static struct event *drain_timer;	/* stopping: the database queue */
static uint64_t drain_deadline_ms;

/*
 * Credentials: the cache of master keys, the encrypted store, and the
 * notifications that carry revocations.  The key new credentials are
 * encrypted with is loaded now, so a missing one is said at start.
 */
static void
start_credentials(void)
{
	char err[CREDCRYPT_ERR_MAX];
	int r;

	if ((r = credcrypt_new(&master_keys)) < 0)
		fatalx("credentials: %s", strerror(-r));
	if (credcrypt_load_key(master_keys, sv->config->credentials.key_id,
	    err, sizeof(err)) < 0)
		log_warnx("credentials: %s: new credentials cannot be stored "
		    "until it is there", err);
	credstore_init(database, master_keys);
	if ((r = db_async_listen(database, "vetsync_credentials",
	    credentials_notified, NULL)) < 0)
		fatalx("credentials: cannot listen for revocations: %s",
		    strerror(-r));
}

static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code == 0 ? stdout : stderr,
"usage: vetsyncd [-d] [-c FILE] [-S SOCKET] [-s STATEDIR] [--check-config]\n"
"  -c, --config FILE    configuration (default %s)\n"
"  -d, --debug          log debug messages\n"
"  -S, --socket PATH    control socket (default $RUNTIME_DIRECTORY/control.sock\n"
"                       or /run/vetsync/control.sock)\n"
"  -s, --state-dir DIR  audit spool directory (default $STATE_DIRECTORY\n"
"                       or /var/lib/vetsync)\n"
"      --check-config   validate the configuration, print it, and exit\n",
	    CONFIG_DEFAULT_PATH);
	exit(code);
}

static enum log_level
level_of(enum config_log_level l)
{
	switch (l) {
	case CONFIG_LOG_ERROR:
		return LOG_LEVEL_ERR;
	case CONFIG_LOG_WARNING:
		return LOG_LEVEL_WARNING;
	case CONFIG_LOG_INFO:
		return LOG_LEVEL_INFO;
	case CONFIG_LOG_DEBUG:
		break;
	}
	return LOG_LEVEL_DEBUG;
}

static int
check_config(void)
{
	char err[CONFIG_ERR_MAX];
	struct config *cf = NULL;

	if (config_load(config_path, &cf, err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	config_dump(cf, stdout);
	printf("\n# secrets ($CREDENTIALS_DIRECTORY), never printed:\n");
	for (size_t i = 0; secret_names[i] != NULL; i++)
		printf("#   %-14s %s\n", secret_names[i],
		    secret_exists(secret_names[i]) ? "present" : "absent");
	config_free(cf);
	fprintf(stderr, "%s: configuration is valid\n", config_path);
	return 0;
}

/* Read a small text file whole; NULL with errno set on failure. */
static char *
read_text(const char *path, size_t max)
{
	char *text = NULL;
	struct stat st;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max) {
		errno = EFBIG;
		goto out;
	}
	text = xmalloc((size_t)st.st_size + 1);
	n = read(fd, text, (size_t)st.st_size);
	if (n != st.st_size) {
		free(text);
		text = NULL;
		errno = EIO;
		goto out;
	}
	text[n] = '\0';
out:
	close(fd);
	return text;
}

/*
 * The Setup every worker receives: the compiled filter and the Landlock
 * rules, with ${ca_bundle} and ${idexx_ports} from the configuration.
 */
static int
build_setup(const struct config *cf, uint8_t **ret_buf, size_t *ret_len,
    char *err, size_t errsz)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Setup setup = VETSYNC__SETUP__INIT;
	struct sandbox_spec spec;
	struct policy_subst subst[2];
	uint32_t ports[POLICY_MAX_TCP_PORTS];
	char host[256], portstr[16];
	unsigned port;
	int r;

	if (jobspec_url_host_port(cf->idexx.base_url, host, sizeof(host),
	    &port) < 0) {
		snprintf(err, errsz, "idexx.base_url: no host and port");
		return -EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	subst[0].name = "ca_bundle";
	subst[0].value = cf->idexx.ca_bundle;
	subst[1].name = "idexx_ports";
	subst[1].value = portstr;
	if ((r = policy_prepare(sv->policy, subst, 2, &spec, err, errsz)) < 0)
		return r;
	for (size_t i = 0; i < spec.n_tcp_ports; i++)
		ports[i] = spec.tcp_ports[i];
	setup.protocol_version = FRAME_PROTOCOL_VERSION;
	setup.has_protocol_version = 1;
	setup.seccomp_bpf.data = (uint8_t *)spec.bpf;
	setup.seccomp_bpf.len = spec.bpf_len;
	setup.has_seccomp_bpf = 1;
	setup.landlock_ro_paths = (char **)spec.ro_paths;
	setup.n_landlock_ro_paths = spec.n_ro_paths;
	setup.landlock_tcp_ports = ports;
	setup.n_landlock_tcp_ports = spec.n_tcp_ports;
	setup.landlock_min_abi = (uint32_t)spec.min_landlock_abi;
	setup.has_landlock_min_abi = 1;
	setup.require_landlock = spec.require_landlock;
	setup.has_require_landlock = 1;
	env.msg_case = VETSYNC__ENVELOPE__MSG_SETUP;
	env.setup = &setup;
	r = frame_encode(&env, ret_buf, ret_len);
	if (r < 0)
		snprintf(err, errsz, "the policy does not fit a Setup frame: %s",
		    strerror(-r));
	policy_spec_release(&spec);
	return r;
}

/* Everything that depends on the configuration, built before a swap. */
static int
apply_config(struct config *cf, char *err, size_t errsz)
{
	uint8_t *setup = NULL;
	size_t setup_len = 0;
	char *profile;
	int r;

	if ((profile = read_text(cf->idexx.profile, PROFILE_MAX)) == NULL) {
		snprintf(err, errsz, "idexx.profile '%s': %s", cf->idexx.profile,
		    strerror(errno));
		return -errno;
	}
	if (access(cf->workers.binary, X_OK) == -1) {
		snprintf(err, errsz, "workers.binary '%s': %s",
		    cf->workers.binary, strerror(errno));
		free(profile);
		return -errno;
	}
	if ((r = build_setup(cf, &setup, &setup_len, err, errsz)) < 0) {
		free(profile);
		return r;
	}
	free(sv->profile_text);
	sv->profile_text = profile;
	free(sv->setup_frame);
	sv->setup_frame = setup;
	sv->setup_len = setup_len;
	config_free(sv->config);
	sv->config = cf;
	log_set_level(level_of(cf->log.level));
	return 0;
}

static void
reload(void)
{
	char err[CONFIG_ERR_MAX];
	struct config *cf = NULL;

	if (config_load(config_path, &cf, err) < 0) {
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		return;
	}
	if (strcmp(cf->workers.policy_dir, sv->config->workers.policy_dir) != 0)
		log_warnx("reload: workers.policy_dir changes take effect at "
		    "the next start");
	if (apply_config(cf, err, sizeof(err)) < 0) {
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		config_free(cf);
		return;
	}
	log_info("configuration reloaded from %s", config_path);
	workers_retire_spares();
	workers_prespawn();
	audit_record("config_reloaded", NULL, 0, NULL);
	clinics_pump();
}

/*
 * Exit once stopping, every worker is gone and what they left for the
 * database is written: while the database is connected, its queue gets
 * until drain_deadline_ms; when it is down, nothing waits for it.
 */
static void
maybe_exit(void)
{
	struct timeval tv = clock_timeval_ms(50);

	if (!sv->stopping || workers_count() > 0)
		return;
	if (database != NULL && db_async_connected(database) &&
	    db_async_pending(database) > 0 &&
	    clock_mono_ms() < drain_deadline_ms) {
		evtimer_add(drain_timer, &tv);
		return;
	}
	event_base_loopexit(sv->base, NULL);
}

static void
drain_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	maybe_exit();
}

static void
kill_one(struct worker *w, void *arg)
{
	worker_kill(w, WORKER_EXIT_CANCELLED, "vetsyncd is stopping");
}

static void
stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	if (workers_count() > 0) {
		log_warnx("stopping: %u worker(s) did not stop in time, killing",
		    workers_count());
		workers_foreach(kill_one, NULL);
	}
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		if (sv->stopping)
			return;
		log_info("stopping: %u worker(s) running", workers_count());
		notify_send("STOPPING=1");
		sv->stopping = true;
		clinics_stop();
		scheduler_stop();
		tv = clock_timeval_ms(sv->config->workers.stop_timeout_ms + 500);
		evtimer_add(stop_timer, &tv);
		drain_deadline_ms = clock_mono_ms() +
		    2 * sv->config->workers.stop_timeout_ms + 5000;
		maybe_exit();
		break;
	case SIGHUP:
		notify_send("RELOADING=1");
		reload();
		notify_send("READY=1");
		break;
	case SIGCHLD:
		workers_reap();
		maybe_exit();
		break;
	}
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	notify_send("WATCHDOG=1");
}

/* A name for cgroups from the instance name: [A-Za-z0-9_-], short. */
static void
cgroup_name(const char *instance, char *buf, size_t bufsz)
{
	size_t n = 0;

	n = (size_t)snprintf(buf, bufsz, "vetsync-");
	for (; *instance != '\0' && n + 1 < bufsz && n < 48; instance++) {
		char c = *instance;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_')
			buf[n++] = c;
	}
	buf[n] = '\0';
}

/* Whether this process may change its uid and gid (root or capable). */
static bool
can_switch_identity(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (geteuid() == 0)
		return true;
	if (syscall(SYS_capget, &hdr, data) == -1)
		return false;
	return (data[0].effective & (1u << CAP_SETUID)) &&
	    (data[0].effective & (1u << CAP_SETGID));
}

/*
 * Workers run as workers.user, never as vetsyncd's own user: under systemd
 * vetsyncd runs as "vetsync" with CAP_SETUID and CAP_SETGID for exactly
 * this.  Without them (a developer's shell) workers keep our identity,
 * and we say so.
 */
static void
setup_identity(void)
{
	int r;

	if (!can_switch_identity()) {
		log_warnx("cannot switch to workers.user '%s' (neither root nor "
		    "CAP_SETUID+CAP_SETGID): workers run as uid %ld",
		    sv->config->workers.user, (long)geteuid());
		return;
	}
	r = spawn_resolve_identity(sv->config->workers.user,
	    sv->config->workers.group, &sv->worker_uid, &sv->worker_gid);
	if (r == -EPERM)
		fatalx("workers.user '%s' / workers.group '%s': the worker "
		    "identity must not be root", sv->config->workers.user,
		    sv->config->workers.group);
	if (r < 0)
		fatalx("workers.user '%s' / workers.group '%s': no such user "
		    "or group (create it: see deploy/vetsync.sysusers)",
		    sv->config->workers.user, sv->config->workers.group);
	if (sv->worker_uid == geteuid())
		fatalx("workers.user '%s' is vetsyncd's own user: workers must "
		    "run as another", sv->config->workers.user);
	sv->drop_identity = true;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "socket", required_argument, NULL, 'S' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *socket_path = NULL, *state_dir = NULL;
	char err[CONFIG_ERR_MAX], path[PATH_MAX], cgname[64];
	struct event *sigev[4];
	static const int sigs[4] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
	struct config *cf = NULL;
	struct rlimit nocore = { 0, 0 };
	bool check = false, debug = false;
	uint64_t wd;
	int ch, r;

	log_init("vetsyncd", LOG_LEVEL_INFO);
	while ((ch = getopt_long(argc, argv, "c:dS:s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 'S':
			socket_path = optarg;
			break;
		case 's':
			state_dir = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (check)
		return check_config();

	/*
	 * Master keys and clinic passwords pass through here: no dumps, and
	 * JSON that carried one (a control request) is wiped when freed.
	 */
	json_set_alloc_funcs(malloc, xfree_wiped);
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("prctl(PR_SET_DUMPABLE)");
	if (setrlimit(RLIMIT_CORE, &nocore) == -1)
		fatal("setrlimit(RLIMIT_CORE)");
	signal(SIGPIPE, SIG_IGN);
	sv->started_ms = clock_mono_ms();

	if (config_load(config_path, &cf, err) < 0)
		fatalx("%s", err);
	log_set_level(debug ? LOG_LEVEL_DEBUG : level_of(cf->log.level));
	if ((r = policy_load(cf->workers.policy_dir, &sv->policy, err,
	    sizeof(err))) < 0)
		fatalx("policy: %s", err);
	if ((sv->base = event_base_new()) == NULL)
		fatalx("cannot create the event base");
	sv->config = NULL;
	if (apply_config(cf, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (debug)
		log_set_level(LOG_LEVEL_DEBUG);
	if ((r = policyhash_compute(sv->policy, sv->config->workers.binary,
	    sv->policy_sha256)) < 0)
		fatalx("cannot hash the policy and the worker binary: %s",
		    strerror(-r));
	setup_identity();

	cgroup_name(sv->config->instance.name, cgname, sizeof(cgname));
	r = cgroup_manager_new(cgname, sv->config->workers.allow_rlimits_only,
	    &sv->cgroups, err, sizeof(err));
	if (r < 0)
		fatalx("worker caps: %s", err);
	cgroup_manager_describe(sv->cgroups, sv->mechanism,
	    sizeof(sv->mechanism));
	if (cgroup_manager_mode(sv->cgroups) == CGROUP_MODE_NONE)
		log_warnx("workers are capped by rlimits only "
		    "(workers.allow_rlimits_only = yes)");

	if (state_dir == NULL)
		state_dir = getenv("STATE_DIRECTORY");
	if (state_dir == NULL)
		state_dir = "/var/lib/vetsync";
	snprintf(path, sizeof(path), "%s/audit.spool", state_dir);
	if ((r = audit_open(path)) < 0)
		fatalx("audit spool '%s': %s", path, strerror(-r));
	kmsg_open();

	for (size_t i = 0; i < 4; i++) {
		sigev[i] = evsignal_new(sv->base, sigs[i], signal_cb, NULL);
		if (sigev[i] == NULL || evsignal_add(sigev[i], NULL) == -1)
			fatalx("cannot handle signal %d", sigs[i]);
	}
	stop_timer = evtimer_new(sv->base, stop_timer_cb, NULL);
	drain_timer = evtimer_new(sv->base, drain_timer_cb, NULL);

	if (socket_path == NULL) {
		const char *rt = getenv("RUNTIME_DIRECTORY");

		snprintf(path, sizeof(path), "%s/control.sock",
		    rt != NULL ? rt : "/run/vetsync");
		socket_path = path;
	}
	if (control_listen(socket_path, err, sizeof(err)) < 0)
		fatalx("%s", err);

	log_info("started: instance %s, workers capped by %s, policy %.12s, "
	    "up to %u workers", log_q(sv->config->instance.name),
	    sv->mechanism, sv->policy_sha256,
	    sv->config->workers.max_concurrent);
	{
		json_t *f = json_object();
		struct audit_event e = { .event = "supervisor_started",
		    .status = "ok", .policy_hash = sv->policy_sha256 };

		json_object_set_new(f, "mechanism", json_string(sv->mechanism));
		json_object_set_new(f, "policy_sha256",
		    json_string(sv->policy_sha256));
		(void)audit_emit(&e, f);
	}
	/*
	 * The database is connected in the background: while it is down the
	 * workers still run, and their results wait in its queue.
	 */
	if ((r = db_async_new_config(sv->base, sv->config, "vetsyncd",
	    &database, err, sizeof(err))) < 0)
		fatalx("%s", err);
	reconcile_init(database);
	reconcile_recover(sv->config->instance.name,
	    sv->config->workers.job_timeout_ms);
	start_credentials();
	scheduler_start(sv->base, database);
	if (discharge_start(database, sv->config->instance.name) < 0)
		fatalx("discharge calls cannot start (see above)");
	alerts_start(sv, database, sv->config->instance.name);
	if (events_start(database) < 0)
		fatalx("events: out of memory");
	/* Syncs do not depend on the API: without it they still run. */
	if (api_start(database, err, sizeof(err)) < 0)
		log_warnx("%s: running without the HTTP API", err);
	auditdb_start(sv->base, database, sv->config->instance.name);
	workers_prespawn();
	notify_send("READY=1");
	if ((wd = notify_watchdog_ms()) > 0) {
		struct timeval tv = clock_timeval_ms(wd / 2);

		watchdog_timer = event_new(sv->base, -1, EV_PERSIST,
		    watchdog_cb, NULL);
		evtimer_add(watchdog_timer, &tv);
	}

	event_base_dispatch(sv->base);

	log_info("stopped");
	audit_record("supervisor_stopped", NULL, 0, NULL);
	control_close();
	events_stop(EVENTS_STOP_MS);	/* before outbound_free() */
	alerts_stop();		/* before outbound_free(): its mail */
	discharge_stop();	/* before api_stop(): it holds requests */
	api_stop();
	clinics_free_all();
	workers_release();
	auditdb_drain(AUDITDB_DRAIN_MS);
	if (db_async_pending(database) > 0)
		log_warnx("stopping: %zu database unit(s) not written",
		    db_async_pending(database));
	reconcile_init(NULL);
	credstore_init(NULL, NULL);
	scheduler_free();
	db_async_free(database);
	credcrypt_free(master_keys);
	auditdb_stop();
	for (size_t i = 0; i < 4; i++)
		event_free(sigev[i]);
	event_free(stop_timer);
	event_free(drain_timer);
	if (watchdog_timer != NULL)
		event_free(watchdog_timer);
	audit_close();
	kmsg_close();
	cgroup_manager_free(sv->cgroups);
	policy_free(sv->policy);
	config_free(sv->config);
	free(sv->profile_text);
	free(sv->setup_frame);
	event_base_free(sv->base);
	return 0;
}
