/*
 * Unit tests for proto/frame.c: every message kind through frame_encode()/
 * frame_decode() and through a real SOCK_SEQPACKET socketpair, every class
 * of bad frame with its own error, and the limit tables against the schema.
 *
 * Bad frames are made by packing with protobuf-c directly, bypassing
 * frame_encode(), which must refuse the same envelope with the same error.
 * With FRAME_SEED_DIR set, the valid sample frames are also written there:
 * that is how tests/fuzz/corpus/frame/ was made.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <dirent.h>
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

#include "proto/frame.h"
#include "proto/frame_limits.h"
#include "proto/vetsync.pb-c.h"

#define NKINDS	12

/* Storage for one sample of every message kind. */
struct samples {
	uint8_t bpf[3 * FRAME_BPF_INSN_SIZE];
	char *ro_paths[2];
	uint32_t ports[1];
	Vetsync__Setup setup;
	Vetsync__SandboxReport report;
	Vetsync__Hello hello;
	Vetsync__PinnedAddress pinned;
	Vetsync__Credentials creds;
	Vetsync__JobLimits limits;
	Vetsync__Job job;
	Vetsync__Cancel cancel;
	Vetsync__Shutdown shutdown;
	Vetsync__Progress progress;
	Vetsync__Patient patient;
	Vetsync__Client client;
	Vetsync__ConsultationLine line[2];
	Vetsync__ConsultationLine *lines[FRAME_LINES_MAX + 1];
	Vetsync__Consultation consultation;
	Vetsync__Appointment appointment;
	Vetsync__Snapshot snapshot;
	Vetsync__UiFingerprint fingerprint;
	Vetsync__Event event;
	Vetsync__JobResult result;
	char big[80000];
};

static void
sample_setup(struct samples *s, Vetsync__Envelope *env)
{
	memset(s->bpf, 0x06, sizeof(s->bpf));	/* BPF_RET */
	s->ro_paths[0] = "/etc/ssl/certs/ca-certificates.crt";
	s->ro_paths[1] = "/usr/share/zoneinfo";
	s->ports[0] = 443;
	vetsync__setup__init(&s->setup);
	s->setup.has_protocol_version = 1;
	s->setup.protocol_version = FRAME_PROTOCOL_VERSION;
	s->setup.has_seccomp_bpf = 1;
	s->setup.seccomp_bpf.data = s->bpf;
	s->setup.seccomp_bpf.len = sizeof(s->bpf);
	s->setup.n_landlock_ro_paths = 2;
	s->setup.landlock_ro_paths = s->ro_paths;
	s->setup.n_landlock_tcp_ports = 1;
	s->setup.landlock_tcp_ports = s->ports;
	s->setup.has_landlock_min_abi = 1;
	s->setup.landlock_min_abi = 4;
	s->setup.has_require_landlock = 1;
	s->setup.require_landlock = 1;
	env->setup = &s->setup;
}

static void
sample_hello(struct samples *s, Vetsync__Envelope *env)
{
	vetsync__sandbox_report__init(&s->report);
	s->report.has_no_new_privs = s->report.no_new_privs = 1;
	s->report.has_seccomp = s->report.seccomp = 1;
	s->report.has_landlock_abi = 1;
	s->report.landlock_abi = 4;
	s->report.has_landlock_fs = s->report.landlock_fs = 1;
	s->report.has_landlock_net = s->report.landlock_net = 1;
	s->report.has_nondumpable = s->report.nondumpable = 1;
	vetsync__hello__init(&s->hello);
	s->hello.has_protocol_version = 1;
	s->hello.protocol_version = FRAME_PROTOCOL_VERSION;
	s->hello.has_pid = 1;
	s->hello.pid = 4242;
	s->hello.sandbox = &s->report;
	env->hello = &s->hello;
}

static void
sample_job(struct samples *s, Vetsync__Envelope *env)
{
	vetsync__pinned_address__init(&s->pinned);
	s->pinned.host = "us.idexxneo.com";
	s->pinned.has_port = 1;
	s->pinned.port = 443;
	s->pinned.ip = "2001:db8::17";
	vetsync__credentials__init(&s->creds);
	s->creds.username = "frontdesk@clinic.example";
	s->creds.password = "correct horse battery staple";
	s->creds.company_id = "7781";
	vetsync__job_limits__init(&s->limits);
	s->limits.has_max_parallel = 1;
	s->limits.max_parallel = 8;
	s->limits.has_request_rate = 1;
	s->limits.request_rate = 10;
	s->limits.has_response_max = 1;
	s->limits.response_max = 8 << 20;
	s->limits.has_request_timeout_ms = 1;
	s->limits.request_timeout_ms = 30000;
	s->limits.has_job_timeout_ms = 1;
	s->limits.job_timeout_ms = 600000;
	vetsync__job__init(&s->job);
	s->job.has_job_id = 1;
	s->job.job_id = 1ULL << 40;
	s->job.has_kind = 1;
	s->job.kind = VETSYNC__JOB_KIND__RECONCILE_NOTES;
	s->job.clinic_id = "clinic-17";
	s->job.base_url = "https://us.idexxneo.com";
	s->job.pinned = &s->pinned;
	s->job.site_profile = "[profile neo]\nlogin = /login\n";
	s->job.time_zone = "America/Denver";
	s->job.window_start = "2026-03-07 08:00:00";
	s->job.window_end = "2026-03-09 08:00:00";
	s->job.credentials = &s->creds;
	s->job.limits = &s->limits;
	s->job.ca_bundle = "/etc/ssl/certs/ca-certificates.crt";
	env->job = &s->job;
}

static void
sample_cancel(struct samples *s, Vetsync__Envelope *env)
{
	vetsync__cancel__init(&s->cancel);
	s->cancel.has_job_id = 1;
	s->cancel.job_id = 9;
	env->cancel = &s->cancel;
}

