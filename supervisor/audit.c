/*
 * Audit records as fsync'd JSON lines in the spool file (see audit.h).
 * A record is written with one write(2) on an O_APPEND descriptor, so
 * concurrent readers never see half a line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"

#include "supervisor/audit.h"

static int audit_fd = -1;
static uint64_t audit_seq;

int
audit_open(const char *path)
{
	int fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1)
		return -errno;
	audit_close();
	audit_fd = fd;
	audit_seq = 0;
	return 0;
}

void
audit_close(void)
{
	if (audit_fd != -1)
		close(audit_fd);
	audit_fd = -1;
}

uint64_t
audit_count(void)
{
	return audit_seq;
}

void
audit_record(const char *event, const char *clinic, uint64_t job,
    json_t *fields)
{
	char ts[CLOCK_RFC3339_LEN];
	json_t *rec;
	char *line = NULL;
	size_t len;
	ssize_t n;

	rec = fields != NULL ? fields : json_object();
	json_object_set_new(rec, "ts", json_string(clock_format_rfc3339(
	    clock_wall_ms(), ts, sizeof(ts))));
	json_object_set_new(rec, "seq", json_integer((json_int_t)++audit_seq));
	json_object_set_new(rec, "event", json_string(event));
	if (clinic != NULL)
		json_object_set_new(rec, "clinic", json_string(clinic));
	if (job != 0)
		json_object_set_new(rec, "job", json_integer((json_int_t)job));
	line = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(rec);
	if (line == NULL) {
		log_warnx("audit: cannot encode a '%s' record", event);
		return;
	}
	log_debug("audit: %s", line);
	if (audit_fd == -1)
		goto out;
	len = strlen(line);
	line[len++] = '\n';	/* json_dumps leaves room: overwrite the NUL */
	n = write(audit_fd, line, len);
	if (n != (ssize_t)len)
		log_warn("audit: cannot append a '%s' record", event);
	else if (fdatasync(audit_fd) == -1)
		log_warn("audit: cannot sync the spool");
out:
	free(line);
}
