/*
 * Broken bodies for the simulator's --body knob: the answer cut in half
 * (Content-Length stays honest, evhttp computes it), random bytes of the
 * same length, a valid-looking 20 MB document wrapping the real one, or
 * invalid UTF-8 put at the start of every JSON string value or HTML text
 * node.  Random bytes come from the failure PRNG, so runs repeat.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/buf.h"
#include "common/xmalloc.h"

#include "tests/sim/sim.h"

#define SIM_HUGE_BYTES		(20 * 1024 * 1024)
#define SIM_PAD_CHUNK		(64 * 1024)

/* One chunk of padding, referenced many times by each huge body. */
static char *pad;

static void
mutate_truncated(struct evbuffer *body)
{
	struct evbuffer *half = evbuffer_new();

	evbuffer_remove_buffer(body, half, evbuffer_get_length(body) / 2);
	evbuffer_drain(body, evbuffer_get_length(body));
	evbuffer_add_buffer(body, half);
	evbuffer_free(half);
}

static void
mutate_garbage(struct evbuffer *body)
{
	size_t n = evbuffer_get_length(body), i;
	uint64_t r = 0;
	unsigned char c;

	if (n < 64)
		n = 64;
	evbuffer_drain(body, evbuffer_get_length(body));
	for (i = 0; i < n; i++) {
		if (i % 8 == 0)
			r = data_next(&sim.prng);
		c = (unsigned char)(r >> (8 * (i % 8)));
		evbuffer_add(body, &c, 1);
	}
}

static void
mutate_huge(struct evbuffer *body, bool json)
{
	struct evbuffer *orig = evbuffer_new();
	size_t n;

	evbuffer_add_buffer(orig, body);
	if (pad == NULL) {
		pad = xmalloc(SIM_PAD_CHUNK);
		memset(pad, 'x', SIM_PAD_CHUNK);
	}
	evbuffer_add_printf(body, json ? "{\"padding\":\"" :
	    "<!DOCTYPE html><html><body><div class=\"padding\">");
	for (n = 0; n < SIM_HUGE_BYTES / SIM_PAD_CHUNK; n++)
		evbuffer_add_reference(body, pad, SIM_PAD_CHUNK, NULL, NULL);
	evbuffer_add_printf(body, json ? "\",\"data\":" : "</div>");
	evbuffer_add_buffer(body, orig);
	if (json)
		evbuffer_add_printf(body, "}");
	evbuffer_free(orig);
}

/* Put invalid UTF-8 at the start of every JSON string value or HTML text. */
static void
mutate_non_utf8(struct evbuffer *body, bool json)
{
	static const char bad[] = "\xc3\x28\xff";
	size_t n = evbuffer_get_length(body), i;
	char *s, prev = 0;
	bool in = false;
	struct buf out;

	buf_init(&out, 0);
	s = (char *)evbuffer_pullup(body, -1);
	for (i = 0; i < n; i++) {
		buf_append(&out, &s[i], 1);
		if (json) {
			if (in && s[i] == '\\' && i + 1 < n) {
				buf_append(&out, &s[++i], 1);
				continue;
			}
			if (s[i] == '"') {
				if (!in && prev == ':')
					buf_append(&out, bad, 3);
				in = !in;
			}
			if (!in && s[i] != ' ')
				prev = s[i];
		} else if (s[i] == '>' && i + 1 < n && s[i + 1] != '<' &&
		    s[i + 1] != '\n')
			buf_append(&out, bad, 3);
	}
	evbuffer_drain(body, n);
	evbuffer_add(body, out.data, out.len);
	buf_release(&out);
}

void
mutate_body(struct evbuffer *body, bool json)
{
	switch (sim.knobs.body) {
	case SIM_BODY_TRUNCATED:
		mutate_truncated(body);
		break;
	case SIM_BODY_GARBAGE:
		mutate_garbage(body);
		break;
	case SIM_BODY_HUGE:
		mutate_huge(body, json);
		break;
	case SIM_BODY_NON_UTF8:
		mutate_non_utf8(body, json);
		break;
	default:
		break;
	}
}

void
mutate_free(void)
{
	free(pad);
	pad = NULL;
}