static void
sample_shutdown(struct samples *s, Vetsync__Envelope *env)
{
	vetsync__shutdown__init(&s->shutdown);
	env->shutdown = &s->shutdown;
}

static void
sample_progress(struct samples *s, Vetsync__Envelope *env)
{
	vetsync__progress__init(&s->progress);
	s->progress.has_job_id = 1;
	s->progress.job_id = 9;
	s->progress.has_stage = 1;
	s->progress.stage = VETSYNC__STAGE__FETCHING_CONSULTATIONS;
	s->progress.has_done = 1;
	s->progress.done = 12;
	s->progress.has_total = 1;
	s->progress.total = 50;
	env->progress = &s->progress;
}

static void
sample_people(struct samples *s)
{
	vetsync__patient__init(&s->patient);
	s->patient.id = "p-555";
	s->patient.name = "Zoë";	/* UTF-8 passes */
	s->patient.species = "Canine";
	s->patient.breed = "Border Collie";
	vetsync__client__init(&s->client);
	s->client.id = "c-91";
	s->client.first_name = "Ana";
	s->client.last_name = "Muñoz";
	s->client.phone = "+1 303 555 0100";
	s->client.email = "ana@example.org";
}

static void
sample_consultation(struct samples *s, Vetsync__Envelope *env)
{
	size_t i;

	sample_people(s);
	for (i = 0; i < 2; i++) {
		vetsync__consultation_line__init(&s->line[i]);
		s->line[i].name = i == 0 ? "Rabies vaccine" : "Carprofen 75mg";
		s->line[i].quantity = i == 0 ? "1" : "14.5";
		s->line[i].has_declined = 1;
		s->line[i].declined = i == 1;
	}
	for (i = 0; i < FRAME_LINES_MAX + 1; i++)
		s->lines[i] = &s->line[i % 2];
	vetsync__consultation__init(&s->consultation);
	s->consultation.has_job_id = 1;
	s->consultation.job_id = 9;
	s->consultation.consultation_id = "88231";
	s->consultation.appointment_id = "4410";
	s->consultation.date = "2026-03-08 10:30:00";
	s->consultation.status = "Completed";
	s->consultation.reason = "Annual check";
	s->consultation.notes =
	    "S: bright, alert.\nO: T 38.6 °C.\nA: healthy.";
	s->consultation.discharge_summary = "Recheck in 12 months.";
	s->consultation.provider = "Dr. Okafor";
	s->consultation.patient = &s->patient;
	s->consultation.client = &s->client;
	s->consultation.n_lines = 2;
	s->consultation.lines = s->lines;
	env->consultation = &s->consultation;
}

static void
sample_appointment(struct samples *s, Vetsync__Envelope *env)
{
	sample_people(s);
	vetsync__appointment__init(&s->appointment);
	s->appointment.has_job_id = 1;
	s->appointment.job_id = 10;
	s->appointment.appointment_id = "4410";
	s->appointment.start = "2026-03-10 09:00:00";
	s->appointment.end = "2026-03-10 09:30:00";
	s->appointment.start_utc = "2026-03-10T16:00:00Z";
	s->appointment.patient = &s->patient;
	s->appointment.client = &s->client;
	s->appointment.provider = "Dr. Okafor";
	s->appointment.resource_id = "room-2";
	s->appointment.type_description = "Vaccination";
	s->appointment.reason = "Booster";
	s->appointment.status = "Booked";
	s->appointment.has_cancelled = 1;
	s->appointment.cancelled = 0;
	env->appointment = &s->appointment;
}

static void
sample_snapshot(struct samples *s, Vetsync__Envelope *env)
{
	static uint8_t body[] = "<html><body><p class=\"error-message\">"
	    "[REDACTED]</p></body></html>";

	vetsync__snapshot__init(&s->snapshot);
	s->snapshot.has_job_id = 1;
	s->snapshot.job_id = 9;
	s->snapshot.reason = "consultation row locator matched nothing";
	s->snapshot.url_path = "/consultations?startDate=2026-03-07";
	s->snapshot.has_http_status = 1;
	s->snapshot.http_status = 200;
	s->snapshot.content_type = "text/html; charset=utf-8";
	s->snapshot.has_body = 1;
	s->snapshot.body.data = body;
	s->snapshot.body.len = sizeof(body) - 1;
	s->snapshot.has_truncated = 1;
	env->snapshot = &s->snapshot;
}

static void
sample_fingerprint(struct samples *s, Vetsync__Envelope *env)
{
	vetsync__ui_fingerprint__init(&s->fingerprint);
	s->fingerprint.has_job_id = 1;
	s->fingerprint.job_id = 9;
	s->fingerprint.response_kind = "calendar";
	s->fingerprint.sha256 =
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	s->fingerprint.summary = "[{id,start,end,patient_id,consultation_id}]";
	env->ui_fingerprint = &s->fingerprint;
}

static void
sample_event(struct samples *s, Vetsync__Envelope *env)
{
	vetsync__event__init(&s->event);
	s->event.has_job_id = 1;
	s->event.job_id = 9;
	s->event.has_kind = 1;
	s->event.kind = VETSYNC__EVENT_KIND__SESSION_RENEWED;
	s->event.detail = "401 on /consultations/88231/page-data";
	env->event = &s->event;
}

