/*
 * Destructors of the IDEXX values (idexx.h).  They accept half-built
 * values and leave them zeroed, so releasing twice is harmless.
 */
#include <stdlib.h>
#include <string.h>

#include "worker/idexx.h"

void
idexx_appt_release(struct idexx_appt *a)
{
	if (a == NULL)
		return;
	free(a->id);
	free(a->consultation_id);
	free(a->start);
	free(a->end);
	free(a->patient_id);
	free(a->patient_name);
	free(a->client_id);
	free(a->first_name);
	free(a->last_name);
	free(a->email);
	free(a->phone);
	free(a->provider);
	free(a->resource_id);
	free(a->type_description);
	free(a->reason);
	free(a->status);
	memset(a, 0, sizeof(*a));
}

void
idexx_consult_release(struct idexx_consult *k)
{
	size_t i;

	if (k == NULL)
		return;
	free(k->id);
	free(k->appointment_id);
	free(k->date);
	free(k->status);
	free(k->reason);
	free(k->notes);
	free(k->discharge_summary);
	free(k->provider);
	free(k->patient_id);
	free(k->patient_name);
	free(k->species);
	free(k->breed);
	free(k->client_id);
	free(k->first_name);
	free(k->last_name);
	free(k->phone);
	free(k->email);
	for (i = 0; i < k->n_lines; i++) {
		free(k->lines[i].name);
		free(k->lines[i].quantity);
	}
	free(k->lines);
	memset(k, 0, sizeof(*k));
}

void
idexx_row_release(struct idexx_row *r)
{
	if (r == NULL)
		return;
	free(r->consultation_id);
	free(r->patient_name);
	free(r->date);
	memset(r, 0, sizeof(*r));
}
