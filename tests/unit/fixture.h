/*
 * Test helpers shared by the extract tests: read a fixture under
 * $top_srcdir/tests/fixtures (or deploy/) into a NUL-terminated heap
 * buffer.  Failing to read one fails the test.
 */
#ifndef VS_TESTS_FIXTURE_H
#define VS_TESTS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

static char *
fixture_read(const char *rel, size_t *ret_len)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	size_t cap = 4096, len = 0, n;
	char *data;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top != NULL ? top : ".", rel);
	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		abort();
	}
	data = malloc(cap + 1);
	while (data != NULL && (n = fread(data + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap)
			data = realloc(data, (cap *= 2) + 1);
	}
	fclose(f);
	if (data == NULL)
		abort();
	data[len] = '\0';
	if (ret_len != NULL)
		*ret_len = len;
	return data;
}

#endif