static void
sample_result(struct samples *s, Vetsync__Envelope *env)
{
	vetsync__job_result__init(&s->result);
	s->result.has_job_id = 1;
	s->result.job_id = 9;
	s->result.has_status = 1;
	s->result.status = VETSYNC__JOB_STATUS__UI_CHANGED;
	s->result.error_class = "locator";
	s->result.error_message = "no consultation rows";
	s->result.has_consultations = 1;
	s->result.consultations = 50;
	s->result.has_notes_found = 1;
	s->result.notes_found = 31;
	s->result.has_requests = 1;
	s->result.requests = 53;
	s->result.has_bytes_received = 1;
	s->result.bytes_received = 1 << 20;
	s->result.has_login_ms = 1;
	s->result.login_ms = 180;
	s->result.has_total_ms = 1;
	s->result.total_ms = 1900;
	env->job_result = &s->result;
}

static const struct {
	int msg_case;
	const char *name;
	void (*build)(struct samples *, Vetsync__Envelope *);
} kinds[NKINDS] = {
	{ VETSYNC__ENVELOPE__MSG_SETUP, "setup", sample_setup },
	{ VETSYNC__ENVELOPE__MSG_HELLO, "hello", sample_hello },
	{ VETSYNC__ENVELOPE__MSG_JOB, "job", sample_job },
	{ VETSYNC__ENVELOPE__MSG_CANCEL, "cancel", sample_cancel },
	{ VETSYNC__ENVELOPE__MSG_SHUTDOWN, "shutdown", sample_shutdown },
	{ VETSYNC__ENVELOPE__MSG_PROGRESS, "progress", sample_progress },
	{ VETSYNC__ENVELOPE__MSG_CONSULTATION, "consultation",
	    sample_consultation },
	{ VETSYNC__ENVELOPE__MSG_APPOINTMENT, "appointment",
	    sample_appointment },
	{ VETSYNC__ENVELOPE__MSG_SNAPSHOT, "snapshot", sample_snapshot },
	{ VETSYNC__ENVELOPE__MSG_UI_FINGERPRINT, "ui_fingerprint",
	    sample_fingerprint },
	{ VETSYNC__ENVELOPE__MSG_EVENT, "event", sample_event },
	{ VETSYNC__ENVELOPE__MSG_JOB_RESULT, "job_result", sample_result },
};

static void
sample(struct samples *s, size_t k, Vetsync__Envelope *env)
{
	vetsync__envelope__init(env);
	env->msg_case = kinds[k].msg_case;
	kinds[k].build(s, env);
}

/* Pack without validation, as a hostile or broken peer would. */
static uint8_t *
raw_pack(const Vetsync__Envelope *env, size_t *ret_len)
{
	uint8_t *buf;

	*ret_len = vetsync__envelope__get_packed_size(env);
	buf = malloc(*ret_len + 1);
	assert_non_null(buf);
	assert_int_equal(vetsync__envelope__pack(env, buf), *ret_len);
	return buf;
}

static void
assert_same_frame(const Vetsync__Envelope *a, const uint8_t *buf, size_t len)
{
	uint8_t *again;
	size_t again_len;

	assert_int_equal(frame_encode(a, &again, &again_len), 0);
	assert_int_equal(again_len, len);
	assert_memory_equal(again, buf, len);
	free(again);
}

static void
write_seed(const char *name, const uint8_t *buf, size_t len)
{
	const char *dir = getenv("FRAME_SEED_DIR");
	char path[1024];
	FILE *f;

	if (dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
test_roundtrip(void **state)
{
	struct samples *s = calloc(1, sizeof(*s));
	Vetsync__Envelope env, *out;
	uint8_t *buf;
	size_t k, len;

	for (k = 0; k < NKINDS; k++) {
		sample(s, k, &env);
		assert_int_equal(frame_encode(&env, &buf, &len), 0);
		assert_true(len > 0 && len <= FRAME_MAX);
		write_seed(kinds[k].name, buf, len);
		out = NULL;
		assert_int_equal(frame_decode(buf, len, &out), 0);
		assert_int_equal(out->msg_case, kinds[k].msg_case);
		assert_string_equal(frame_kind_name(out->msg_case),
		    kinds[k].name);
		assert_same_frame(out, buf, len);
		frame_free(out);
		free(buf);
	}

	/* Spot checks that fields arrive as sent, not just re-encode. */
	sample(s, 6, &env);
	assert_int_equal(frame_encode(&env, &buf, &len), 0);
	assert_int_equal(frame_decode(buf, len, &out), 0);
	assert_string_equal(out->consultation->notes, s->consultation.notes);
	assert_string_equal(out->consultation->patient->name, "Zoë");
	assert_int_equal(out->consultation->n_lines, 2);
	assert_string_equal(out->consultation->lines[1]->quantity, "14.5");
	assert_true(out->consultation->lines[1]->declined);
	frame_free(out);
	free(buf);
	free(s);
}

static void
socketpair_frames(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
	    sv), 0);
	assert_int_equal(frame_socket_init(sv[0]), 0);
	assert_int_equal(frame_socket_init(sv[1]), 0);
}

/* Send one sample and check that it is read back whole. */
static void
send_and_receive(struct samples *s, size_t k, int from, int to)
{
	Vetsync__Envelope env, *out = NULL;
	char err[FRAME_ERR_MAX];
	uint8_t *buf;
	size_t len;

	sample(s, k, &env);
	assert_int_equal(frame_send(from, &env), 0);
	if (frame_recv(to, &out, err, sizeof(err)) != 0)
		fail_msg("%s: %s", kinds[k].name, err);
	assert_int_equal(frame_encode(&env, &buf, &len), 0);
	assert_same_frame(out, buf, len);
	frame_free(out);
	free(buf);
}

static void
test_socket_roundtrip(void **state)
{
	struct samples *s = calloc(1, sizeof(*s));
	size_t k;
	int sv[2];

	socketpair_frames(sv);
	for (k = 0; k < NKINDS; k++) {
		send_and_receive(s, k, sv[0], sv[1]);
		send_and_receive(s, k, sv[1], sv[0]);
	}
	close(sv[0]);
	close(sv[1]);
	free(s);
}

