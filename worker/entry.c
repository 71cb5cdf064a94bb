/* Setup, sandbox, Hello: the start of every worker (see entry.h). */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto/frame.h"
#include "policy/policy.h"
#include "worker/entry.h"

int
entry_check_channel(int fd)
{
	struct stat st;
	socklen_t len = sizeof(int);
	int type;

	if (fstat(fd, &st) == -1)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
		return -errno;
	return type == SOCK_SEQPACKET ? 0 : -EPROTOTYPE;
}

static int
entry_enter(const Vetsync__Setup *setup, struct sandbox_report *rep,
    char *err, size_t errsz)
{
	struct sandbox_spec spec;
	uint16_t ports[POLICY_MAX_TCP_PORTS];

	if (setup->n_landlock_ro_paths > POLICY_MAX_RO_PATHS ||
	    setup->n_landlock_tcp_ports > POLICY_MAX_TCP_PORTS) {
		snprintf(err, errsz, "setup: %zu paths and %zu ports over the "
		    "limits", setup->n_landlock_ro_paths,
		    setup->n_landlock_tcp_ports);
		return -EPROTO;
	}
	for (size_t i = 0; i < setup->n_landlock_tcp_ports; i++) {
		if (setup->landlock_tcp_ports[i] == 0 ||
		    setup->landlock_tcp_ports[i] > 65535) {
			snprintf(err, errsz, "setup: bad port %u",
			    setup->landlock_tcp_ports[i]);
			return -EPROTO;
		}
		ports[i] = (uint16_t)setup->landlock_tcp_ports[i];
	}
	memset(&spec, 0, sizeof(spec));
	spec.bpf = setup->seccomp_bpf.data;
	spec.bpf_len = setup->seccomp_bpf.len;
	spec.ro_paths = (const char *const *)setup->landlock_ro_paths;
	spec.n_ro_paths = setup->n_landlock_ro_paths;
	spec.tcp_ports = ports;
	spec.n_tcp_ports = setup->n_landlock_tcp_ports;
	spec.min_landlock_abi = (int)setup->landlock_min_abi;
	spec.require_landlock = setup->require_landlock;
	return sandbox_enter(&spec, rep, err, errsz);
}

static int
entry_hello(int fd, const struct sandbox_report *rep)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Hello hello = VETSYNC__HELLO__INIT;
	Vetsync__SandboxReport sr = VETSYNC__SANDBOX_REPORT__INIT;

	sr.has_no_new_privs = sr.has_seccomp = sr.has_landlock_abi = 1;
	sr.has_landlock_fs = sr.has_landlock_net = sr.has_nondumpable = 1;
	sr.no_new_privs = rep->no_new_privs;
	sr.seccomp = rep->seccomp;
	sr.landlock_abi = (uint32_t)rep->landlock_abi;
	sr.landlock_fs = rep->landlock_fs;
	sr.landlock_net = rep->landlock_net;
	sr.nondumpable = rep->dumpable_off;
	hello.has_protocol_version = 1;
	hello.protocol_version = FRAME_PROTOCOL_VERSION;
	hello.has_pid = 1;
	hello.pid = (uint32_t)getpid();
	hello.sandbox = &sr;
	env.msg_case = VETSYNC__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	return frame_send(fd, &env);
}

int
entry_setup(int fd, char *err, size_t errsz)
{
	Vetsync__Envelope *env = NULL;
	struct sandbox_report rep;
	int r;

	if ((r = frame_socket_init(fd)) != 0) {
		snprintf(err, errsz, "channel: %s", strerror(-r));
		return r;
	}
	do {
		r = frame_recv(fd, &env, err, errsz);
	} while (r == -EINTR);
	if (r != 0)
		return r;
	if (env->msg_case != VETSYNC__ENVELOPE__MSG_SETUP) {
		snprintf(err, errsz, "channel: %s before setup",
		    frame_kind_name(env->msg_case));
		r = -EPROTO;
		goto out;
	}
	if ((r = entry_enter(env->setup, &rep, err, errsz)) != 0)
		goto out;
	if ((r = entry_hello(fd, &rep)) != 0)
		snprintf(err, errsz, "channel: hello: %s", strerror(-r));
out:
	frame_free(env);
	return r;
}
