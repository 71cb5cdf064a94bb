/*
 * vetsync-worker end to end over its channel: the real binary, exec'd with
 * the channel on fd 3 and the shipped policy in Setup, must answer Hello
 * from inside its sandbox, answer a Job whose site profile is incomplete
 * with a FAILED result of class "profile" (before any network I/O),
 * ignore a stale Cancel, exit 0 on Shutdown, and exit 1 on a malformed
 * frame or a Job before Setup.  Skipped under valgrind (seccomp).
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/frame.h"
#include "policy/policy.h"

static bool
under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p != NULL && strstr(p, "vgpreload") != NULL;
}

static pid_t
spawn_worker(int *ret_fd)
{
	char path[512];
	const char *b = getenv("top_builddir");
	int sv[2];
	pid_t pid;

	snprintf(path, sizeof(path), "%s/vetsync-worker", b ? b : ".");
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
	    sv), 0);
	assert_int_equal(frame_socket_init(sv[0]), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		char *argv[] = { path, NULL }, *envp[] = { NULL };

		if (dup2(sv[1], 3) == -1)
			_exit(126);
		execve(path, argv, envp);
		_exit(127);
	}
	close(sv[1]);
	*ret_fd = sv[0];
	return pid;
}

static int
wait_status(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("worker died of signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

static void
send_setup(int fd)
{
	static const struct policy_subst subst[] = {
		{ "ca_bundle", "/etc/ssl/certs" },
		{ "idexx_ports", "443" },
	};
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Setup setup = VETSYNC__SETUP__INIT;
	struct sandbox_spec spec;
	struct policy *p = NULL;
	uint32_t ports[POLICY_MAX_TCP_PORTS];
	char dir[512], err[512];

	snprintf(dir, sizeof(dir), "%s/policy", getenv("top_srcdir"));
	if (policy_load(dir, &p, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(policy_prepare(p, subst, 2, &spec, err, sizeof(err)),
	    0);
	for (size_t i = 0; i < spec.n_tcp_ports; i++)
		ports[i] = spec.tcp_ports[i];
	setup.has_protocol_version = 1;
	setup.protocol_version = FRAME_PROTOCOL_VERSION;
	setup.has_seccomp_bpf = 1;
	setup.seccomp_bpf.data = (uint8_t *)spec.bpf;
	setup.seccomp_bpf.len = spec.bpf_len;
	setup.n_landlock_ro_paths = spec.n_ro_paths;
	setup.landlock_ro_paths = (char **)spec.ro_paths;
	setup.n_landlock_tcp_ports = spec.n_tcp_ports;
	setup.landlock_tcp_ports = ports;
	setup.has_landlock_min_abi = 1;
	setup.landlock_min_abi = (uint32_t)spec.min_landlock_abi;
	setup.has_require_landlock = 1;
	setup.require_landlock = spec.require_landlock &&
	    sandbox_landlock_abi() > 0;
	env.msg_case = VETSYNC__ENVELOPE__MSG_SETUP;
	env.setup = &setup;
	assert_int_equal(frame_send(fd, &env), 0);
	policy_spec_release(&spec);
	policy_free(p);
}

static void
send_job(int fd)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Job job = VETSYNC__JOB__INIT;
	Vetsync__PinnedAddress pin = VETSYNC__PINNED_ADDRESS__INIT;
	Vetsync__Credentials cr = VETSYNC__CREDENTIALS__INIT;
	Vetsync__JobLimits lim = VETSYNC__JOB_LIMITS__INIT;
	char err[FRAME_ERR_MAX];

	pin.host = (char *)"us.idexxneo.com";
	pin.has_port = 1;
	pin.port = 443;
	pin.ip = (char *)"127.0.0.1";
	cr.username = (char *)"vet";
	cr.password = (char *)"secret";
	lim.has_max_parallel = lim.has_request_rate = 1;
	lim.has_response_max = lim.has_request_timeout_ms = 1;
	lim.has_job_timeout_ms = 1;
	lim.max_parallel = 4;
	lim.request_rate = 10;
	lim.response_max = 1 << 20;
	lim.request_timeout_ms = 30000;
	lim.job_timeout_ms = 600000;
	job.has_job_id = 1;
	job.job_id = 42;
	job.has_kind = 1;
	job.kind = VETSYNC__JOB_KIND__VALIDATE_CREDENTIALS;
	job.clinic_id = (char *)"clinic-1";
	job.base_url = (char *)"https://us.idexxneo.com";
	job.pinned = &pin;
	job.site_profile = (char *)"[profile]\nname = neo\n";
	job.time_zone = (char *)"America/Denver";
	job.credentials = &cr;
	job.limits = &lim;
	env.msg_case = VETSYNC__ENVELOPE__MSG_JOB;
	env.job = &job;
	if (frame_validate(&env, err, sizeof(err)) != 0)
		fail_msg("job: %s", err);
	assert_int_equal(frame_send(fd, &env), 0);
}

static void
send_simple(int fd, int kind)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Cancel cancel = VETSYNC__CANCEL__INIT;
	Vetsync__Shutdown shut = VETSYNC__SHUTDOWN__INIT;

	env.msg_case = kind;
	cancel.has_job_id = 1;
	cancel.job_id = 7;
	env.cancel = &cancel;
	if (kind == VETSYNC__ENVELOPE__MSG_SHUTDOWN)
		env.shutdown = &shut;
	assert_int_equal(frame_send(fd, &env), 0);
}

static void
test_worker_lifecycle(void **state)
{
	Vetsync__Envelope *env = NULL;
	char err[FRAME_ERR_MAX];
	pid_t pid;
	int fd;

	if (under_valgrind())
		skip();
	pid = spawn_worker(&fd);
	send_setup(fd);
	if (frame_recv(fd, &env, err, sizeof(err)) != 0)
		fail_msg("hello: %s", err);
	assert_int_equal(env->msg_case, VETSYNC__ENVELOPE__MSG_HELLO);
	assert_int_equal(env->hello->pid, (uint32_t)pid);
	assert_true(env->hello->sandbox->seccomp);
	assert_true(env->hello->sandbox->no_new_privs);
	assert_true(env->hello->sandbox->nondumpable);
	assert_int_equal(env->hello->sandbox->landlock_abi,
	    sandbox_landlock_abi());
	frame_free(env);

	send_simple(fd, VETSYNC__ENVELOPE__MSG_CANCEL);
	send_job(fd);
	if (frame_recv(fd, &env, err, sizeof(err)) != 0)
		fail_msg("job result: %s", err);
	assert_int_equal(env->msg_case, VETSYNC__ENVELOPE__MSG_JOB_RESULT);
	assert_int_equal(env->job_result->job_id, 42);
	/* A profile the worker cannot use fails the job before any I/O. */
	assert_int_equal(env->job_result->status,
	    VETSYNC__JOB_STATUS__FAILED);
	assert_string_equal(env->job_result->error_class, "profile");
	assert_non_null(strstr(env->job_result->error_message,
	    "site profile"));
	frame_free(env);

	send_simple(fd, VETSYNC__ENVELOPE__MSG_SHUTDOWN);
	assert_int_equal(wait_status(pid), 0);
	close(fd);
}

static void
test_worker_malformed_frame(void **state)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0x01 };
	pid_t pid;
	int fd;

	if (under_valgrind())
		skip();
	pid = spawn_worker(&fd);
	send_setup(fd);
	assert_int_equal(send(fd, junk, sizeof(junk), 0), sizeof(junk));
	assert_int_equal(wait_status(pid), 1);
	close(fd);
}

static void
test_worker_job_before_setup(void **state)
{
	pid_t pid;
	int fd;

	if (under_valgrind())
		skip();
	pid = spawn_worker(&fd);
	send_job(fd);
	assert_int_equal(wait_status(pid), 1);
	close(fd);
}

static void
test_worker_not_a_channel(void **state)
{
	char path[512];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/vetsync-worker",
	    getenv("top_builddir"));
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		char *argv[] = { path, NULL }, *envp[] = { NULL };

		close(3);
		execve(path, argv, envp);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_lifecycle),
		cmocka_unit_test(test_worker_malformed_frame),
		cmocka_unit_test(test_worker_job_before_setup),
		cmocka_unit_test(test_worker_not_a_channel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