static void
test_decode_bad_bytes(void **state)
{
	static uint8_t big[FRAME_MAX + 1];
	static const struct {
		const char *name;
		const uint8_t *buf;
		size_t len;
		int ret;
		const char *err;
	} cases[] = {
		{ "empty", (const uint8_t *)"", 0, -EBADMSG, "empty frame" },
		{ "garbage", (const uint8_t *)"\xff\xff\xff\xff\xff\xff", 6,
		    -EBADMSG, "not an envelope" },
		{ "wire type 7", (const uint8_t *)"\x0f\x00", 2, -EBADMSG,
		    "not an envelope" },
		{ "length past end", (const uint8_t *)"\x22\x05\x08\x01", 4,
		    -EBADMSG, "not an envelope" },
		{ "oversized", big, sizeof(big), -EMSGSIZE,
		    "262145 bytes over the 262144 limit" },
		/* Field 99, varint 1: a kind from some later version. */
		{ "unknown kind", (const uint8_t *)"\x98\x06\x01", 3, -ENOMSG,
		    "unknown message kind 99" },
		{ "unknown kind, message", (const uint8_t *)"\x9a\x06\x00", 3,
		    -ENOMSG, "unknown message kind 99" },
		/* Shutdown { field 1: 1 } */
		{ "unknown field", (const uint8_t *)"\x2a\x02\x08\x01", 4,
		    -EPROTO, "shutdown: unknown field 1" },
		/* Shutdown {}, then field 99 in the envelope */
		{ "unknown envelope field",
		    (const uint8_t *)"\x2a\x00\x98\x06\x01", 5, -EPROTO,
		    "envelope: unknown field 99" },
		/* Cancel { job_id: 1 } with job_id as a 2-byte varint */
		{ "overlong varint", (const uint8_t *)"\x22\x03\x08\x81\x00", 5,
		    -EPROTO, "cancel: non-canonical encoding" },
		/* Cancel { job_id: 1 } twice */
		{ "duplicate kind",
		    (const uint8_t *)"\x22\x02\x08\x01\x22\x02\x08\x02", 8,
		    -EPROTO, "non-canonical encoding" },
		/* Cancel { job_id: 1, job_id: 2 } */
		{ "duplicate field",
		    (const uint8_t *)"\x22\x04\x08\x01\x08\x02", 6, -EPROTO,
		    "non-canonical encoding" },
		/* Consultation { job_id: 1, consultation_id: "a\0b" } */
		{ "NUL in a string",
		    (const uint8_t *)"\x3a\x07\x08\x01\x12\x03\x61\x00\x62", 9,
		    -EPROTO, "consultation: non-canonical encoding" },
		/* Cancel {} */
		{ "required id missing", (const uint8_t *)"\x22\x00", 2,
		    -EPROTO, "cancel.job_id: missing" },
	};
	char err[FRAME_ERR_MAX];
	Vetsync__Envelope *out;
	size_t i;
	int r;

	memset(big, 0, sizeof(big));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = NULL;
		err[0] = '\0';
		r = frame_decode_err(cases[i].buf, cases[i].len, &out, err,
		    sizeof(err));
		if (r != cases[i].ret)
			fail_msg("%s: got %d (%s), want %d", cases[i].name, r,
			    err, cases[i].ret);
		if (strstr(err, cases[i].err) == NULL)
			fail_msg("%s: error '%s' lacks '%s'", cases[i].name,
			    err, cases[i].err);
		assert_null(out);
		assert_int_equal(frame_decode(cases[i].buf, cases[i].len, &out),
		    cases[i].ret);
	}
}

static void
test_decode_truncated(void **state)
{
	struct samples *s = calloc(1, sizeof(*s));
	Vetsync__Envelope env, *out;
	uint8_t *buf;
	size_t k, len, cut;

	for (k = 0; k < NKINDS; k++) {
		sample(s, k, &env);
		assert_int_equal(frame_encode(&env, &buf, &len), 0);
		for (cut = 0; cut < len; cut++) {
			out = NULL;
			if (frame_decode(buf, cut, &out) != -EBADMSG)
				fail_msg("%s cut at %zu of %zu: not -EBADMSG",
				    kinds[k].name, cut, len);
			assert_null(out);
		}
		free(buf);
	}
	free(s);
}

/*
 * Breaking one field of a valid sample: what a hostile worker (or a buggy
 * supervisor) could send.  Each case names the sample and the break.
 */
static char *
long_string(struct samples *s, size_t len)
{
	memset(s->big, 'a', len);
	s->big[len] = '\0';
	return s->big;
}

static void
brk_setup_version(struct samples *s)
{
	s->setup.protocol_version = 2;
}

static void
brk_hello_version(struct samples *s)
{
	s->hello.protocol_version = 0;
}

static void
brk_hello_no_version(struct samples *s)
{
	s->hello.has_protocol_version = 0;
}

static void
brk_hello_no_sandbox(struct samples *s)
{
	s->hello.sandbox = NULL;
}

static void
brk_notes_long(struct samples *s)
{
	s->consultation.notes = long_string(s, 70000);
}

static void
brk_patient_utf8(struct samples *s)
{
	s->patient.name = "Zo\xc3\x28";
}

static void
brk_client_overlong_utf8(struct samples *s)
{
	s->client.last_name = "\xc0\xaf";
}

static void
brk_provider_surrogate(struct samples *s)
{
	s->consultation.provider = "\xed\xa0\x80";
}

static void
brk_too_many_lines(struct samples *s)
{
	s->consultation.n_lines = FRAME_LINES_MAX + 1;
}

static void
brk_line_name_empty(struct samples *s)
{
	s->consultation.n_lines = 2;
	s->line[1].name = "";
	s->lines[1] = &s->line[1];
}

