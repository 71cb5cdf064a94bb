/*
 * libFuzzer target for worker/extract*.c and worker/redact.c: any bytes
 * as a response, through every extractor of both shipped profiles, the
 * fingerprints and the snapshot redaction.  Nothing may crash, leak or
 * read past the input; what an extractor returns is released.  The
 * profiles are read once from $top_srcdir (default ".").
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

#include "worker/extract.h"
#include "worker/profile.h"
#include "worker/redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct profile *neo, *prd;

static struct profile *
load(const char *rel)
{
	const char *top = getenv("top_srcdir");
	static char text[65536];
	struct profile *p = NULL;
	char path[4096], err[256];
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top != NULL ? top : ".", rel);
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "fuzz_extract: cannot open %s\n", path);
		abort();
	}
	len = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (profile_parse(text, len, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_extract: %s\n", err);
		abort();
	}
	return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const secrets[] = { "hunter2", "vet@example.org",
	    NULL };
	const char *body = (const char *)data;
	struct extract_error err;
	struct idexx_appt *appts;
	struct idexx_consult k;
	struct idexx_row *rows;
	struct login_form form;
	struct profile *p;
	struct buf snap;
	char hex[65], sk[128], *next;
	size_t n, i;
	bool cut;

	if (neo == NULL) {
		neo = load("deploy/neo-profile.conf");
		prd = load("deploy/prd-html-profile.conf");
	}
	if (extract_calendar(neo, body, size, &appts, &n, &err) == 0) {
		for (i = 0; i < n; i++)
			idexx_appt_release(&appts[i]);
		free(appts);
	}
	if (extract_page_data(neo, body, size, &k, &err) == 0)
		idexx_consult_release(&k);
	if (extract_consult_list(prd, body, size, &rows, &n, &next,
	    &err) == 0) {
		for (i = 0; i < n; i++)
			idexx_row_release(&rows[i]);
		free(rows);
		free(next);
	}
	if (extract_consult_detail(prd, body, size, &k, &err) == 0)
		idexx_consult_release(&k);
	p = size > 0 && (data[0] & 1) ? prd : neo;
	if (extract_login_form(p, body, size, &form, &err) == 0)
		login_form_release(&form);
	(void)extract_login_failed(p, body, size);
	(void)extract_session_expired(p, body, size);
	(void)extract_fingerprint(body, size, false, hex, sk, sizeof(sk));
	(void)extract_fingerprint(body, size, true, hex, sk, sizeof(sk));
	buf_init(&snap, 0);
	if (redact_snapshot(body, size, 1024, secrets, &snap, &cut) == 0 &&
	    snap.len > 1024)
		abort();
	buf_release(&snap);
	/* Profiles are text too. */
	if (profile_parse(body, size, &p, err.what, sizeof(err.what)) == 0)
		profile_free(p);
	return 0;
}
