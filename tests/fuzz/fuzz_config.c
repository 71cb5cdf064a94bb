/*
 * libFuzzer target: vetsyncd's configuration parser on arbitrary text.  The
 * input is copied and NUL-terminated (the parser takes a C string); every
 * configuration that loads is dumped and freed, so the dump's formatting of
 * odd values is exercised too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONFIG_ERR_MAX];
	struct config *cfg = NULL;
	FILE *null;
	char *text;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (config_load_string("fuzz.conf", text, &cfg, err) == 0) {
		if ((null = fopen("/dev/null", "w")) != NULL) {
			config_dump(cfg, null);
			fclose(null);
		}
		config_free(cfg);
	}
	free(text);
	return 0;
}
