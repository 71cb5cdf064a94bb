/*
 * The limits of every field of the wire contract, as data: one table per
 * message, in field-number order.  A field added to vetsync.proto without a
 * line here makes every frame carrying that message a protocol violation
 * (and the unit tests fail), so nothing crosses the wire unbounded.
 */
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "proto/frame_limits.h"
#include "proto/vetsync.pb-c.h"

#define REQ	FRAME_F_REQUIRED
#define NONEMPTY FRAME_F_NONEMPTY
/* A required identifier: a string that must be there and not be empty. */
#define REQ_ID	(FRAME_F_REQUIRED | FRAME_F_NONEMPTY)
/* A required job id: nonzero. */
#define JOB_ID	{ "job_id", REQ_ID, 0, 0 }

static const struct frame_limit envelope_limits[] = {
	{ "setup", 0, 0, 0 },
	{ "hello", 0, 0, 0 },
	{ "job", 0, 0, 0 },
	{ "cancel", 0, 0, 0 },
	{ "shutdown", 0, 0, 0 },
	{ "progress", 0, 0, 0 },
	{ "consultation", 0, 0, 0 },
	{ "appointment", 0, 0, 0 },
	{ "snapshot", 0, 0, 0 },
	{ "ui_fingerprint", 0, 0, 0 },
	{ "event", 0, 0, 0 },
	{ "job_result", 0, 0, 0 },
};

static const struct frame_limit setup_limits[] = {
	{ "protocol_version", REQ | FRAME_F_VERSION, 0, 0 },
	{ "seccomp_bpf", REQ | NONEMPTY | FRAME_F_BPF,
	    FRAME_BPF_INSNS_MAX * FRAME_BPF_INSN_SIZE, 0 },
	{ "landlock_ro_paths", NONEMPTY, FRAME_PATH_MAX,
	    FRAME_LANDLOCK_PATHS_MAX },
	{ "landlock_tcp_ports", NONEMPTY, 65535, FRAME_LANDLOCK_PORTS_MAX },
	{ "landlock_min_abi", 0, 64, 0 },
	{ "require_landlock", 0, 0, 0 },
};

static const struct frame_limit sandbox_report_limits[] = {
	{ "no_new_privs", 0, 0, 0 },
	{ "seccomp", 0, 0, 0 },
	{ "landlock_abi", 0, 64, 0 },
	{ "landlock_fs", 0, 0, 0 },
	{ "landlock_net", 0, 0, 0 },
	{ "nondumpable", 0, 0, 0 },
};

static const struct frame_limit hello_limits[] = {
	{ "protocol_version", REQ | FRAME_F_VERSION, 0, 0 },
	{ "pid", REQ | NONEMPTY, INT32_MAX, 0 },
	{ "sandbox", REQ, 0, 0 },
};

static const struct frame_limit pinned_address_limits[] = {
	{ "host", REQ_ID | FRAME_F_HOSTNAME, 253, 0 },
	{ "port", REQ | NONEMPTY, 65535, 0 },
	{ "ip", REQ_ID | FRAME_F_IPADDR, FRAME_SHORT_MAX, 0 },
};

static const struct frame_limit credentials_limits[] = {
	{ "username", REQ_ID, FRAME_NAME_MAX, 0 },
	{ "password", REQ_ID, FRAME_NAME_MAX, 0 },
	{ "company_id", 0, FRAME_NAME_MAX, 0 },
};

static const struct frame_limit job_limits_limits[] = {
	{ "max_parallel", REQ | NONEMPTY, 64, 0 },
	{ "request_rate", REQ | NONEMPTY, 1000, 0 },
	{ "response_max", REQ | NONEMPTY, 1024 * 1024 * 1024, 0 },
	{ "request_timeout_ms", REQ | NONEMPTY, 0, 0 },
	{ "job_timeout_ms", REQ | NONEMPTY, 0, 0 },
};

static const struct frame_limit job_limits[] = {
	JOB_ID,
	{ "kind", REQ, 0, 0 },
	{ "clinic_id", REQ_ID, FRAME_ID_MAX, 0 },
	{ "base_url", REQ_ID, FRAME_URL_MAX, 0 },
	{ "pinned", REQ, 0, 0 },
	{ "site_profile", REQ_ID, FRAME_PROFILE_MAX, 0 },
	{ "time_zone", REQ_ID, FRAME_SHORT_MAX, 0 },
	{ "window_start", FRAME_F_LOCALTIME, FRAME_SHORT_MAX, 0 },
	{ "window_end", FRAME_F_LOCALTIME, FRAME_SHORT_MAX, 0 },
	{ "credentials", REQ, 0, 0 },
	{ "limits", REQ, 0, 0 },
	{ "ca_bundle", NONEMPTY, FRAME_PATH_MAX, 0 },
};

static const struct frame_limit cancel_limits[] = {
	JOB_ID,
};

static const struct frame_limit progress_limits[] = {
	JOB_ID,
	{ "stage", REQ, 0, 0 },
	{ "done", 0, 0, 0 },
	{ "total", 0, 0, 0 },
};

static const struct frame_limit patient_limits[] = {
	{ "id", REQ_ID, FRAME_ID_MAX, 0 },
	{ "name", 0, FRAME_NAME_MAX, 0 },
	{ "species", 0, FRAME_NAME_MAX, 0 },
	{ "breed", 0, FRAME_NAME_MAX, 0 },
};

static const struct frame_limit client_limits[] = {
	{ "id", REQ_ID, FRAME_ID_MAX, 0 },
	{ "first_name", 0, FRAME_NAME_MAX, 0 },
	{ "last_name", 0, FRAME_NAME_MAX, 0 },
	{ "phone", 0, FRAME_NAME_MAX, 0 },
	{ "email", 0, FRAME_NAME_MAX, 0 },
};

