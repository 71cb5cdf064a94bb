/*
 * libFuzzer target for proto/frame.c: any bytes a worker could send.
 * frame_decode() must refuse or accept without crashing, leaking or reading
 * past the input; what it accepts must re-encode to exactly the same bytes
 * (decoding is canonical), since both sides trust that equivalence.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Vetsync__Envelope *env = NULL;
	char err[FRAME_ERR_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;

	if (frame_decode_err(data, size, &env, err, sizeof(err)) != 0) {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return 0;
	}
	(void)frame_kind_name(env->msg_case);
	if (frame_encode(env, &buf, &len) != 0)
		abort();
	if (len != size)
		abort();
	frame_free(env);
	free(buf);
	return 0;
}
