/*
 * Which syscall killed a worker.  SECCOMP_RET_KILL_PROCESS leaves the
 * parent only "SIGSYS"; the kernel logs the syscall number in an audit
 * record (type=1326) to its log.  When /dev/kmsg is readable (root, or
 * CAP_SYSLOG) we find the record for the dead pid; otherwise the name is
 * simply not known.
 */
#ifndef VS_SUPERVISOR_KMSG_H
#define VS_SUPERVISOR_KMSG_H

#include <sys/types.h>

#include <stddef.h>

/* Open /dev/kmsg positioned at its end; silently does nothing if denied. */
void kmsg_open(void);
void kmsg_close(void);

/*
 * Find the seccomp record of pid among the kernel messages logged since
 * the last call, and write the syscall's name (or "#NR") into buf.
 * Returns 0, or -ENOENT when no record was found.
 */
int kmsg_seccomp_syscall(pid_t pid, char *buf, size_t bufsz);

#endif