static void
brk_consultation_id_empty(struct samples *s)
{
	s->consultation.consultation_id = "";
}

static void
brk_job_kind_zero(struct samples *s)
{
	s->job.kind = 0;
}

static void
brk_job_kind_99(struct samples *s)
{
	s->job.kind = 99;
}

static void
brk_job_no_credentials(struct samples *s)
{
	s->job.credentials = NULL;
}

static void
brk_job_host_injection(struct samples *s)
{
	s->pinned.host = "evil.example:443:10.0.0.1";
}

static void
brk_job_ip(struct samples *s)
{
	s->pinned.ip = "us.idexxneo.com";
}

static void
brk_job_port(struct samples *s)
{
	s->pinned.port = 65536;
}

static void
brk_job_window_form(struct samples *s)
{
	s->job.window_start = "2026-13-07 08:00:00";
}

static void
brk_job_window_order(struct samples *s)
{
	s->job.window_end = s->job.window_start;
}

static void
brk_job_no_window(struct samples *s)
{
	s->job.window_end = NULL;
}

static void
brk_job_profile_long(struct samples *s)
{
	s->job.site_profile = long_string(s, FRAME_PROFILE_MAX + 1);
}

static void
brk_job_parallel(struct samples *s)
{
	s->limits.max_parallel = 0;
}

static void
brk_bpf_partial(struct samples *s)
{
	s->setup.seccomp_bpf.len = 12;
}

static void
brk_bpf_long(struct samples *s)
{
	s->setup.seccomp_bpf.data = (uint8_t *)long_string(s,
	    (FRAME_BPF_INSNS_MAX + 1) * FRAME_BPF_INSN_SIZE);
	s->setup.seccomp_bpf.len = (FRAME_BPF_INSNS_MAX + 1) *
	    FRAME_BPF_INSN_SIZE;
}

static void
brk_bpf_missing(struct samples *s)
{
	s->setup.has_seccomp_bpf = 0;
}

static void
brk_port_zero(struct samples *s)
{
	s->ports[0] = 0;
}

static void
brk_too_many_ports(struct samples *s)
{
	static uint32_t many[FRAME_LANDLOCK_PORTS_MAX + 1];

	s->setup.landlock_tcp_ports = many;
	s->setup.n_landlock_tcp_ports = FRAME_LANDLOCK_PORTS_MAX + 1;
}

static void
brk_cancel_zero(struct samples *s)
{
	s->cancel.job_id = 0;
}

static void
brk_progress_stage(struct samples *s)
{
	s->progress.stage = 7;
}

static void
brk_sha256_upper(struct samples *s)
{
	s->fingerprint.sha256 =
	    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
}

static void
brk_snapshot_status(struct samples *s)
{
	s->snapshot.http_status = 600;
}

static void
brk_snapshot_body(struct samples *s)
{
	s->snapshot.body.data = (uint8_t *)long_string(s,
	    FRAME_SNAPSHOT_MAX + 1);
	s->snapshot.body.len = FRAME_SNAPSHOT_MAX + 1;
}

static void
brk_appointment_utc(struct samples *s)
{
	/* Clinic-local form where UTC is required. */
	s->appointment.start_utc = "2026-03-10 09:00:00";
}

static void
brk_appointment_id(struct samples *s)
{
	s->appointment.appointment_id = NULL;
}

static void
brk_event_kind(struct samples *s)
{
	s->event.kind = 0;
}

static void
brk_result_status(struct samples *s)
{
	s->result.status = 42;
}

static void
brk_result_message(struct samples *s)
{
	s->result.error_message = long_string(s, FRAME_LINE_MAX + 1);
}

