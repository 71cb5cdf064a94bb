/*
 * The line reader shared by seccomp.policy, landlock.policy and
 * limits.policy, and the tables of symbolic names those files may use.
 *
 * The file is read whole (it is small and bounded) so a NUL byte, an
 * over-long line or a file past POLICY_FILE_MAX is reported with its line
 * rather than silently cut.  The tables name only what the policy needs; a
 * name missing here is an error in the file, never a guess.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <netinet/in.h>

#include "common/buf.h"
#include "policy/policy_parse.h"

#define ENTRY(x)	{ #x, (uint64_t)(x) }

static const struct {
	const char *name;
	uint64_t value;
} policy_consts[] = {
	ENTRY(AF_UNIX), ENTRY(AF_INET), ENTRY(AF_INET6), ENTRY(AF_NETLINK),
	ENTRY(AF_PACKET),
	ENTRY(SOCK_STREAM), ENTRY(SOCK_DGRAM), ENTRY(SOCK_RAW),
	ENTRY(SOCK_SEQPACKET), ENTRY(SOCK_NONBLOCK), ENTRY(SOCK_CLOEXEC),
	ENTRY(IPPROTO_IP), ENTRY(IPPROTO_TCP), ENTRY(IPPROTO_UDP),
	ENTRY(CLONE_VM), ENTRY(CLONE_FS), ENTRY(CLONE_FILES),
	ENTRY(CLONE_SIGHAND), ENTRY(CLONE_PTRACE), ENTRY(CLONE_VFORK),
	ENTRY(CLONE_PARENT), ENTRY(CLONE_THREAD), ENTRY(CLONE_NEWNS),
	ENTRY(CLONE_SYSVSEM), ENTRY(CLONE_SETTLS), ENTRY(CLONE_UNTRACED),
	ENTRY(CLONE_NEWCGROUP), ENTRY(CLONE_NEWUTS), ENTRY(CLONE_NEWIPC),
	ENTRY(CLONE_NEWUSER), ENTRY(CLONE_NEWPID), ENTRY(CLONE_NEWNET),
	ENTRY(CLONE_IO),
	ENTRY(PROT_NONE), ENTRY(PROT_READ), ENTRY(PROT_WRITE),
	ENTRY(PROT_EXEC),
	ENTRY(F_GETFD), ENTRY(F_SETFD), ENTRY(F_GETFL), ENTRY(F_SETFL),
	ENTRY(FIONREAD), ENTRY(FIONBIO), ENTRY(FIOCLEX), ENTRY(TCGETS),
	ENTRY(TIOCSTI),
	ENTRY(PR_SET_NAME), ENTRY(PR_GET_NAME), ENTRY(PR_SET_DUMPABLE),
	ENTRY(PR_GET_DUMPABLE),
};

static const struct {
	const char *name;
	int value;
} policy_errnos[] = {
	ENTRY(EPERM), ENTRY(ENOENT), ENTRY(EINTR), ENTRY(EIO), ENTRY(EBADF),
	ENTRY(EAGAIN), ENTRY(ENOMEM), ENTRY(EACCES), ENTRY(EFAULT),
	ENTRY(EINVAL), ENTRY(ENOTTY), ENTRY(ENOSPC), ENTRY(ENOSYS),
	ENTRY(EAFNOSUPPORT), ENTRY(EPROTONOSUPPORT), ENTRY(EOPNOTSUPP),
	ENTRY(ECONNREFUSED),
};

#undef ENTRY

int
policy_errno_lookup(const char *name, int *ret)
{
	for (size_t i = 0; i < sizeof(policy_errnos) / sizeof(*policy_errnos);
	    i++) {
		if (strcmp(policy_errnos[i].name, name) == 0) {
			*ret = policy_errnos[i].value;
			return 0;
		}
	}
	return -ENOENT;
}

const char *
policy_errno_name(int e)
{
	for (size_t i = 0; i < sizeof(policy_errnos) / sizeof(*policy_errnos);
	    i++) {
		if (policy_errnos[i].value == e)
			return policy_errnos[i].name;
	}
	return "?";
}

int
policy_const_lookup(const char *name, uint64_t *ret)
{
	for (size_t i = 0; i < sizeof(policy_consts) / sizeof(*policy_consts);
	    i++) {
		if (strcmp(policy_consts[i].name, name) == 0) {
			*ret = policy_consts[i].value;
			return 0;
		}
	}
	return -ENOENT;
}

static int
policy_term_parse(const char *s, size_t len, uint64_t *ret)
{
	char term[64];
	char *end;
	unsigned long long v;

	if (len == 0 || len >= sizeof(term))
		return -EINVAL;
	memcpy(term, s, len);
	term[len] = '\0';
	if (term[0] >= '0' && term[0] <= '9') {
		errno = 0;
		v = strtoull(term, &end, 0);
		if (errno != 0 || *end != '\0')
			return -EINVAL;
		*ret = v;
		return 0;
	}
	if (policy_const_lookup(term, ret) != 0)
		return -EINVAL;
	return 0;
}

int
policy_value_parse(const char *s, uint64_t *ret)
{
	uint64_t v = 0, t;
	bool complement = false;
	const char *p, *bar;

	if (*s == '~') {
		complement = true;
		s++;
	}
	for (p = s;; p = bar + 1) {
		bar = strchr(p, '|');
		if (policy_term_parse(p, bar != NULL ? (size_t)(bar - p) :
		    strlen(p), &t) != 0)
			return -EINVAL;
		v |= t;
		if (bar == NULL)
			break;
	}
	if (complement)
		v = ~v & 0xffffffffULL;
	*ret = v;
	return 0;
}

int
policy_line_error(const struct policy_line *l, char *err, size_t errsz,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, errsz, "%s:%u: ", l->file, l->lineno);
	if (n >= 0 && (size_t)n < errsz) {
		va_start(ap, fmt);
		vsnprintf(err + n, errsz - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static char *
policy_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Split one line (NUL-terminated, no newline) and hand it to fn. */
static int
policy_parse_line(struct policy_line *l, char *line, policy_line_fn fn,
    void *ctx, char *err, size_t errsz)
{
	char *hash, *p, *save = NULL;

	l->nword = 0;
	l->reason = "";
	if ((hash = strchr(line, '#')) != NULL) {
		*hash = '\0';
		l->reason = policy_trim(hash + 1);
	}
	for (p = strtok_r(line, " \t\r", &save); p != NULL;
	    p = strtok_r(NULL, " \t\r", &save)) {
		if (l->nword == POLICY_WORDS_MAX)
			return policy_line_error(l, err, errsz,
			    "more than %d words", POLICY_WORDS_MAX);
		l->word[l->nword++] = p;
	}
	if (l->nword == 0)
		return 0;
	return fn(l, ctx, err, errsz);
}

