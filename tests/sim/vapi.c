/*
 * VAPI's create-call (CONTRACTS §4): POST /call with a bearer key and a
 * CreateCallDTO, validated as the API does (unknown top-level properties
 * refused, an assistant and a phone number required, customer.number
 * 3-40 characters and E.164 unless numberE164CheckEnabled is false, names
 * at most 40 characters), answered 201 with a queued outboundPhoneCall.
 * Errors come in VAPI's shape: {"message":[...],"error":...,"statusCode"}.
 *
 * Every accepted call is kept for GET /__sim/vapi, so tests can count the
 * dials per consultation; knobs fail the next N calls with 429 or 5xx, a
 * fraction with 5xx, or slow the answers.
 */
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "tests/sim/services.h"
#include "tests/sim/sim.h"

#define VAPI_CALLS_MAX	1000000
#define NAME_MAX_LEN	40
#define ORG_ID		"5f0c8d4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f"

struct vknobs {
	uint64_t	fail_next;
	uint64_t	fail_code;
	uint64_t	rate_5xx;	/* millionths */
	uint64_t	slow_ms;
};

static struct {
	const char	*key;
	struct vknobs	 k;
	json_t		*calls;		/* accepted, in order */
	uint64_t	 requests;
	uint64_t	 rejected;	/* 400 */
	uint64_t	 unauthorized;
	uint64_t	 failed;	/* 429 and 5xx from the knobs */
	struct vknobs	 staged;
	bool		 have_stage;
	bool		 reset;
} v;

/* The top-level properties CreateCallDTO has. */
static const char *const known[] = {
	"assistantId", "assistant", "assistantOverrides", "squadId", "squad",
	"workflowId", "workflow", "workflowOverrides", "phoneNumberId",
	"phoneNumber", "customerId", "customer", "customers", "name",
	"schedulePlan", "transport",
};

static void
answer(struct evhttp_request *req, int code, json_t *j)
{
	services_reply_json(req, code, j, v.k.slow_ms);
}

static void
refuse(struct evhttp_request *req, int code, const char *error,
    const char *message)
{
	answer(req, code, json_pack("{s:[s],s:s,s:i}", "message", message,
	    "error", error, "statusCode", code));
}

