/*
 * Seccomp kill records from the kernel log.  /dev/kmsg returns one record
 * per read(2); we keep the fd non-blocking and read until EAGAIN, so a
 * lookup never waits.  Records for other pids are skipped.  The kernel may
 * write its record a moment after the parent sees the exit, so a lookup
 * retries briefly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/policy.h"

#include "supervisor/kmsg.h"

static int kmsg_fd = -1;

void
kmsg_open(void)
{
	kmsg_close();
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd != -1)
		(void)lseek(kmsg_fd, 0, SEEK_END);
}

void
kmsg_close(void)
{
	if (kmsg_fd != -1)
		close(kmsg_fd);
	kmsg_fd = -1;
}

/* Parse "... pid=N ... syscall=M ..." of a seccomp audit record. */
static int
kmsg_parse(const char *rec, pid_t pid, long *ret_nr)
{
	const char *p;
	char want[32];

	if (strstr(rec, "type=1326") == NULL)
		return -ENOENT;
	snprintf(want, sizeof(want), " pid=%ld ", (long)pid);
	if (strstr(rec, want) == NULL)
		return -ENOENT;
	if ((p = strstr(rec, " syscall=")) == NULL)
		return -ENOENT;
	*ret_nr = strtol(p + 9, NULL, 10);
	return 0;
}

int
kmsg_seccomp_syscall(pid_t pid, char *buf, size_t bufsz)
{
	char rec[2048];
	struct timespec pause = { 0, 2 * 1000 * 1000 };
	const char *name;
	ssize_t n;
	long nr;

	if (kmsg_fd == -1)
		return -ENOENT;
	for (int attempt = 0; attempt < 10; attempt++) {
		while ((n = read(kmsg_fd, rec, sizeof(rec) - 1)) != 0) {
			if (n < 0) {
				if (errno == EPIPE)	/* overwritten: go on */
					continue;
				break;
			}
			rec[n] = '\0';
			if (kmsg_parse(rec, pid, &nr) < 0)
				continue;
			name = policy_syscall_name((int)nr);
			if (name != NULL)
				snprintf(buf, bufsz, "%s", name);
			else
				snprintf(buf, bufsz, "#%ld", nr);
			return 0;
		}
		nanosleep(&pause, NULL);
	}
	return -ENOENT;
}
