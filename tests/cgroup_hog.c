/*
 * cgroup_hog: the misbehaving child of the cgroup tests.  It does one bad
 * thing and reports on stdout what it got:
 *
 *   cgroup_hog mem BYTES    touch BYTES of memory, 1 MiB at a time;
 *                           prints "allocated N" if it was not killed
 *   cgroup_hog fork MAX     fork up to MAX sleeping children; prints
 *                           "forked N errno E", then reaps them
 *   cgroup_hog cpu SECONDS  spin for SECONDS of wall time; prints
 *                           "cpu_usec C wall_usec W" from its own rusage
 *   cgroup_hog tree N       fork N sleeping children, then sleep too
 *   cgroup_hog sleep        wait for a signal
 *
 * Built without the sanitizers: it stands for a worker's raw behaviour.
 */
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long long
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000;
}

static int
hog_mem(unsigned long long bytes)
{
	unsigned long long done = 0;
	const size_t chunk = 1U << 20;
	char *p;

	while (done < bytes) {
		if ((p = malloc(chunk)) == NULL)
			break;
		memset(p, 0xa5, chunk);
		done += chunk;
	}
	printf("allocated %llu\n", done);
	return 0;
}

static int
hog_fork(unsigned long max)
{
	unsigned long n = 0;
	pid_t pid;
	int err = 0;

	for (; n < max; n++) {
		if ((pid = fork()) == -1) {
			err = errno;
			break;
		}
		if (pid == 0) {
			pause();
			_exit(0);
		}
	}
	printf("forked %lu errno %d\n", n, err);
	fflush(stdout);
	signal(SIGTERM, SIG_IGN);
	kill(0, SIGTERM);	/* our children; we are a group leader */
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}

static int
hog_cpu(unsigned long seconds)
{
	unsigned long long start = now_usec(), end;
	volatile unsigned long spin = 0;
	struct rusage ru;

	end = start + seconds * 1000000ULL;
	while (now_usec() < end) {
		for (int i = 0; i < 10000; i++)
			spin++;
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("cpu_usec %llu wall_usec %llu\n",
	    (unsigned long long)ru.ru_utime.tv_sec * 1000000ULL +
	    (unsigned long long)ru.ru_utime.tv_usec +
	    (unsigned long long)ru.ru_stime.tv_sec * 1000000ULL +
	    (unsigned long long)ru.ru_stime.tv_usec, now_usec() - start);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && strcmp(argv[1], "mem") == 0)
		return hog_mem(strtoull(argv[2], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "fork") == 0) {
		setpgid(0, 0);
		return hog_fork(strtoul(argv[2], NULL, 10));
	}
	if (argc == 3 && strcmp(argv[1], "cpu") == 0)
		return hog_cpu(strtoul(argv[2], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "tree") == 0) {
		for (unsigned long n = strtoul(argv[2], NULL, 10); n > 0; n--) {
			if (fork() == 0)
				break;
		}
		for (;;)
			pause();
	}
	if (argc == 2 && strcmp(argv[1], "sleep") == 0) {
		for (;;)
			pause();
	}
	fprintf(stderr, "usage: cgroup_hog mem BYTES | fork MAX | "
	    "cpu SECONDS | tree N | sleep\n");
	return 2;
}