static void
test_bad_fields(void **state)
{
	static const struct {
		size_t kind;
		void (*brk)(struct samples *);
		int ret;
		const char *err;
	} cases[] = {
		{ 0, brk_setup_version, -EPROTONOSUPPORT,
		    "setup.protocol_version: version 2, this side speaks 1" },
		{ 1, brk_hello_version, -EPROTONOSUPPORT,
		    "hello.protocol_version: version 0" },
		{ 1, brk_hello_no_version, -EPROTO,
		    "hello.protocol_version: missing" },
		{ 1, brk_hello_no_sandbox, -EPROTO, "hello.sandbox: missing" },
		{ 6, brk_notes_long, -EPROTO,
		    "consultation.notes: 70000 bytes over the 65536 limit" },
		{ 6, brk_patient_utf8, -EPROTO,
		    "consultation.patient.name: invalid UTF-8" },
		{ 6, brk_client_overlong_utf8, -EPROTO,
		    "consultation.client.last_name: invalid UTF-8" },
		{ 6, brk_provider_surrogate, -EPROTO,
		    "consultation.provider: invalid UTF-8" },
		{ 6, brk_too_many_lines, -EPROTO,
		    "consultation.lines: 129 items over the 128 limit" },
		{ 6, brk_line_name_empty, -EPROTO,
		    "consultation.lines[1].name: empty" },
		{ 6, brk_consultation_id_empty, -EPROTO,
		    "consultation.consultation_id: empty" },
		{ 2, brk_job_kind_zero, -EPROTO, "job.kind: unknown value 0" },
		{ 2, brk_job_kind_99, -EPROTO, "job.kind: unknown value 99" },
		{ 2, brk_job_no_credentials, -EPROTO,
		    "job.credentials: missing" },
		{ 2, brk_job_host_injection, -EPROTO,
		    "job.pinned.host: not a host name" },
		{ 2, brk_job_ip, -EPROTO, "job.pinned.ip: not an IP address" },
		{ 2, brk_job_port, -EPROTO,
		    "job.pinned.port: 65536 over the 65535 limit" },
		{ 2, brk_job_window_form, -EPROTO,
		    "job.window_start: not YYYY-MM-DD HH:MM:SS" },
		{ 2, brk_job_window_order, -EPROTO,
		    "job.window_end: not after window_start" },
		{ 2, brk_job_no_window, -EPROTO,
		    "job.window_end: missing, RECONCILE_NOTES needs it" },
		{ 2, brk_job_profile_long, -EPROTO,
		    "job.site_profile: 65537 bytes over the 65536 limit" },
		{ 2, brk_job_parallel, -EPROTO,
		    "job.limits.max_parallel: zero" },
		{ 0, brk_bpf_partial, -EPROTO,
		    "setup.seccomp_bpf: 12 bytes are not whole 8-byte" },
		{ 0, brk_bpf_long, -EPROTO,
		    "setup.seccomp_bpf: 32776 bytes over the 32768 limit" },
		{ 0, brk_bpf_missing, -EPROTO, "setup.seccomp_bpf: missing" },
		{ 0, brk_port_zero, -EPROTO,
		    "setup.landlock_tcp_ports[0]: zero" },
		{ 0, brk_too_many_ports, -EPROTO,
		    "setup.landlock_tcp_ports: 17 items over the 16 limit" },
		{ 3, brk_cancel_zero, -EPROTO, "cancel.job_id: zero" },
		{ 5, brk_progress_stage, -EPROTO,
		    "progress.stage: unknown value 7" },
		{ 9, brk_sha256_upper, -EPROTO,
		    "ui_fingerprint.sha256: not 64 lowercase hex digits" },
		{ 8, brk_snapshot_status, -EPROTO,
		    "snapshot.http_status: 600 over the 599 limit" },
		{ 8, brk_snapshot_body, -EPROTO,
		    "snapshot.body: 65537 bytes over the 65536 limit" },
		{ 7, brk_appointment_id, -EPROTO,
		    "appointment.appointment_id: missing" },
		{ 7, brk_appointment_utc, -EPROTO,
		    "appointment.start_utc: not YYYY-MM-DDTHH:MM:SSZ" },
		{ 10, brk_event_kind, -EPROTO, "event.kind: unknown value 0" },
		{ 11, brk_result_status, -EPROTO,
		    "job_result.status: unknown value 42" },
		{ 11, brk_result_message, -EPROTO,
		    "job_result.error_message: 4097 bytes over the 4096" },
	};
	struct samples *s = calloc(1, sizeof(*s));
	char err[FRAME_ERR_MAX];
	Vetsync__Envelope env, *out;
	uint8_t *buf;
	size_t i, len;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sample(s, cases[i].kind, &env);
		cases[i].brk(s);

		/* We would not send it... */
		buf = NULL;
		assert_int_equal(frame_encode(&env, &buf, &len), cases[i].ret);
		assert_null(buf);
		err[0] = '\0';
		assert_int_equal(frame_validate(&env, err, sizeof(err)),
		    cases[i].ret);
		if (strstr(err, cases[i].err) == NULL)
			fail_msg("case %zu: validate said '%s', want '%s'", i,
			    err, cases[i].err);

		/* ...nor accept it. */
		buf = raw_pack(&env, &len);
		out = NULL;
		err[0] = '\0';
		r = frame_decode_err(buf, len, &out, err, sizeof(err));
		if (r != cases[i].ret)
			fail_msg("case %zu: got %d (%s), want %d", i, r, err,
			    cases[i].ret);
		if (strstr(err, cases[i].err) == NULL)
			fail_msg("case %zu: decode said '%s', want '%s'", i,
			    err, cases[i].err);
		assert_null(out);
		free(buf);
	}
	free(s);
}

