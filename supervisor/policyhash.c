/* SHA-256 of the policy files and the worker binary (policyhash.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "policy/policy.h"

#include "supervisor/policyhash.h"

static int
hash_file(EVP_MD_CTX *ctx, const char *path)
{
	unsigned char buf[65536];
	ssize_t n;
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -errno;
	/* The name too: moving a rule from one file to another shows. */
	EVP_DigestUpdate(ctx, path, strlen(path) + 1);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	if (n < 0)
		r = -errno;
	close(fd);
	return r;
}

int
policyhash_compute(const struct policy *p, const char *worker_binary,
    char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	const char *const *files;
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	int r = 0;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = -EIO;
		goto out;
	}
	for (files = policy_files(p); *files != NULL; files++)
		if ((r = hash_file(ctx, *files)) < 0)
			goto out;
	if ((r = hash_file(ctx, worker_binary)) < 0)
		goto out;
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		r = -EIO;
		goto out;
	}
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
	EVP_MD_CTX_free(ctx);
	return r;
}
