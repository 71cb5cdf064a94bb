/*
 * Secrets from systemd's credentials directory, checked in the manner of
 * OpenSMTPD's check_file_secrecy(): a secret file that group or others may
 * open is refused rather than used, so a mistake in deployment shows at
 * start-up instead of leaking quietly.  The buffer a secret is read into is
 * allocated once at its full size, so no reallocation leaves a copy behind
 * in freed memory.  Messages name files, never contents.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/secrets.h"

#define SECRET_KEY_PREFIX	"encryption-key-"
#define SECRET_ENV_PREFIX	"ENCRYPTION_KEY_"

const char *const secret_names[] = {
	SECRET_DB_PASSWORD,
	SECRET_QSTASH_TOKEN,
	SECRET_QSTASH_CURRENT_KEY,
	SECRET_QSTASH_NEXT_KEY,
	SECRET_JWT_SECRET,
	SECRET_SMTP_PASSWORD,
	SECRET_POSTHOG_KEY,
	SECRET_VAPI_KEY,
	NULL,
};

static bool
secret_chars_ok(const char *s, const char *allowed)
{
	size_t len = strlen(s);

	return len > 0 && len <= SECRET_NAME_MAX &&
	    s[strspn(s, allowed)] == '\0';
}

bool
secret_name_valid(const char *name)
{
	return secret_chars_ok(name, "abcdefghijklmnopqrstuvwxyz0123456789_-");
}

static bool
secret_key_id_valid(const char *id)
{
	return secret_chars_ok(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_-");
}

/* $CREDENTIALS_DIRECTORY/<file>, or -ENOENT/-EINVAL with a message. */
static int
secret_path(const char *file, char **ret_path, char *err, size_t errsz)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");

	if (dir == NULL || *dir == '\0') {
		snprintf(err, errsz, "secret '%s': $CREDENTIALS_DIRECTORY is "
		    "not set (LoadCredential= in the unit provides it)", file);
		return -ENOENT;
	}
	if (*dir != '/') {
		snprintf(err, errsz, "secret '%s': $CREDENTIALS_DIRECTORY "
		    "'%s' is not an absolute path", file, log_q(dir));
		return -EINVAL;
	}
	*ret_path = xasprintf("%s/%s", dir, file);
	return 0;
}

/*
 * One allocation at full size (and the NUL, and one byte to notice a file
 * that grew): growing would leave copies of the secret in freed memory.
 */
static void
secret_buf_alloc(struct buf *b)
{
	buf_init(b, SECRET_SIZE_MAX);
	b->cap = SECRET_SIZE_MAX + 2;
	b->data = xmalloc(b->cap);
	b->data[0] = '\0';
}

/* Drop one trailing newline, as `echo secret > file` leaves one. */
static void
secret_strip_newline(struct buf *b)
{
	if (b->len > 0 && b->data[b->len - 1] == '\n')
		b->data[--b->len] = '\0';
}

