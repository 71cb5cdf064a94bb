/*
 * Audit records as fsync'd JSON lines in a bounded spool file, and the
 * cursor that says how much of it the database holds (see audit.h).
 *
 * A record is written with one write(2) on an O_APPEND descriptor, so a
 * reader never sees half a line; a write cut short is truncated away at
 * once, and one cut short by a crash is removed at the next open.  Offsets
 * into the spool are kept here (size, read: handed to the writer, done:
 * confirmed), so the writer reads with pread(2) and never moves the
 * append position.  Compaction copies the unconfirmed tail to a new file
 * and renames it over the spool; the cursor is always replaced (write,
 * fsync, rename, fsync the directory) before the spool shrinks, so a crash
 * anywhere in between replays at most what the keys make harmless.
 */
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/alerts.h"
#include "supervisor/audit.h"

#define CHUNK		(1024 * 1024)	/* read from the spool at a time */
#define COMPACT_MIN	(1024 * 1024)	/* a confirmed prefix worth a copy */
#define CURSOR_MAX	256		/* bytes of a cursor file */

static struct {
	int fd;			/* the spool, O_RDWR | O_APPEND */
	int dirfd;		/* its directory, for fsync after rename */
	char *path;
	char *cursor;		/* "<path>.cursor" */
	char epoch[AUDIT_EPOCH_LEN];
	uint64_t limit;
	uint64_t seq;		/* the last seq given */
	uint64_t size;		/* bytes in the spool */
	uint64_t read;		/* offset: handed to the writer up to here */
	uint64_t done;		/* offset: confirmed up to here */
	uint64_t done_seq;
	uint64_t count, refused;
	uint64_t episode;	/* refused since the spool last took one */
	audit_notify_fn *notify;
	void *notify_arg;
} sp = { .fd = -1, .dirfd = -1 };

/* One complete line; fn returns 0 to go on, > 0 to stop after it. */
typedef int line_fn(const char *line, size_t len, uint64_t off, void *arg);

/*
 * Hand the complete lines between off and end to fn.  *ret_next is the
 * offset after the last line handed over (a line with no newline before
 * end is not); a line longer than CHUNK is skipped as garbage.
 */
static int
spool_scan(uint64_t off, uint64_t end, line_fn *fn, void *arg,
    uint64_t *ret_next)
{
	char *buf = xmalloc(CHUNK);
	int r = 0;

	while (off < end) {
		size_t want = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
		ssize_t n = pread(sp.fd, buf, want, (off_t)off);
		size_t pos = 0;
		char *nl;

		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		while ((nl = memchr(buf + pos, '\n', (size_t)n - pos)) !=
		    NULL) {
			size_t len = (size_t)(nl - (buf + pos));

			*nl = '\0';
			r = fn(buf + pos, len, off + pos, arg);
			pos += len + 1;
			if (r != 0)
				break;
		}
		if (pos == 0 && r == 0 && (size_t)n == CHUNK &&
		    off + (uint64_t)n < end) {
			log_warnx("audit spool '%s': skipping %zd bytes at "
			    "offset %" PRIu64 " with no line end", sp.path, n,
			    off);
			pos = (size_t)n;
		}
		off += pos;
		if (r != 0 || pos == 0)
			break;
	}
	free(buf);
	*ret_next = off;
	return r < 0 ? r : 0;
}

/* The record's seq; 0 when the line is not a record. */
static uint64_t
line_seq(const char *line, size_t len, json_t **ret_rec)
{
	json_t *rec, *s;
	uint64_t seq = 0;

	rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (rec == NULL)
		return 0;
	s = json_object_get(rec, "seq");
	if (json_is_integer(s) && json_integer_value(s) > 0 &&
	    json_is_string(json_object_get(rec, "event")))
		seq = (uint64_t)json_integer_value(s);
	if (seq != 0 && ret_rec != NULL)
		*ret_rec = json_incref(rec);
	json_decref(rec);
	return seq;
}

static int
fsync_dir(void)
{
	return fsync(sp.dirfd) == -1 ? -errno : 0;
}