/* Envelopes a buggy sender could build but never get onto the wire. */
static void
test_encode_refuses(void **state)
{
	struct samples *s = calloc(1, sizeof(*s));
	Vetsync__Envelope env;
	char err[FRAME_ERR_MAX];
	uint8_t *buf = NULL;
	size_t len;

	vetsync__envelope__init(&env);
	assert_int_equal(frame_encode(&env, &buf, &len), -ENOMSG);
	assert_int_equal(frame_validate(&env, err, sizeof(err)), -ENOMSG);
	assert_string_equal(err, "envelope holds no message");

	env.msg_case = 77;
	assert_int_equal(frame_encode(&env, &buf, &len), -ENOMSG);

	env.msg_case = VETSYNC__ENVELOPE__MSG_JOB;
	env.job = NULL;
	assert_int_equal(frame_validate(&env, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "job: missing");

	/* A message of the wrong type where a Job belongs. */
	sample(s, 3, &env);
	env.msg_case = VETSYNC__ENVELOPE__MSG_JOB;
	assert_int_equal(frame_validate(&env, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "job: a vetsync.Cancel where a vetsync.Job "
	    "belongs");

	/* A validate-credentials job needs no window. */
	sample(s, 2, &env);
	s->job.kind = VETSYNC__JOB_KIND__VALIDATE_CREDENTIALS;
	s->job.window_start = s->job.window_end = NULL;
	assert_int_equal(frame_encode(&env, &buf, &len), 0);
	free(buf);

	assert_int_equal(frame_validate(NULL, err, sizeof(err)), -EINVAL);
	/* A tiny err buffer is cut, not overrun. */
	vetsync__envelope__init(&env);
	assert_int_equal(frame_validate(&env, err, 5), -ENOMSG);
	assert_string_equal(err, "enve");
	frame_free(NULL);
	free(s);
}

/* Every message reachable from the envelope has limits, in step. */
static void
check_limits(const ProtobufCMessageDescriptor *desc, unsigned int depth)
{
	const struct frame_limit *l;
	size_t i, n = 99;

	assert_true(depth < 8);
	l = frame_limits_of(desc, &n);
	if (l == NULL)
		fail_msg("%s: no limits", desc->name);
	if (n != desc->n_fields)
		fail_msg("%s: %zu limits for %u fields", desc->name, n,
		    desc->n_fields);
	for (i = 0; i < n; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];

		if (strcmp(f->name, l[i].field) != 0)
			fail_msg("%s: limit %zu is for '%s', field is '%s'",
			    desc->name, i, l[i].field, f->name);
		if ((f->type == PROTOBUF_C_TYPE_STRING ||
		    f->type == PROTOBUF_C_TYPE_BYTES) && l[i].max == 0)
			fail_msg("%s.%s: unbounded", desc->name, f->name);
		if (f->label == PROTOBUF_C_LABEL_REPEATED && l[i].count == 0)
			fail_msg("%s.%s: no count", desc->name, f->name);
		if (f->type == PROTOBUF_C_TYPE_MESSAGE)
			check_limits(f->descriptor, depth + 1);
	}
}

static void
test_limits_cover_schema(void **state)
{
	check_limits(&vetsync__envelope__descriptor, 0);
}

/*
 * Fill every field of a message to its limit, with forms that pass.  What
 * is built here is freed with protobuf_c_message_free_unpacked(..., NULL).
 */
static void fill_message(ProtobufCMessage *, unsigned int);

static void
fill_value(const ProtobufCFieldDescriptor *f, const struct frame_limit *l,
    void *p, unsigned int depth)
{
	static unsigned int day;
	const ProtobufCEnumDescriptor *ed;
	const ProtobufCMessageDescriptor *md;
	ProtobufCBinaryData *b;
	ProtobufCMessage *m;
	char *str;

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		if (l->flags & FRAME_F_LOCALTIME) {
			/* Each later than the one before: start < end. */
			assert_non_null(str = malloc(32));
			snprintf(str, 32, "2026-01-%02u 00:00:00",
			    1 + day++ % 28);
		} else if (l->flags & FRAME_F_UTCTIME) {
			str = strdup("2026-01-01T00:00:00Z");
		} else if (l->flags & FRAME_F_IPADDR)
			str = strdup("ffff:ffff:ffff:ffff:ffff:ffff:"
			    "255.255.255.255");
		else if (l->flags & FRAME_F_SHA256) {
			assert_non_null(str = malloc(65));
			memset(str, 'f', 64);
			str[64] = '\0';
		} else {
			assert_non_null(str = malloc(l->max + 1));
			memset(str, 'x', l->max);
			str[l->max] = '\0';
		}
		assert_non_null(str);
		*(char **)p = str;
		break;
	case PROTOBUF_C_TYPE_BYTES:
		b = p;
		assert_non_null(b->data = malloc(l->max));
		memset(b->data, 0x06, l->max);
		b->len = l->max;
		break;
	case PROTOBUF_C_TYPE_UINT32:
		*(uint32_t *)p = (l->flags & FRAME_F_VERSION) ?
		    FRAME_PROTOCOL_VERSION : l->max ? l->max : UINT32_MAX;
		break;
	case PROTOBUF_C_TYPE_UINT64:
		*(uint64_t *)p = l->max ? l->max : UINT64_MAX;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = 1;
		break;
	case PROTOBUF_C_TYPE_ENUM:
		ed = f->descriptor;
		*(int *)p = ed->values[ed->n_values - 1].value;
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		md = f->descriptor;
		assert_non_null(m = malloc(md->sizeof_message));
		md->message_init(m);
		fill_message(m, depth + 1);
		*(ProtobufCMessage **)p = m;
		break;
	default:
		fail_msg("%s: type %d not expected", f->name, (int)f->type);
	}
}

static size_t
element_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_UINT64:
		return 8;
	default:
		return 4;
	}
}

static void
fill_message(ProtobufCMessage *m, unsigned int depth)
{
	const ProtobufCMessageDescriptor *desc = m->descriptor;
	const struct frame_limit *l;
	char *base = (char *)m, *items;
	size_t i, j, n;

	assert_true(depth < 8);
	assert_non_null(l = frame_limits_of(desc, &n));
	for (i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		size_t size = element_size(f->type);

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			assert_non_null(items = calloc(l[i].count, size));
			for (j = 0; j < l[i].count; j++)
				fill_value(f, &l[i], items + j * size, depth);
			*(size_t *)(base + f->quantifier_offset) = l[i].count;
			*(char **)(base + f->offset) = items;
			continue;
		}
		fill_value(f, &l[i], base + f->offset, depth);
		if (f->type != PROTOBUF_C_TYPE_STRING &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE)
			*(protobuf_c_boolean *)(base +
			    f->quantifier_offset) = 1;
	}
}

