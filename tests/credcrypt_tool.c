/*
 * credcrypt from the shell, for tests/integration/credcrypt.sh and for
 * making or checking stored credentials by hand, with the same
 * subcommands as tests/crypto/aes-node.js:
 *
 *	credcrypt_tool encrypt KEYID	plaintext on stdin, JSON on stdout
 *	credcrypt_tool decrypt		JSON on stdin, plaintext on stdout
 *	credcrypt_tool bench KEYID N	time one key derivation, then N rows
 *					encrypted and decrypted (a password
 *					of 24 bytes)
 *
 * Keys come from $CREDENTIALS_DIRECTORY/encryption-key-<id> or
 * ENCRYPTION_KEY_<id>.  Plaintext goes out exactly, without a newline;
 * JSON with one.  Exit 0, 1 with the error on stderr, 2 for bad usage.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/credcrypt.h"

/* Room for the largest stored text, and one byte to notice more. */
#define TOOL_INPUT_MAX	(CREDCRYPT_JSON_MAX + 1)

static int
read_stdin(struct buf *b)
{
	char chunk[4096];
	ssize_t n;
	int r;

	for (;;) {
		n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			r = 0;
			break;
		}
		if ((r = buf_append(b, chunk, (size_t)n)) < 0)
			break;
	}
	explicit_bzero(chunk, sizeof(chunk));
	return r;
}

static int
write_all(const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: credcrypt_tool encrypt KEYID < plaintext\n"
	    "       credcrypt_tool decrypt < stored-json\n"
	    "       credcrypt_tool bench KEYID N\n");
	exit(2);
}

/* The cost of a derivation against the cost of a row, and proof of one. */
static int
bench(const char *key_id, const char *count)
{
	static const char pw[] = "bench-password-0123456789";
	struct credcrypt *cc = NULL;
	struct buf plain;
	char err[CREDCRYPT_ERR_MAX], *end, **rows = NULL;
	unsigned long i, n;
	uint64_t t0, t1, t2, t3;
	int r = 1;

	n = strtoul(count, &end, 10);
	if (*count == '\0' || *end != '\0' || n == 0 || n > 1000000)
		usage();
	rows = calloc(n, sizeof(*rows));
	if (rows == NULL || credcrypt_new(&cc) < 0)
		goto out;
	t0 = clock_mono_ns();
	if (credcrypt_load_key(cc, key_id, err, sizeof(err)) < 0)
		goto fail;
	t1 = clock_mono_ns();
	for (i = 0; i < n; i++)
		if (credcrypt_encrypt(cc, key_id, pw, sizeof(pw) - 1, &rows[i],
		    err, sizeof(err)) < 0)
			goto fail;
	t2 = clock_mono_ns();
	for (i = 0; i < n; i++) {
		if (credcrypt_decrypt(cc, rows[i], &plain, err,
		    sizeof(err)) < 0)
			goto fail;
		buf_release_secret(&plain);
	}
	t3 = clock_mono_ns();
	printf("key derivation: %.1f ms\n"
	    "encrypt: %lu rows, %.2f us/row\n"
	    "decrypt: %lu rows, %.2f us/row\n"
	    "derivations: %lu\n"
	    "key cache locked in memory: %s\n",
	    (double)(t1 - t0) / 1e6, n, (double)(t2 - t1) / 1e3 / (double)n, n,
	    (double)(t3 - t2) / 1e3 / (double)n, credcrypt_derivations(cc),
	    credcrypt_locked(cc) ? "yes" : "no");
	r = 0;
	goto out;
fail:
	fprintf(stderr, "credcrypt_tool: %s\n", err);
out:
	for (i = 0; rows != NULL && i < n; i++)
		free(rows[i]);
	free(rows);
	credcrypt_free(cc);
	return r;
}

int
main(int argc, char **argv)
{
	struct credcrypt *cc = NULL;
	struct buf in, plain;
	char err[CREDCRYPT_ERR_MAX], *json = NULL;
	bool encrypt = false;
	int r, status = 1;

	log_init("credcrypt_tool", LOG_LEVEL_WARNING);
	if (argc == 4 && strcmp(argv[1], "bench") == 0)
		return bench(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "encrypt") == 0)
		encrypt = true;
	else if (argc != 2 || strcmp(argv[1], "decrypt") != 0)
		usage();
	/* At full size at once: growing would leave copies behind. */
	buf_init(&in, TOOL_INPUT_MAX);
	in.cap = TOOL_INPUT_MAX + 1;
	in.data = xmalloc(in.cap);
	in.data[0] = '\0';
	buf_init(&plain, 0);
	if ((r = read_stdin(&in)) < 0) {
		fprintf(stderr, "credcrypt_tool: reading stdin: %s\n",
		    r == -EMSGSIZE ? "more than the largest input" :
		    strerror(-r));
		goto out;
	}
	if ((r = credcrypt_new(&cc)) < 0) {
		fprintf(stderr, "credcrypt_tool: %s\n", strerror(-r));
		goto out;
	}
	if (encrypt) {
		r = credcrypt_encrypt(cc, argv[2], in.data, in.len, &json, err,
		    sizeof(err));
		if (r == 0 && ((r = write_all(json, strlen(json))) < 0 ||
		    (r = write_all("\n", 1)) < 0))
			snprintf(err, sizeof(err), "writing stdout: %s",
			    strerror(-r));
	} else {
		r = credcrypt_decrypt(cc, in.data, &plain, err, sizeof(err));
		if (r == 0 && (r = write_all(plain.data, plain.len)) < 0)
			snprintf(err, sizeof(err), "writing stdout: %s",
			    strerror(-r));
	}
	if (r < 0) {
		fprintf(stderr, "credcrypt_tool: %s\n", err);
		goto out;
	}
	status = 0;
out:
	buf_release_secret(&in);
	buf_release_secret(&plain);
	free(json);
	credcrypt_free(cc);
	return status;
}