static int
write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replace the cursor file: epoch and the last confirmed seq. */
static int
cursor_write(uint64_t seq)
{
	char text[CURSOR_MAX], tmp[PATH_MAX];
	int fd, r;

	snprintf(text, sizeof(text), "{\"epoch\":\"%s\",\"seq\":%" PRIu64
	    "}\n", sp.epoch, seq);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", sp.cursor) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1)
		return -errno;
	r = write_all(fd, text, strlen(text));
	if (r == 0 && fsync(fd) == -1)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, sp.cursor) == -1)
		r = -errno;
	if (r == 0)
		r = fsync_dir();
	if (r < 0)
		unlink(tmp);
	return r;
}

static bool
epoch_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' &&
		    s[i] <= 'f')))
			return false;
	return i == AUDIT_EPOCH_LEN - 1;
}

/*
 * Read the cursor into sp.epoch and sp.done_seq.  Returns 1 when it was
 * there, 0 when it was not, -EINVAL (logged) when it is not a cursor.
 */
static int
cursor_read(void)
{
	char text[CURSOR_MAX];
	json_t *c = NULL, *e, *s;
	ssize_t n;
	int fd, r = -EINVAL;

	fd = open(sp.cursor, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, text, sizeof(text));
	close(fd);
	if (n > 0 && n < (ssize_t)sizeof(text))
		c = json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	e = json_object_get(c, "epoch");
	s = json_object_get(c, "seq");
	if (json_is_string(e) && epoch_valid(json_string_value(e)) &&
	    json_is_integer(s) && json_integer_value(s) >= 0) {
		snprintf(sp.epoch, sizeof(sp.epoch), "%s",
		    json_string_value(e));
		sp.done_seq = (uint64_t)json_integer_value(s);
		r = 1;
	} else
		log_warnx("audit cursor '%s': not a cursor ({\"epoch\": 32 hex "
		    "digits, \"seq\": N}); remove it to replay the whole spool",
		    sp.cursor);
	json_decref(c);
	return r;
}

struct open_scan {
	uint64_t last;		/* the highest seq seen */
	uint64_t done;		/* offset after the last confirmed record */
	size_t records, garbage, disorder;
};

static int
open_line(const char *line, size_t len, uint64_t off, void *arg)
{
	struct open_scan *o = arg;
	uint64_t seq = line_seq(line, len, NULL);

	if (seq == 0) {
		o->garbage++;
		return 0;
	}
	if (seq <= o->last)
		o->disorder++;
	else
		o->last = seq;
	if (seq <= sp.done_seq)
		o->done = off + len + 1;
	o->records++;
	return 0;
}

struct copy {
	int fd;
	uint64_t renumber;	/* 0: keep seqs; else the next seq to give */
	int r;
};

static int
copy_line(const char *line, size_t len, uint64_t off, void *arg)
{
	struct copy *c = arg;
	json_t *rec = NULL;
	char *text;

	if (c->renumber == 0) {
		c->r = write_all(c->fd, line, len);
		if (c->r == 0)
			c->r = write_all(c->fd, "\n", 1);
		return c->r;
	}
	if (line_seq(line, len, &rec) == 0)
		return 0;	/* not a record: dropped, as counted */
	json_object_set_new(rec, "seq",
	    json_integer((json_int_t)c->renumber++));
	text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(rec);
	if (text == NULL)
		return c->r = -ENOMEM;
	c->r = write_all(c->fd, text, strlen(text));
	if (c->r == 0)
		c->r = write_all(c->fd, "\n", 1);
	free(text);
	return c->r;
}

/*
 * Replace the spool by its part from off on, renumbered from 1 when
 * renumber.  Offsets move down by off.
 */
static int
spool_rewrite(uint64_t off, bool renumber)
{
	struct copy c = { -1, renumber ? 1 : 0, 0 };
	char tmp[PATH_MAX];
	uint64_t next;
	int r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", sp.path) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	c.fd = open(tmp, O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (c.fd == -1)
		return -errno;
	r = spool_scan(off, sp.size, copy_line, &c, &next);
	if (r == 0)
		r = c.r;
	if (r == 0 && fsync(c.fd) == -1)
		r = -errno;
	if (r == 0 && rename(tmp, sp.path) == -1)
		r = -errno;
	if (r == 0)
		r = fsync_dir();
	if (r < 0) {
		close(c.fd);
		unlink(tmp);
		return r;
	}
	close(sp.fd);
	sp.fd = c.fd;
	if (renumber) {
		sp.seq = c.renumber - 1;
		sp.size = (uint64_t)lseek(sp.fd, 0, SEEK_END);
		sp.read = sp.done = 0;
	} else {
		sp.size -= off;
		sp.read -= off;
		sp.done -= off;
	}
	return 0;
}

