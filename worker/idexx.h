/*
 * What the worker reads from IDEXX Neo, in its own terms, independent of
 * the site profile that located it.  Strings are heap copies, valid UTF-8,
 * NUL-free and bounded by the proto/ limits (frame_limits.h); absent
 * fields are NULL.  Times are as IDEXX sent them (clinic-local); the
 * worker adds the UTC form when it sends them.
 */
#ifndef VS_WORKER_IDEXX_H
#define VS_WORKER_IDEXX_H

#include <stdbool.h>
#include <stddef.h>

struct idexx_appt {
	char *id;			/* required */
	char *consultation_id;		/* NULL until the consultation opens */
	char *start, *end;		/* "YYYY-MM-DD HH:MM:SS" or IDEXX's form */
	char *patient_id, *patient_name;
	char *client_id, *first_name, *last_name, *email, *phone;
	char *provider, *resource_id, *type_description, *reason, *status;
	bool is_block, is_roster;	/* skipped, never sent */
	bool cancelled;
};

struct idexx_line {
	char *name;			/* product or service, required */
	char *quantity;			/* decimal text */
	bool declined;
};

struct idexx_consult {
	char *id;			/* required */
	char *appointment_id;
	char *date, *status, *reason, *notes, *discharge_summary, *provider;
	char *patient_id, *patient_name, *species, *breed;
	char *client_id, *first_name, *last_name, *phone, *email;
	struct idexx_line *lines;
	size_t n_lines;
};

/* A row of the prd-html consultations list. */
struct idexx_row {
	char *consultation_id;		/* required */
	char *patient_name, *date;
	bool has_notes;
};

void idexx_appt_release(struct idexx_appt *);
void idexx_consult_release(struct idexx_consult *);
void idexx_row_release(struct idexx_row *);

#endif