static const struct frame_limit consultation_line_limits[] = {
	{ "name", REQ_ID, FRAME_NAME_MAX, 0 },
	{ "quantity", 0, FRAME_SHORT_MAX, 0 },
	{ "declined", 0, 0, 0 },
};

static const struct frame_limit consultation_limits[] = {
	JOB_ID,
	{ "consultation_id", REQ_ID, FRAME_ID_MAX, 0 },
	{ "appointment_id", 0, FRAME_ID_MAX, 0 },
	{ "date", 0, FRAME_SHORT_MAX, 0 },
	{ "status", 0, FRAME_NAME_MAX, 0 },
	{ "reason", 0, FRAME_LINE_MAX, 0 },
	{ "notes", 0, FRAME_TEXT_MAX, 0 },
	{ "discharge_summary", 0, FRAME_TEXT_MAX, 0 },
	{ "provider", 0, FRAME_NAME_MAX, 0 },
	{ "patient", 0, 0, 0 },
	{ "client", 0, 0, 0 },
	{ "lines", 0, 0, FRAME_LINES_MAX },
	{ "date_utc", FRAME_F_UTCTIME, FRAME_SHORT_MAX, 0 },
};

static const struct frame_limit appointment_limits[] = {
	JOB_ID,
	{ "appointment_id", REQ_ID, FRAME_ID_MAX, 0 },
	{ "consultation_id", 0, FRAME_ID_MAX, 0 },
	{ "start", 0, FRAME_SHORT_MAX, 0 },
	{ "end", 0, FRAME_SHORT_MAX, 0 },
	{ "patient", 0, 0, 0 },
	{ "client", 0, 0, 0 },
	{ "provider", 0, FRAME_NAME_MAX, 0 },
	{ "resource_id", 0, FRAME_ID_MAX, 0 },
	{ "type_description", 0, FRAME_NAME_MAX, 0 },
	{ "reason", 0, FRAME_LINE_MAX, 0 },
	{ "status", 0, FRAME_NAME_MAX, 0 },
	{ "cancelled", 0, 0, 0 },
	{ "start_utc", FRAME_F_UTCTIME, FRAME_SHORT_MAX, 0 },
	{ "end_utc", FRAME_F_UTCTIME, FRAME_SHORT_MAX, 0 },
};

static const struct frame_limit snapshot_limits[] = {
	JOB_ID,
	{ "reason", REQ_ID, FRAME_LINE_MAX, 0 },
	{ "url_path", 0, FRAME_URL_MAX, 0 },
	{ "http_status", 0, 599, 0 },
	{ "content_type", 0, FRAME_NAME_MAX, 0 },
	{ "body", 0, FRAME_SNAPSHOT_MAX, 0 },
	{ "truncated", 0, 0, 0 },
};

static const struct frame_limit ui_fingerprint_limits[] = {
	JOB_ID,
	{ "response_kind", REQ_ID, FRAME_SHORT_MAX, 0 },
	{ "sha256", REQ | FRAME_F_SHA256, 64, 0 },
	{ "summary", 0, FRAME_LINE_MAX, 0 },
};

static const struct frame_limit event_limits[] = {
	JOB_ID,
	{ "kind", REQ, 0, 0 },
	{ "detail", 0, FRAME_LINE_MAX, 0 },
};

static const struct frame_limit job_result_limits[] = {
	JOB_ID,
	{ "status", REQ, 0, 0 },
	{ "error_class", 0, FRAME_SHORT_MAX, 0 },
	{ "error_message", 0, FRAME_LINE_MAX, 0 },
	{ "consultations", 0, 0, 0 },
	{ "appointments", 0, 0, 0 },
	{ "notes_found", 0, 0, 0 },
	{ "requests", 0, 0, 0 },
	{ "bytes_received", 0, 0, 0 },
	{ "login_ms", 0, 0, 0 },
	{ "total_ms", 0, 0, 0 },
};

#define MSG(name, table) \
	{ &vetsync__##name##__descriptor, table, \
	    sizeof(table) / sizeof(table[0]) }

static const struct {
	const ProtobufCMessageDescriptor *desc;
	const struct frame_limit *limits;
	size_t n;
} frame_limit_tables[] = {
	MSG(envelope, envelope_limits),
	MSG(setup, setup_limits),
	MSG(sandbox_report, sandbox_report_limits),
	MSG(hello, hello_limits),
	MSG(pinned_address, pinned_address_limits),
	MSG(credentials, credentials_limits),
	MSG(job_limits, job_limits_limits),
	MSG(job, job_limits),
	MSG(cancel, cancel_limits),
	{ &vetsync__shutdown__descriptor, NULL, 0 },
	MSG(progress, progress_limits),
	MSG(patient, patient_limits),
	MSG(client, client_limits),
	MSG(consultation_line, consultation_line_limits),
	MSG(consultation, consultation_limits),
	MSG(appointment, appointment_limits),
	MSG(snapshot, snapshot_limits),
	MSG(ui_fingerprint, ui_fingerprint_limits),
	MSG(event, event_limits),
	MSG(job_result, job_result_limits),
};

const struct frame_limit *
frame_limits_of(const ProtobufCMessageDescriptor *desc, size_t *ret_n)
{
	/* Shutdown has no fields: a non-NULL table of none. */
	static const struct frame_limit none[1];
	size_t i;

	for (i = 0; i < sizeof(frame_limit_tables) /
	    sizeof(frame_limit_tables[0]); i++) {
		if (frame_limit_tables[i].desc != desc)
			continue;
		*ret_n = frame_limit_tables[i].n;
		if (frame_limit_tables[i].limits == NULL)
			return none;
		return frame_limit_tables[i].limits;
	}
	return NULL;
}