static int
parse_limit(uint64_t *ret)
{
	const char *v = getenv(AUDIT_SPOOL_ENV);
	unsigned long long n;
	char *end;

	*ret = AUDIT_SPOOL_MAX;
	if (v == NULL || v[0] == '\0')
		return 0;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 ||
	    n < AUDIT_SPOOL_MIN) {
		log_warnx("%s '%s': not a spool limit (bytes, a number of at "
		    "least %llu)", AUDIT_SPOOL_ENV, log_q(v), AUDIT_SPOOL_MIN);
		return -EINVAL;
	}
	*ret = n;
	return 0;
}

static void
epoch_new(void)
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		fatal("getrandom");
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(sp.epoch + 2 * i, 3, "%02x", b[i]);
}

static int
spool_load(void)
{
	struct open_scan o = { 0 };
	struct stat st;
	bool had_cursor;
	uint64_t next;
	int r;

	if ((r = cursor_read()) < 0)
		return r;
	had_cursor = r == 1;
	if (fstat(sp.fd, &st) == -1)
		return -errno;
	sp.size = (uint64_t)st.st_size;
	if ((r = spool_scan(0, sp.size, open_line, &o, &next)) < 0)
		return r;
	if (next < sp.size) {
		log_warnx("audit spool '%s': removing %" PRIu64 " bytes of a "
		    "record cut short at the end", sp.path, sp.size - next);
		if (ftruncate(sp.fd, (off_t)next) == -1 ||
		    fdatasync(sp.fd) == -1)
			return -errno;
		sp.size = next;
	}
	if (o.garbage > 0)
		log_warnx("audit spool '%s': %zu line(s) are not records; "
		    "they are skipped", sp.path, o.garbage);
	sp.done = sp.read = o.done;
	sp.seq = o.last > sp.done_seq ? o.last : sp.done_seq;
	if (had_cursor && sp.size > 0 && sp.done == sp.size) {
		/* Confirmed in full, then a crash before the truncation. */
		if (ftruncate(sp.fd, 0) == -1 || fdatasync(sp.fd) == -1)
			return -errno;
		sp.size = sp.done = sp.read = 0;
	}
	if (!had_cursor) {
		epoch_new();
		sp.done_seq = 0;
		sp.done = sp.read = 0;
		if (o.records > 0)
			log_warnx("audit spool '%s': no cursor: its %zu "
			    "record(s) are replayed under a new epoch", sp.path,
			    o.records);
		/* Numbered by an older vetsyncd, restarting at each start. */
		if (o.disorder > 0 && (r = spool_rewrite(0, true)) < 0)
			return r;
		if ((r = cursor_write(0)) < 0)
			return r;
	} else if (o.disorder > 0)
		log_warnx("audit spool '%s': %zu record(s) out of order",
		    sp.path, o.disorder);
	return 0;
}

static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

int
audit_open(const char *path)
{
	uint64_t limit;
	char *dir;
	int r;

	if ((r = parse_limit(&limit)) < 0)
		return r;
	audit_close();
	sp.fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (sp.fd == -1)
		return -errno;
	dir = dir_of(path);
	sp.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (sp.dirfd == -1) {
		r = -errno;
		goto fail;
	}
	sp.path = xstrdup(path);
	sp.cursor = xasprintf("%s.cursor", path);
	sp.limit = limit;
	sp.count = sp.refused = sp.episode = 0;
	if ((r = spool_load()) < 0)
		goto fail;
	log_debug("audit spool '%s': epoch %s, %" PRIu64 " bytes, confirmed "
	    "through seq %" PRIu64 ", next seq %" PRIu64 ", limit %" PRIu64,
	    sp.path, sp.epoch, sp.size, sp.done_seq, sp.seq + 1, sp.limit);
	return 0;
fail:
	audit_close();
	return r;
}

void
audit_close(void)
{
	if (sp.fd != -1)
		close(sp.fd);
	if (sp.dirfd != -1)
		close(sp.dirfd);
	free(sp.path);
	free(sp.cursor);
	sp.fd = sp.dirfd = -1;
	sp.path = sp.cursor = NULL;
	sp.epoch[0] = '\0';
	sp.seq = sp.size = sp.read = sp.done = sp.done_seq = 0;
}