int
policy_parse_file(const char *path, policy_line_fn fn, void *ctx, char *err,
    size_t errsz)
{
	struct policy_line l = { .file = path };
	struct buf b;
	char chunk[4096], *line, *nl;
	size_t n, len;
	int fd = -1, r;

	buf_init(&b, POLICY_FILE_MAX);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		r = -errno;
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t got = read(fd, chunk, sizeof(chunk));

		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			r = -errno;
			snprintf(err, errsz, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		if ((r = buf_append(&b, chunk, (size_t)got)) != 0) {
			snprintf(err, errsz, "%s: larger than %d bytes", path,
			    POLICY_FILE_MAX);
			goto out;
		}
	}
	len = b.len;
	for (line = b.data; line < b.data + len; line = nl + 1) {
		l.lineno++;
		n = (size_t)(b.data + len - line);
		if ((nl = memchr(line, '\n', n)) == NULL)
			nl = line + n;	/* last line without a newline */
		*nl = '\0';
		if (strlen(line) != (size_t)(nl - line)) {
			r = policy_line_error(&l, err, errsz, "NUL byte");
			goto out;
		}
		if ((size_t)(nl - line) > POLICY_LINE_MAX) {
			r = policy_line_error(&l, err, errsz,
			    "line longer than %d bytes", POLICY_LINE_MAX);
			goto out;
		}
		if ((r = policy_parse_line(&l, line, fn, ctx, err, errsz)) != 0)
			goto out;
	}
	r = 0;
out:
	if (fd != -1)
		close(fd);
	buf_release(&b);
	return r;
}