static void
test_full_messages_fit(void **state)
{
	const ProtobufCMessageDescriptor *md;
	Vetsync__Envelope env, *out;
	char err[FRAME_ERR_MAX];
	ProtobufCMessage *m;
	uint8_t *buf;
	size_t k, len;
	int r;

	for (k = 0; k < NKINDS; k++) {
		md = vetsync__envelope__descriptor.fields[k].descriptor;
		assert_non_null(m = malloc(md->sizeof_message));
		md->message_init(m);
		fill_message(m, 1);
		vetsync__envelope__init(&env);
		env.msg_case = kinds[k].msg_case;
		env.setup = (Vetsync__Setup *)m;	/* any union member */

		r = frame_validate(&env, err, sizeof(err));
		if (r != 0)
			fail_msg("%s at its limits: %s", kinds[k].name, err);
		if ((r = frame_encode(&env, &buf, &len)) != 0)
			fail_msg("%s at its limits: %d, %zu bytes",
			    kinds[k].name, r,
			    vetsync__envelope__get_packed_size(&env));
		print_message("# %s at its limits: %zu bytes\n",
		    kinds[k].name, len);
		assert_true(len <= FRAME_MAX);
		assert_int_equal(frame_decode(buf, len, &out), 0);
		frame_free(out);
		free(buf);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

static void
test_kind_names(void **state)
{
	size_t k;

	for (k = 0; k < NKINDS; k++)
		assert_string_equal(frame_kind_name(kinds[k].msg_case),
		    kinds[k].name);
	assert_string_equal(frame_kind_name(VETSYNC__ENVELOPE__MSG__NOT_SET),
	    "none");
	assert_string_equal(frame_kind_name(13), "unknown");
	assert_string_equal(frame_kind_name(-1), "unknown");
}

static void
test_recv_oversized(void **state)
{
	struct samples *s = calloc(1, sizeof(*s));
	Vetsync__Envelope *out = NULL;
	char err[FRAME_ERR_MAX];
	uint8_t *big;
	int sv[2];

	socketpair_frames(sv);
	assert_non_null(big = calloc(1, FRAME_MAX + 100));
	assert_int_equal(send(sv[0], big, FRAME_MAX + 100, 0), FRAME_MAX + 100);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EMSGSIZE);
	assert_string_equal(err, "frame of 262244 bytes over the 262144 limit");
	assert_null(out);
	/* Exactly one byte over is as bad. */
	assert_int_equal(send(sv[0], big, FRAME_MAX + 1, 0), FRAME_MAX + 1);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EMSGSIZE);
	/* The oversized packets were consumed: the next frame reads. */
	send_and_receive(s, 4, sv[0], sv[1]);
	close(sv[0]);
	close(sv[1]);
	free(big);
	free(s);
}

static void
test_recv_bad_packets(void **state)
{
	struct samples *s = calloc(1, sizeof(*s));
	Vetsync__Envelope *out = NULL;
	char err[FRAME_ERR_MAX];
	int sv[2];

	socketpair_frames(sv);
	/* An empty packet from a live peer is not its close. */
	assert_int_equal(send(sv[0], "", 0, 0), 0);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EBADMSG);
	assert_string_equal(err, "empty frame");
	assert_int_equal(send(sv[0], "\xff\xff\xff", 3, 0), 3);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EBADMSG);
	assert_int_equal(send(sv[0], "\x98\x06\x01", 3, 0), 3);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -ENOMSG);
	assert_null(out);
	send_and_receive(s, 2, sv[0], sv[1]);
	close(sv[0]);
	close(sv[1]);
	free(s);
}

static size_t
count_fds(void)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	assert_non_null(d = opendir("/proc/self/fd"));
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void
send_with_fds(int sock, const uint8_t *buf, size_t len, const int *fds,
    size_t nfds)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(sizeof(int) * 64)];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg;
	struct cmsghdr *c;

	memset(&msg, 0, sizeof(msg));
	memset(&control, 0, sizeof(control));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.space;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	assert_int_equal(sendmsg(sock, &msg, 0), (ssize_t)len);
}

static void
test_recv_fd_passing(void **state)
{
	struct samples *s = calloc(1, sizeof(*s));
	Vetsync__Envelope env, *out = NULL;
	char err[FRAME_ERR_MAX];
	int sv[2], fds[64];
	uint8_t *buf;
	size_t before, i, len;

	socketpair_frames(sv);
	assert_true((fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	for (i = 1; i < 64; i++)
		fds[i] = fds[0];
	sample(s, 3, &env);
	assert_int_equal(frame_encode(&env, &buf, &len), 0);
	before = count_fds();

	/* A valid frame, but with an fd: refused, and the fd closed. */
	send_with_fds(sv[0], buf, len, fds, 1);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EPROTO);
	assert_string_equal(err,
	    "frame carried ancillary data (1 file descriptors, closed)");
	assert_null(out);
	assert_int_equal(count_fds(), before);

	/* More fds than we make room for: the kernel drops the rest. */
	send_with_fds(sv[0], buf, len, fds, 64);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EPROTO);
	assert_int_equal(count_fds(), before);

	/* An fd with no bytes at all is still refused, not taken for EOF. */
	send_with_fds(sv[0], buf, 0, fds, 1);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EPROTO);
	assert_int_equal(count_fds(), before);

	send_and_receive(s, 3, sv[0], sv[1]);
	close(fds[0]);
	close(sv[0]);
	close(sv[1]);
	free(buf);
	free(s);
}

static void
test_eof_and_eagain(void **state)
{
	struct samples *s = calloc(1, sizeof(*s));
	Vetsync__Envelope env, *out = NULL;
	char err[FRAME_ERR_MAX];
	int sv[2], r;
	size_t n;

	socketpair_frames(sv);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EAGAIN);

	/* Fill the peer's queue: the send that does not fit is -EAGAIN. */
	sample(s, 5, &env);
	for (n = 0; n < 100000; n++) {
		if ((r = frame_send(sv[0], &env)) != 0)
			break;
	}
	assert_int_equal(r, -EAGAIN);
	assert_true(n > 0);

	/* What was queued before the close is still read, then EOF. */
	close(sv[0]);
	while (n-- > 0) {
		assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), 0);
		frame_free(out);
		out = NULL;
	}
	assert_int_equal(frame_recv(sv[1], &out, err, sizeof(err)), -EPIPE);
	assert_string_equal(err, "peer closed the channel");
	assert_null(out);

	/* Sending to a closed peer is -EPIPE, not SIGPIPE. */
	assert_int_equal(frame_send(sv[1], &env), -EPIPE);
	close(sv[1]);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_socket_roundtrip),
		cmocka_unit_test(test_decode_bad_bytes),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_limits_cover_schema),
		cmocka_unit_test(test_full_messages_fit),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_recv_oversized),
		cmocka_unit_test(test_recv_bad_packets),
		cmocka_unit_test(test_recv_fd_passing),
		cmocka_unit_test(test_eof_and_eagain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