uint64_t
audit_count(void)
{
	return sp.count;
}

uint64_t
audit_refused(void)
{
	return sp.refused;
}

void
audit_set_notify(audit_notify_fn *fn, void *arg)
{
	sp.notify = fn;
	sp.notify_arg = arg;
}

static void
set_str(json_t *rec, const char *key, const char *v)
{
	if (v != NULL)
		json_object_set_new(rec, key, json_string(v));
}

/* The record as one line with its newline, or NULL. */
static char *
encode(const struct audit_event *e, json_t *rec, uint64_t seq,
    size_t *ret_len)
{
	char ts[CLOCK_RFC3339_LEN], session[32];
	char *line;

	json_object_set_new(rec, "ts", json_string(clock_format_rfc3339(
	    clock_wall_ms(), ts, sizeof(ts))));
	json_object_set_new(rec, "seq", json_integer((json_int_t)seq));
	set_str(rec, "event", e->event);
	set_str(rec, "clinic", e->clinic);
	if (e->job != 0)
		json_object_set_new(rec, "job",
		    json_integer((json_int_t)e->job));
	if (e->session == NULL && e->job != 0) {
		snprintf(session, sizeof(session), "job-%" PRIu64, e->job);
		set_str(rec, "session", session);
	} else
		set_str(rec, "session", e->session);
	set_str(rec, "actor", e->actor != NULL ? e->actor : "vetsyncd");
	set_str(rec, "status", e->status);
	set_str(rec, "policy_hash", e->policy_hash);
	if (e->error != NULL)
		json_object_set(rec, "error", e->error);
	line = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	if (line != NULL) {
		*ret_len = strlen(line);
		line[(*ret_len)++] = '\n';	/* room: overwrite the NUL */
	}
	return line;
}

/*
 * A record the spool cannot take: at its limit (error 0), or the file
 * system failed the write (a full disk, an I/O error).  Said loudly once
 * per episode, counted always.
 */
static void
refuse(const char *event, uint64_t len, int error)
{
	sp.refused++;
	if (sp.episode++ == 0 && error == 0)
		log_warnx("alert: audit spool '%s' is full (%" PRIu64 " of %"
		    PRIu64 " bytes, %" PRIu64 " not yet in the database): "
		    "refusing audit records until the database takes them",
		    sp.path, sp.size, sp.limit, sp.size - sp.done);
	else if (sp.episode == 1)
		log_warnx("alert: audit spool '%s' cannot be written: %s "
		    "(%" PRIu64 " bytes, %" PRIu64 " not yet in the database): "
		    "refusing audit records until it can", sp.path,
		    strerror(error), sp.size, sp.size - sp.done);
	if (sp.episode == 1)
		alerts_raise(ALERT_AUDIT_SPOOL_FULL, NULL, error == 0 ?
		    "the audit spool is full: audit records are refused" :
		    "the audit spool cannot be written: audit records are "
		    "refused", "the database connection (the spool drains "
		    "into it), the spool's file system and its size limit ("
		    AUDIT_SPOOL_ENV ")");
	log_debug("audit: '%s' record of %" PRIu64 " bytes refused", event,
	    len);
}

int
audit_emit(const struct audit_event *e, json_t *fields)
{
	json_t *rec;
	char *line = NULL;
	size_t len = 0;
	int r;

	rec = fields != NULL ? fields : json_object();
	line = encode(e, rec, sp.seq + 1, &len);
	json_decref(rec);
	json_decref(e->error);
	if (line == NULL) {
		log_warnx("audit: cannot encode a '%s' record", e->event);
		return -ENOMEM;
	}
	line[len - 1] = '\0';
	log_debug("audit: %s", line);
	line[len - 1] = '\n';
	if (sp.fd == -1) {
		r = -EBADF;
		goto out;
	}
	if (len > AUDIT_RECORD_MAX) {
		log_warnx("audit: a '%s' record of %zu bytes is over the %d "
		    "limit; refused", e->event, len, AUDIT_RECORD_MAX);
		sp.refused++;
		r = -EMSGSIZE;
		goto out;
	}
	if (sp.size + len > sp.limit && sp.done > 0 && sp.read == sp.done &&
	    (r = spool_rewrite(sp.done, false)) < 0)
		log_warnx("audit spool '%s': cannot compact: %s", sp.path,
		    strerror(-r));
	if (sp.size + len > sp.limit) {
		refuse(e->event, len, 0);
		r = -ENOSPC;
		goto out;
	}
	if ((r = write_all(sp.fd, line, len)) < 0) {
		refuse(e->event, len, -r);
		/* No half line may stay for the next record to join. */
		if (ftruncate(sp.fd, (off_t)sp.size) == -1)
			log_warn("audit spool '%s': cannot truncate", sp.path);
		goto out;
	}
	if (fdatasync(sp.fd) == -1) {
		r = -errno;
		log_warn("audit: cannot sync the spool");
	}
	sp.size += len;
	sp.seq++;
	sp.count++;
	if (sp.episode > 0) {
		log_warnx("audit spool '%s': taking records again; %" PRIu64
		    " were refused meanwhile", sp.path, sp.episode);
		sp.episode = 0;
	}
	if (sp.notify != NULL)
		sp.notify(sp.notify_arg);
out:
	free(line);
	return r;
}