static int
secret_read_path(const char *path, struct buf *ret_secret, char *err,
    size_t errsz)
{
	struct buf b;
	struct stat st;
	ssize_t n;
	int fd = -1, r;

	buf_init(&b, SECRET_SIZE_MAX);
	/* O_NONBLOCK: a FIFO planted here must not hang the open. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
	    O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ELOOP) {
			snprintf(err, errsz, "refusing secret file '%s': a "
			    "symbolic link", log_q(path));
			r = -EPERM;
		} else if (r == -ENOENT)
			snprintf(err, errsz, "secret file '%s' does not exist",
			    log_q(path));
		else
			snprintf(err, errsz, "secret file '%s': %s",
			    log_q(path), strerror(-r));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errsz, "secret file '%s': %s", log_q(path),
		    strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "refusing secret file '%s': not a regular "
		    "file", log_q(path));
		r = -EPERM;
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errsz, "refusing secret file '%s': %s by group "
		    "or others (mode 0%03o)", log_q(path),
		    (st.st_mode & 044) != 0 ? "readable" : "writable",
		    (unsigned)(st.st_mode & 07777));
		r = -EPERM;
		goto out;
	}
	if (st.st_size > SECRET_SIZE_MAX) {
		snprintf(err, errsz, "refusing secret file '%s': %lld bytes, "
		    "more than %d", log_q(path), (long long)st.st_size,
		    SECRET_SIZE_MAX);
		r = -EFBIG;
		goto out;
	}
	secret_buf_alloc(&b);
	while (b.len <= SECRET_SIZE_MAX) {
		n = read(fd, b.data + b.len, SECRET_SIZE_MAX + 1 - b.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errsz, "secret file '%s': %s",
			    log_q(path), strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
	}
	if (b.len > SECRET_SIZE_MAX) {
		snprintf(err, errsz, "refusing secret file '%s': more than %d "
		    "bytes", log_q(path), SECRET_SIZE_MAX);
		r = -EFBIG;
		goto out;
	}
	b.data[b.len] = '\0';
	secret_strip_newline(&b);
	if (b.len == 0) {
		snprintf(err, errsz, "refusing secret file '%s': empty",
		    log_q(path));
		r = -ENODATA;
		goto out;
	}
	*ret_secret = b;
	buf_init(&b, SECRET_SIZE_MAX);
	r = 0;
out:
	if (fd != -1)
		close(fd);
	buf_release_secret(&b);
	return r;
}

int
secret_read(const char *name, struct buf *ret_secret, char *err,
    size_t errsz)
{
	char *path = NULL;
	int r;

	if (!secret_name_valid(name)) {
		snprintf(err, errsz, "secret name '%s': not valid; allowed: "
		    "a-z, 0-9, '_' and '-', 1 to %d bytes", log_q(name),
		    SECRET_NAME_MAX);
		return -EINVAL;
	}
	if ((r = secret_path(name, &path, err, errsz)) < 0)
		return r;
	r = secret_read_path(path, ret_secret, err, errsz);
	free(path);
	return r;
}

int
secret_encryption_key(const char *key_id, struct buf *ret_secret, char *err,
    size_t errsz)
{
	struct buf b;
	const char *value;
	char *file = NULL, *path = NULL, *env = NULL;
	int r;

	buf_init(&b, SECRET_SIZE_MAX);
	if (!secret_key_id_valid(key_id)) {
		snprintf(err, errsz, "encryption key id '%s': not valid; "
		    "allowed: A-Z, a-z, 0-9, '_' and '-', 1 to %d bytes",
		    log_q(key_id), SECRET_NAME_MAX);
		return -EINVAL;
	}
	file = xasprintf(SECRET_KEY_PREFIX "%s", key_id);
	env = xasprintf(SECRET_ENV_PREFIX "%s", key_id);
	r = secret_path(file, &path, err, errsz);
	if (r == 0)
		r = secret_read_path(path, ret_secret, err, errsz);
	if (r != -ENOENT)
		goto out;

	if ((value = getenv(env)) == NULL || *value == '\0') {
		snprintf(err, errsz, "encryption key '%s': neither "
		    "$CREDENTIALS_DIRECTORY/%s nor %s is set", key_id, file,
		    env);
		r = -ENOENT;
		goto out;
	}
	if (strlen(value) > SECRET_SIZE_MAX) {
		snprintf(err, errsz, "encryption key '%s': %s is more than %d "
		    "bytes", key_id, env, SECRET_SIZE_MAX);
		r = -EFBIG;
		goto out;
	}
	secret_buf_alloc(&b);
	b.len = strlen(value);
	memcpy(b.data, value, b.len + 1);
	secret_strip_newline(&b);
	*ret_secret = b;
	buf_init(&b, SECRET_SIZE_MAX);
	r = 0;
out:
	buf_release_secret(&b);
	free(path);
	free(env);
	free(file);
	return r;
}

bool
secret_exists(const char *name)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	struct stat st;
	char *path;
	bool ok;

	if (!secret_name_valid(name) || dir == NULL || *dir != '/')
		return false;
	path = xasprintf("%s/%s", dir, name);
	ok = fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode);
	free(path);
	return ok;
}
