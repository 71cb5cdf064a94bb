/*
 * Unit tests for supervisor/vault.c: credentials in memory (one buffer,
 * refused when empty or multi-line) and the file source
 * ($CREDENTIALS_DIRECTORY/idexx-<clinic>: username, password, optional
 * company id; refused when others may read it).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/supervisor.h"
#include "supervisor/vault.h"

/* vault.c audits through audit.c, which needs no supervisor here. */
struct supervisor *sv;

static char dir[] = "/tmp/vetsync-vault.XXXXXX";

static void
put(const char *clinic, const char *text, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/idexx-%s", dir, clinic);
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_set(void **state)
{
	struct vault_creds c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(vault_creds_set(&c, "vet@clinic.test", "s3cret",
	    "c7"), 0);
	assert_string_equal(c.username, "vet@clinic.test");
	assert_string_equal(c.password, "s3cret");
	assert_string_equal(c.company_id, "c7");
	/* One buffer holds all three. */
	assert_ptr_equal(c.username, c.raw.data);
	assert_true(c.password > c.username &&
	    c.password < c.raw.data + c.raw.len);
	vault_creds_release(&c);
	assert_null(c.username);
	assert_null(c.password);
	assert_null(c.raw.data);

	memset(&c, 0, sizeof(c));
	assert_int_equal(vault_creds_set(&c, "u", "p", NULL), 0);
	assert_null(c.company_id);
	vault_creds_release(&c);
	assert_int_equal(vault_creds_set(&c, "u", "p", ""), 0);
	assert_null(c.company_id);
	vault_creds_release(&c);

	assert_int_equal(vault_creds_set(&c, "", "p", NULL), -EINVAL);
	assert_int_equal(vault_creds_set(&c, "u", "", NULL), -EINVAL);
	assert_int_equal(vault_creds_set(&c, "u", "p\nq", NULL), -EINVAL);
	assert_int_equal(vault_creds_set(&c, "u\r", "p", NULL), -EINVAL);
	assert_int_equal(vault_creds_set(&c, "u", "p", "c\n"), -EINVAL);
	assert_null(c.raw.data);
}

static void
test_file(void **state)
{
	struct vault_creds c;
	char err[256];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_false(vault_has("a1"));
	assert_int_equal(vault_get("a1", 1, "sync job", &c, err, sizeof(err)),
	    -ENOENT);

	put("a1", "vet1@clinic1.test\npassword-1\nc1\n", 0600);
	assert_true(vault_has("a1"));
	assert_int_equal(vault_get("a1", 1, "sync job", &c, err, sizeof(err)),
	    0);
	assert_string_equal(c.username, "vet1@clinic1.test");
	assert_string_equal(c.password, "password-1");
	assert_string_equal(c.company_id, "c1");
	vault_creds_release(&c);

	put("a2", "vet2@clinic2.test\npassword-2\n", 0600);
	assert_int_equal(vault_get("a2", 2, "validation", &c, err,
	    sizeof(err)), 0);
	assert_null(c.company_id);
	vault_creds_release(&c);

	/* One line only: no password. */
	put("a3", "vet3@clinic3.test\n", 0600);
	assert_int_equal(vault_get("a3", 3, "sync job", &c, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "idexx-a3"));
	assert_null(strstr(err, "vet3"));

	/* Readable by others: refused, and the message names the file. */
	put("a4", "vet4@clinic4.test\npassword-4\n", 0644);
	assert_int_equal(vault_get("a4", 4, "sync job", &c, err, sizeof(err)),
	    -EPERM);
	assert_null(strstr(err, "password-4"));
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	return setenv("CREDENTIALS_DIRECTORY", dir, 1);
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