void
audit_record(const char *event, const char *clinic, uint64_t job,
    json_t *fields)
{
	struct audit_event e = { .event = event, .clinic = clinic, .job = job };

	(void)audit_emit(&e, fields);
}

const char *
audit_spool_epoch(void)
{
	return sp.epoch;
}

struct next {
	struct audit_batch *b;
	size_t max, max_bytes, bytes;
};

static int
next_line(const char *line, size_t len, uint64_t off, void *arg)
{
	struct next *n = arg;
	json_t *rec = NULL;
	uint64_t seq = line_seq(line, len, &rec);

	n->bytes += len + 1;
	if (seq == 0 || seq <= n->b->last_seq) {
		log_warnx("audit spool '%s': skipping the line at offset %"
		    PRIu64 ": %s", sp.path, off, seq == 0 ? "not a record" :
		    "out of order");
		json_decref(rec);
	} else {
		if (n->b->first_seq == 0)
			n->b->first_seq = seq;
		n->b->last_seq = seq;
		json_array_append_new(n->b->records, rec);
	}
	return json_array_size(n->b->records) >= n->max ||
	    n->bytes >= n->max_bytes;
}

int
audit_spool_next(size_t max, size_t max_bytes, struct audit_batch *b)
{
	struct next n = { b, max, max_bytes, 0 };
	uint64_t end;
	int r;

	memset(b, 0, sizeof(*b));
	if (sp.fd == -1)
		return -EBADF;
	b->records = json_array();
	b->last_seq = sp.done_seq;
	if (sp.read < sp.size && max > 0) {
		/* Bytes past max_bytes only to finish the last line. */
		end = sp.size - sp.read > max_bytes + AUDIT_RECORD_MAX ?
		    sp.read + max_bytes + AUDIT_RECORD_MAX : sp.size;
		if ((r = spool_scan(sp.read, end, next_line, &n, &end)) < 0) {
			audit_batch_release(b);
			return r;
		}
		sp.read = end;
	}
	b->end = sp.read;
	return (int)json_array_size(b->records);
}

void
audit_batch_release(struct audit_batch *b)
{
	json_decref(b->records);
	b->records = NULL;
}

int
audit_spool_confirm(const struct audit_batch *b)
{
	int r;

	if (sp.fd == -1)
		return -EBADF;
	if (b->end <= sp.done)
		return 0;	/* rewritten or truncated since */
	if (b->last_seq > sp.done_seq) {
		if ((r = cursor_write(b->last_seq)) < 0)
			return r;
		sp.done_seq = b->last_seq;
	}
	sp.done = b->end;
	if (sp.done == sp.size) {
		if (ftruncate(sp.fd, 0) == -1 || fdatasync(sp.fd) == -1)
			return -errno;
		sp.size = sp.read = sp.done = 0;
	} else if (sp.read == sp.done && sp.done >= COMPACT_MIN &&
	    sp.done * 2 >= sp.size) {
		/* Only with nothing handed out: batches hold offsets. */
		if ((r = spool_rewrite(sp.done, false)) < 0)
			return r;
	}
	return 0;
}

void
audit_spool_rewind(void)
{
	sp.read = sp.done;
}

uint64_t
audit_spool_size(void)
{
	return sp.size;
}

uint64_t
audit_spool_backlog(void)
{
	return sp.size - sp.done;
}

uint64_t
audit_spool_confirmed(void)
{
	return sp.done_seq;
}
