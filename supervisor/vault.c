/*
 * Credentials in memory, and the file source of clinics without a database
 * (vault.h).
 * The file is read through secrets.c, which refuses files readable by
 * group or others.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"

#include "supervisor/audit.h"
#include "supervisor/secrets.h"
#include "supervisor/vault.h"

bool
vault_has(const char *clinic)
{
	char name[96];

	snprintf(name, sizeof(name), "idexx-%s", clinic);
	return secret_exists(name);
}

int
vault_get(const char *clinic, uint64_t job, const char *purpose,
    struct vault_creds *ret, char *err, size_t errsz)
{
	struct vault_creds c;
	char name[96];
	char *p, *nl;
	json_t *f;
	int r;

	memset(&c, 0, sizeof(c));
	buf_init(&c.raw, 0);
	snprintf(name, sizeof(name), "idexx-%s", clinic);
	f = json_object();
	json_object_set_new(f, "purpose", json_string(purpose));
	json_object_set_new(f, "source", json_string("credentials_directory"));
	r = secret_read(name, &c.raw, err, errsz);
	json_object_set_new(f, "ok", json_boolean(r == 0));
	audit_record("credential_access", clinic, job, f);
	if (r < 0)
		return r;

	/* username \n password [\n company id] */
	p = c.raw.data;
	c.username = p;
	if ((nl = strchr(p, '\n')) == NULL)
		goto bad;
	*nl = '\0';
	c.password = p = nl + 1;
	if ((nl = strchr(p, '\n')) != NULL) {
		*nl = '\0';
		p = nl + 1;
		if ((nl = strchr(p, '\n')) != NULL)
			*nl = '\0';
		if (*p != '\0')
			c.company_id = p;
	}
	if (*c.username == '\0' || *c.password == '\0')
		goto bad;
	*ret = c;
	return 0;
bad:
	snprintf(err, errsz, "credentials '%s': expected a username line and "
	    "a password line", name);
	buf_release_secret(&c.raw);
	return -EINVAL;
}

int
vault_creds_set(struct vault_creds *c, const char *username,
    const char *password, const char *company_id)
{
	size_t ul, pl, cl;

	if (company_id == NULL)
		company_id = "";
	ul = strlen(username);
	pl = strlen(password);
	cl = strlen(company_id);
	if (ul == 0 || pl == 0 || strpbrk(username, "\r\n") != NULL ||
	    strpbrk(password, "\r\n") != NULL ||
	    strpbrk(company_id, "\r\n") != NULL)
		return -EINVAL;
	/*
	 * Sized once: growing would leave copies of the password behind in
	 * memory given back by realloc.
	 */
	buf_init(&c->raw, 0);
	c->raw.cap = ul + pl + cl + 4;
	if ((c->raw.data = malloc(c->raw.cap)) == NULL)
		return -ENOMEM;
	memcpy(c->raw.data, username, ul + 1);
	memcpy(c->raw.data + ul + 1, password, pl + 1);
	memcpy(c->raw.data + ul + 1 + pl + 1, company_id, cl + 1);
	c->raw.len = ul + pl + cl + 3;
	c->raw.data[c->raw.len] = '\0';
	c->username = c->raw.data;
	c->password = c->raw.data + ul + 1;
	c->company_id = cl > 0 ? c->raw.data + ul + 1 + pl + 1 : NULL;
	return 0;
}

void
vault_creds_release(struct vault_creds *c)
{
	buf_release_secret(&c->raw);
	c->username = c->password = c->company_id = NULL;
}
