/*
 * The first two steps of every worker's life on its channel, shared by
 * vetsync-worker and the test workers so that they enter exactly the same
 * sandbox the same way: read Setup, enter the sandbox it describes
 * (sandbox_enter: no_new_privs, dumpable off, Landlock, seccomp), and
 * answer Hello with the sandbox report.
 *
 * The caller has initialised its libraries first (they may read files
 * that the sandbox will forbid).  Failure is fatal to the caller: the
 * process may be half-confined; log the message and exit.
 */
#ifndef VS_WORKER_ENTRY_H
#define VS_WORKER_ENTRY_H

#include <stddef.h>

/* The fd on which a worker finds its channel (see supervisor/spawn.h). */
#define ENTRY_CHANNEL_FD 3

/* 0 if fd is an AF_UNIX SOCK_SEQPACKET socket, else -ENOTSOCK etc. */
int entry_check_channel(int fd);

/*
 * Setup in, sandbox, Hello out.  Returns 0, or -errno with a message in
 * err (a frame other than Setup first is -EPROTO).
 */
int entry_setup(int fd, char *err, size_t errsz);

#endif