static bool
e164(const char *s)
{
	size_t i, n = strlen(s);

	if (n < 3 || n > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	for (i = 2; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool
short_string(json_t *j)
{
	return json_is_string(j) && json_string_length(j) <= NAME_MAX_LEN;
}

/* NULL when the DTO is acceptable, else the message VAPI would give. */
static const char *
validate(json_t *dto)
{
	json_t *c, *num, *ov, *vv, *chk;
	const char *key;
	json_t *val;
	size_t i;
	bool ok;

	if (!json_is_object(dto))
		return "body must be a JSON object";
	json_object_foreach(dto, key, val) {
		ok = false;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok)
			return strcmp(key, "metadata") == 0 ?
			    "property metadata should not exist" :
			    "an unknown property should not exist";
	}
	if (!json_is_string(json_object_get(dto, "assistantId")) &&
	    !json_is_object(json_object_get(dto, "assistant")) &&
	    !json_is_string(json_object_get(dto, "squadId")) &&
	    !json_is_string(json_object_get(dto, "workflowId")))
		return "assistantId or assistant or squadId or workflowId "
		    "must be provided";
	if (json_object_get(dto, "assistantId") != NULL &&
	    (!json_is_string(json_object_get(dto, "assistantId")) ||
	    json_string_length(json_object_get(dto, "assistantId")) == 0))
		return "assistantId must be a string";
	if (!json_is_string(json_object_get(dto, "phoneNumberId")) &&
	    !json_is_object(json_object_get(dto, "phoneNumber")))
		return "phoneNumberId or phoneNumber must be provided";
	if (json_object_get(dto, "name") != NULL &&
	    !short_string(json_object_get(dto, "name")))
		return "name must be shorter than or equal to 40 characters";
	c = json_object_get(dto, "customer");
	if (c == NULL && json_object_get(dto, "customerId") == NULL)
		return "customer or customerId must be provided";
	if (c != NULL) {
		if (!json_is_object(c))
			return "customer must be an object";
		num = json_object_get(c, "number");
		if (!json_is_string(num) || json_string_length(num) < 3 ||
		    json_string_length(num) > 40)
			return "customer.number must be longer than or equal "
			    "to 3 and shorter than or equal to 40 characters";
		chk = json_object_get(c, "numberE164CheckEnabled");
		if (chk != NULL && !json_is_boolean(chk))
			return "customer.numberE164CheckEnabled must be a "
			    "boolean value";
		if (!json_is_false(chk) && !e164(json_string_value(num)))
			return "customer.number must be a valid phone number "
			    "in the E.164 format";
		if (json_object_get(c, "name") != NULL &&
		    !short_string(json_object_get(c, "name")))
			return "customer.name must be shorter than or equal to "
			    "40 characters";
	}
	ov = json_object_get(dto, "assistantOverrides");
	if (ov != NULL) {
		if (!json_is_object(ov))
			return "assistantOverrides must be an object";
		vv = json_object_get(ov, "variableValues");
		if (vv != NULL && !json_is_object(vv))
			return "assistantOverrides.variableValues must be an "
			    "object";
	}
	return NULL;
}

static void
uuid4(char out[37])
{
	unsigned char r[16];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		fatal("getrandom");
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
	    r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

static bool
authorized(struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *a = evhttp_find_header(in, "Authorization");

	return a != NULL && strncmp(a, "Bearer ", 7) == 0 &&
	    strlen(a + 7) == strlen(v.key) &&
	    CRYPTO_memcmp(a + 7, v.key, strlen(v.key)) == 0;
}

void
vapi_call(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	json_error_t jerr;
	json_t *dto = NULL, *call;
	const char *why;
	char id[37], at[CLOCK_RFC3339_LEN];
	int code = 0;

	v.requests++;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		refuse(req, 404, "Not Found", "Cannot GET /call");
		return;
	}
	if (!authorized(req)) {
		v.unauthorized++;
		refuse(req, 401, "Unauthorized", "Invalid Key. Hot tip, you "
		    "may be using the private key instead of the public key, "
		    "or vice versa.");
		return;
	}
	if (v.k.fail_next > 0) {
		v.k.fail_next--;
		code = (int)v.k.fail_code;
	} else if (v.k.rate_5xx > 0 &&
	    data_next(&sim.prng) % 1000000 < v.k.rate_5xx)
		code = 500;
	if (code != 0) {
		v.failed++;
		refuse(req, code, code == 429 ? "Too Many Requests" :
		    "Internal Server Error", code == 429 ? "rate limited" :
		    "system failure");
		return;
	}
	dto = json_loadb((const char *)evbuffer_pullup(in, -1),
	    evbuffer_get_length(in), JSON_REJECT_DUPLICATES, &jerr);
	if ((why = validate(dto)) != NULL) {
		v.rejected++;
		refuse(req, 400, "Bad Request", dto == NULL ?
		    "body is not valid JSON" : why);
		json_decref(dto);
		return;
	}
	if (json_array_size(v.calls) >= VAPI_CALLS_MAX) {
		refuse(req, 500, "Internal Server Error", "simulator full");
		json_decref(dto);
		return;
	}
	uuid4(id);
	clock_format_rfc3339(clock_wall_ms(), at, sizeof(at));
	call = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", id, "orgId",
	    ORG_ID, "createdAt", at, "updatedAt", at, "type",
	    "outboundPhoneCall", "status", "queued");
	json_object_update_missing(call, dto);
	json_decref(dto);
	json_array_append(v.calls, call);
	log_info("vapi: call %s queued", id);
	answer(req, 201, call);
}

void
vapi_inspect(struct evbuffer *b)
{
	services_dump(b, json_pack("{s:{s:I,s:I,s:I,s:I,s:I},s:O}", "stats",
	    "requests", (json_int_t)v.requests,
	    "calls", (json_int_t)json_array_size(v.calls),
	    "rejected", (json_int_t)v.rejected,
	    "unauthorized", (json_int_t)v.unauthorized,
	    "failed", (json_int_t)v.failed,
	    "calls", v.calls));
}

int
vapi_control_stage(const char *key, json_t *j)
{
	struct vknobs *k = &v.staged;
	uint64_t n;

	if (!v.have_stage) {
		v.staged = v.k;
		v.have_stage = true;
	}
	if (strcmp(key, "vapi_fail_next") == 0)
		return services_json_u64(j, 1000000, &k->fail_next);
	if (strcmp(key, "vapi_fail_code") == 0) {
		if (services_json_u64(j, 599, &n) != 0 || (n != 429 && n < 500))
			return -EINVAL;
		k->fail_code = n;
		return 0;
	}
	if (strcmp(key, "vapi_rate_5xx") == 0) {
		return services_json_rate(j, &k->rate_5xx);
	}
	if (strcmp(key, "vapi_slow_ms") == 0)
		return services_json_u64(j, 600000, &k->slow_ms);
	if (strcmp(key, "vapi_reset") == 0) {
		v.reset = json_is_true(j);
		return json_is_boolean(j) ? 0 : -EINVAL;
	}
	return -ENOENT;
}

void
vapi_control_end(bool apply)
{
	if (apply && v.have_stage)
		v.k = v.staged;
	if (apply && v.reset) {
		json_array_clear(v.calls);
		v.requests = v.rejected = v.unauthorized = v.failed = 0;
	}
	v.have_stage = false;
	v.reset = false;
}

void
vapi_init(const char *key)
{
	v.key = key;
	v.k.fail_code = 500;
	if ((v.calls = json_array()) == NULL)
		fatalx("out of memory");
}

void
vapi_free(void)
{
	json_decref(v.calls);
	v.calls = NULL;
}
