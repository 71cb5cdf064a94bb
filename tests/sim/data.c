/*
 * The simulator's clinics: a deterministic generator of appointments,
 * consultations and their notes, keyed by --seed, the clinic's number and
 * the time the simulator started (t0, rounded down to five minutes).
 *
 * Per clinic, in [t0 - 72 h, t0 + 48 h): exactly K consulted visits whose
 * start lies in [t0 - 46 h, t0 - 5 min] (inside any "last 48 h" window a
 * client asks for a little later), cancelled visits, no-shows, blocks and
 * rosters around them, older consulted visits before t0 - 48 h, and future
 * visits whose consultation ids stay hidden until their start has passed.
 * Ids encode the clinic: appointment clinic * 100000 + n, consultation
 * clinic * 100000 + 50000 + n.
 *
 * A consultation may change after the fact, as clinics change them in
 * IDEXX Neo (data_consult_change(), through the "consultation" knob):
 * reopened, its appointment cancelled, checked out again later.  The
 * change is kept on the appointment, so every page shows it from then on.
 *
 * Times are Unix seconds; the clinic zone is the process's TZ, which main()
 * sets from --timezone, so localtime_r() and mktime() do the zone work.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/xmalloc.h"

#include "tests/sim/sim.h"

#define HOUR	3600
#define NOTES_LIMIT	(64 * 1024)

static const char *const patients[] = {
	"Zoë", "Müller", "Ñandú", "柴犬", "Bella", "Max", "Luna", "Charlie",
	"Chloé", "Björn", "Pepé", "Señor Bigotes", "Kōji", "Mochi", "Óscar",
	"Daisy", "Rocky", "Łatka", "Fräulein Kitty", "Ærø", "Rex", "Milo",
};
static const char *const firsts[] = {
	"Zoë", "Jürgen", "Renée", "José", "Ana", "Søren", "Maëlle", "Ngozi",
	"Emily", "James", "Olivia", "Noah", "Hiroshi", "Dvořák", "Siobhán",
	"Ève", "Liam", "Grace",
};
static const char *const lasts[] = {
	"Müller", "Ñúñez", "O'Brien", "García", "Smith", "Johansson",
	"Nguyễn", "Brontë", "Kowalczyk", "山田", "Dubois", "Taylor", "Brown",
	"Østergaard", "Lefèvre", "Patel",
};
static const char *const breeds[][2] = {
	{ "Canine", "Shiba Inu (柴犬)" }, { "Canine", "Labrador Retriever" },
	{ "Canine", "Border Collie" }, { "Canine", "Dachshund" },
	{ "Feline", "Maine Coon" }, { "Feline", "Domestic Shorthair" },
	{ "Feline", "Chartreux" }, { "Avian", "Cockatiel" },
	{ "Lapine", "Holland Lop" }, { "Canine", "Épagneul Breton" },
};
static const char *const providers[] = {
	"Dr. Ana Ibáñez", "Dr. Peter Walsh", "Dr. Mei Lin", "Dr. Søren Holm",
	"Dr. Grace Okafor", "Dr. Émile Roux",
};
static const char *const types[] = {
	"Consultation", "Vaccination", "Recheck", "Dental", "Surgery admit",
	"Emergency",
};
static const char *const reasons[] = {
	"Annual wellness exam", "Vomiting since yesterday",
	"Limping, left hind",
	"Itchy ears", "Booster vaccines", "Weight loss", "Post-op recheck",
	"Coughing at night", "Dental cleaning", "Skin lump on flank",
	"Not eating — owner worried",
};
static const char *const blocks[] = {
	"Lunch", "Surgery block", "Staff meeting",
};
static const char *const products[] = {
	"Rabies vaccine 1 yr", "DHPP booster", "Carprofen 75 mg tab",
	"Apoquel 16 mg", "Ear cleaner 120 ml", "Bravecto 20–40 kg",
	"Dental scale & polish", "CBC + chemistry panel", "Cytology",
	"Amoxicillin/clav 250 mg", "Hill's i/d 1.5 kg", "Nail trim",
};
static const char *const subjective[] = {
	"Seen for {R}; signs for about {D} days according to {F}.",
	"Diet: dry food twice daily, treats; no recent change reported.",
	"{F} {L} says {P} has been hiding more than usual for {D} days.",
	"Deworming and flea prevention current; last dose {D} days ago.",
	"{P} presented by {F} {L} with a history of: {R}.",
	"Owner reports normal appetite until two days ago; drinking more.",
	"No coughing or sneezing at home. Indoor/outdoor, vaccines current.",
	"Owner ({F}) noticed the problem after a walk in the park.",
	"Previous visit notes reviewed; medication given as prescribed.",
	"Mild lethargy reported, no vomiting or diarrhoea since the weekend.",
};
static const char *const objective[] = {
	"Weight {W} kg. Temperature {T} °C. Hydration adequate.",
	"Lymph nodes within normal limits; no palpable masses.",
	"Eyes clear, no discharge; mild tear staining bilaterally.",
	"Skin: papules on the ventral abdomen, {D} lesions counted.",
	"T 38.6 °C, HR 96 bpm, RR 24/min, MM pink, CRT < 2 s.",
	"BCS 5/9, weight stable compared with the last visit.",
	"Heart and lungs auscultate normally; abdomen soft, non-painful.",
	"Mild erythema of the external ear canal, brown discharge, no odour.",
	"Gait: grade 2/5 lameness, pain on extension of the stifle.",
	"Oral exam: grade 2 tartar on premolars, mild gingivitis.",
};
static const char *const assessment[] = {
	"Overall stable; weight {W} kg is appropriate for a {S}.",
	"Prognosis good if medication is given for the full {D} days.",
	"Probable adverse food reaction; elimination diet recommended.",
	"Fever ({T} °C) of unknown origin; monitor closely.",
	"Suspect otitis externa, likely Malassezia; cytology pending.",
	"Differentials: gastroenteritis, dietary indiscretion, pancreatitis.",
	"Cranial cruciate ligament injury cannot be ruled out.",
	"Healthy {S}; {P} is doing well for age.",
	"Periodontal disease, stage 2.",
	"Allergic dermatitis, flare-up; rule out fleas.",
};
static const char *const plan[] = {
	"Recheck weight ({W} kg today) in {D} weeks.",
	"Dispensed medication for {D} days, instructions given to {F}.",
	"E-collar until sutures are removed in {D} days.",
	"Owner to monitor appetite and call the clinic if {P} vomits again.",
	"Recheck in 14 days; call if worse. Discussed with {F} {L}.",
	"Start meds as dispensed; bland diet 3 days, small frequent meals.",
	"Radiographs offered; owner declined today, will book next week.",
	"Discharge call in 48 h to check on {P} and on compliance.",
	"Booster due next year; reminder sent to {F}.",
	"Blood work submitted; results to be phoned to the owner.",
};

uint64_t
data_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t
data_next(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	return data_mix(*state);
}

#define POOL	10	/* sentences in each SOAP pool */
#define PICK(a, r)	((a)[(r) % (sizeof(a) / sizeof((a)[0]))])

int64_t
data_now(void)
{
	return time(NULL);
}

static int
appt_cmp(const void *a, const void *b)
{
	const struct sim_appt *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seed < y->seed ? -1 : x->seed > y->seed;
}

static void
add(struct sim_clinic *c, size_t *cap, int64_t start, uint64_t *rng,
    enum sim_kind kind, bool consulted, bool cancelled, bool noshow)
{
	struct sim_appt *a;
	static const int lengths[] = { 15, 20, 30, 45 };
	uint64_t r;

	if (c->nappts == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		c->appts = xreallocarray(c->appts, *cap, sizeof(*c->appts));
	}
	a = &c->appts[c->nappts++];
	memset(a, 0, sizeof(*a));
	r = data_next(rng);
	a->seed = data_next(rng);
	a->start = start;
	a->end = start + 60 * (kind == SIM_VISIT ? PICK(lengths, r) :
	    kind == SIM_BLOCK ? 60 : 8 * 60);
	a->kind = kind;
	a->cancelled = cancelled;
	a->noshow = noshow;
	a->provider = (r >> 8) % c->nproviders;
	if (consulted) {
		a->consult_id = 1;	/* numbered after sorting */
		a->late_notes = (r >> 16) % 100 < 15;
		a->in_progress = a->late_notes || (r >> 24) % 100 < 5;
	}
}

static int64_t
draw(uint64_t *rng, int64_t from, int64_t to)
{
	int64_t t;

	t = from + (int64_t)(data_next(rng) % (uint64_t)(to - from));
	return t - t % 300;
}

static struct sim_clinic *
generate(unsigned int i)
{
	struct sim_clinic *c;
	uint64_t rng;
	int64_t base, from, span, step, t;
	size_t cap = 0, n;
	unsigned int k = sim.consultations, extra, j, ncon = 0;

	c = xcalloc(1, sizeof(*c));
	c->index = i;
	c->seed = data_mix(sim.seed * 1000003ULL + i);
	c->nproviders = 3 + i % 3;
	rng = c->seed;
	base = sim.t0 - sim.t0 % 300;

	/* Exactly k consulted visits in the last 46 hours. */
	from = base - 46 * HOUR;
	span = 46 * HOUR - 300;
	step = k ? span / k : span;
	for (j = 0; j < k; j++) {
		t = from + j * step + (int64_t)(data_next(&rng) %
		    (uint64_t)(step > 1 ? step : 1));
		t -= t % (step >= 300 ? 300 : 60);
		if (t < from)
			t = from;
		add(c, &cap, t, &rng, SIM_VISIT, true, false, false);
	}
	/* Around them: cancellations, no-shows, blocks and rosters. */
	extra = k / 5 + 4;
	for (j = 0; j < extra; j++) {
		t = draw(&rng, from, base - 300);
		switch (j % 4) {
		case 0:
			add(c, &cap, t, &rng, SIM_VISIT, false, true, false);
			break;
		case 1:
			add(c, &cap, t, &rng, SIM_VISIT, false, false, true);
			break;
		case 2:
			add(c, &cap, t, &rng, SIM_BLOCK, false, false, false);
			break;
		default:
			add(c, &cap, t, &rng, SIM_ROSTER, false, false, false);
			break;
		}
	}
	/* Older visits, outside the default window. */
	for (j = 0; j < k / 5 + 8; j++) {
		t = draw(&rng, base - 72 * HOUR, base - 48 * HOUR - 300);
		add(c, &cap, t, &rng, j % 5 == 4 ? SIM_BLOCK : SIM_VISIT,
		    j % 5 < 3, j % 5 == 3, false);
	}
	/* The future: consultations to come, hidden until they start. */
	for (j = 0; j < k / 5 + 8; j++) {
		t = draw(&rng, base + 1800, base + 48 * HOUR);
		add(c, &cap, t, &rng, j % 6 == 4 ? SIM_BLOCK :
		    j % 6 == 5 ? SIM_ROSTER : SIM_VISIT, j % 6 < 3,
		    j % 6 == 3, false);
	}

	qsort(c->appts, c->nappts, sizeof(*c->appts), appt_cmp);
	c->consults = xreallocarray(NULL, c->nappts + 1, sizeof(*c->consults));
	for (n = 0; n < c->nappts; n++) {
		c->appts[n].id = i * SIM_ID_STRIDE + 1 + n;
		if (c->appts[n].consult_id == 0)
			continue;
		c->appts[n].consult_id = i * SIM_ID_STRIDE +
		    SIM_CONSULT_BASE + 1 + ncon;
		c->consults[ncon++] = n;
	}
	c->nconsults = ncon;
	return c;
}

const struct sim_clinic *
data_clinic(unsigned int i)
{
	if (i < 1 || i > sim.nclinics)
		return NULL;
	if (sim.clinics[i] == NULL)
		sim.clinics[i] = generate(i);
	return sim.clinics[i];
}

void
data_clinics_free(void)
{
	unsigned int i;

	if (sim.clinics == NULL)
		return;
	for (i = 0; i <= sim.nclinics; i++) {
		if (sim.clinics[i] != NULL) {
			free(sim.clinics[i]->appts);
			free(sim.clinics[i]->consults);
		}
		free(sim.clinics[i]);
	}
	free(sim.clinics);
	sim.clinics = NULL;
}

const struct sim_appt *
data_consult_find(uint32_t id, unsigned int *ret_clinic)
{
	const struct sim_clinic *c;
	unsigned int i, n;

	i = id / SIM_ID_STRIDE;
	n = id % SIM_ID_STRIDE;
	if (n <= SIM_CONSULT_BASE || (c = data_clinic(i)) == NULL ||
	    n - SIM_CONSULT_BASE > c->nconsults)
		return NULL;
	*ret_clinic = i;
	return &c->appts[c->consults[n - SIM_CONSULT_BASE - 1]];
}

bool
data_consult_visible(const struct sim_appt *a, int64_t now)
{
	return a->consult_id != 0 && a->start <= now;
}

bool
data_reportable(const struct sim_appt *a, int64_t now)
{
	return a->kind == SIM_VISIT && !a->cancelled && !a->noshow &&
	    data_consult_visible(a, now);
}

const char *
data_provider_name(const struct sim_clinic *c, unsigned int p)
{
	return providers[(c->index + p) % (sizeof(providers) /
	    sizeof(providers[0]))];
}

/*
 * Expand a template: {P} patient, {F} and {L} client, {R} reason, {S}
 * species; {W} a weight, {T} a temperature and {D} a count from rng.
 */
static void
sentence(struct buf *b, const char *t, const struct sim_visit *v,
    uint64_t *rng)
{
	const char *sub;
	char num[16];
	uint64_t r;

	if (b->len > 0)
		buf_puts(b, " ");
	for (; *t != '\0'; t++) {
		sub = NULL;
		if (t[0] == '{' && t[1] != '\0' && t[2] == '}') {
			switch (t[1]) {
			case 'P': sub = v->patient; break;
			case 'F': sub = v->first_name; break;
			case 'L': sub = v->last_name; break;
			case 'R': sub = v->reason; break;
			case 'S': sub = v->species; break;
			case 'W':
			case 'T':
			case 'D':
				r = data_next(rng);
				if (t[1] == 'W')
					snprintf(num, sizeof(num), "%u.%u",
					    (unsigned int)(2 + r % 44),
					    (unsigned int)(r >> 8) % 10);
				else if (t[1] == 'T')
					snprintf(num, sizeof(num), "%u.%u",
					    (unsigned int)(37 + r % 3),
					    (unsigned int)(r >> 8) % 10);
				else
					snprintf(num, sizeof(num), "%u",
					    (unsigned int)(1 + r % 14));
				sub = num;
				break;
			}
		}
		if (sub != NULL) {
			buf_puts(b, sub);
			t += 2;
		} else
			buf_append(b, t, 1);
	}
}

static void
write_notes(struct sim_visit *v, uint64_t rng)
{
	static const char *const *pools[SIM_SOAP] = {
		subjective, objective, assessment, plan,
	};
	static const char *const heads[SIM_SOAP] = {
		"Subjective", "Objective", "Assessment", "Plan",
	};
	size_t target, s, pick, last;

	target = 1024 + data_next(&rng) % (7 * 1024);
	for (s = 0; s < SIM_SOAP; s++) {
		last = POOL;
		while (v->soap[s].len < target / SIM_SOAP - 64) {
			/* Never the same sentence twice in a row. */
			while ((pick = data_next(&rng) % POOL) == last)
				;
			last = pick;
			sentence(&v->soap[s], pools[s][pick], v, &rng);
		}
		buf_printf(&v->notes, "%s%s: %s", s ? "\n\n" : "", heads[s],
		    v->soap[s].data);
	}
}

bool
data_appt_cancelled(const struct sim_appt *a)
{
	return a->cancelled || a->change == SIM_CHANGE_CANCELLED;
}

/* The calendar's current_status; the consultation's status follows it. */
static const char *
appt_status(const struct sim_appt *a)
{
	if (data_appt_cancelled(a))
		return "Cancelled";
	if (a->noshow)
		return "No Show";
	if (a->kind != SIM_VISIT)
		return "";
	if (a->start > data_now())
		return "Booked";
	switch (a->change) {
	case SIM_CHANGE_IN_CONSULT:
		return "In Consult";
	case SIM_CHANGE_CHECKED_OUT:
		return "Checked Out";
	default:
		break;
	}
	if (a->in_progress && !(a->late_notes && sim.notes_gen > 0))
		return "In Consult";
	return "Checked Out";
}

int64_t
data_consult_date(const struct sim_appt *a)
{
	return a->done_at != 0 ? a->done_at : a->start;
}

void
data_consult_change(unsigned int clinic, const struct sim_appt *ca,
    enum sim_change to)
{
	struct sim_clinic *c = sim.clinics[clinic];
	struct sim_appt *a = &c->appts[ca - c->appts];
	int64_t now = data_now();

	if (to == SIM_CHANGE_CHECKED_OUT) {
		if (strcmp(appt_status(a), "Checked Out") == 0)
			return;
		a->done_at = now > data_consult_date(a) ? now :
		    data_consult_date(a) + 1;
	}
	a->change = (uint8_t)to;
}

bool
data_has_notes(const struct sim_appt *a)
{
	return a->consult_id != 0 && (!a->late_notes || sim.notes_gen > 0);
}

void
data_visit_init(struct sim_visit *v, const struct sim_clinic *c,
    const struct sim_appt *a, bool with_notes)
{
	uint64_t rng = a->seed, r;
	unsigned int i, b;

	memset(v, 0, sizeof(*v));
	v->clinic = c;
	v->appt = a;
	for (i = 0; i < SIM_SOAP; i++)
		buf_init(&v->soap[i], NOTES_LIMIT);
	buf_init(&v->notes, NOTES_LIMIT);
	buf_init(&v->discharge, NOTES_LIMIT);

	r = data_next(&rng);
	v->patient_id = c->index * SIM_ID_STRIDE + r % SIM_CONSULT_BASE;
	v->client_id = c->index * SIM_ID_STRIDE + (r >> 20) % SIM_CONSULT_BASE;
	v->patient = PICK(patients, r >> 3);
	b = (r >> 9) % (sizeof(breeds) / sizeof(breeds[0]));
	v->species = breeds[b][0];
	v->breed = breeds[b][1];
	r = data_next(&rng);
	v->first_name = PICK(firsts, r);
	v->last_name = PICK(lasts, r >> 7);
	snprintf(v->email, sizeof(v->email), "owner%u@mail%u.test",
	    (unsigned int)v->client_id, c->index);
	snprintf(v->phone, sizeof(v->phone), "+1 303-555-%04u",
	    (unsigned int)(v->client_id % 10000));
	v->provider_id = c->index * 100 + a->provider + 1;
	v->provider = data_provider_name(c, a->provider);
	v->type = PICK(types, r >> 13);
	v->reason = PICK(reasons, r >> 17);
	if (a->kind == SIM_BLOCK) {
		v->type = "Block";
		v->reason = PICK(blocks, r >> 21);
	} else if (a->kind == SIM_ROSTER) {
		v->type = "Roster";
		v->reason = "On duty";
	}

	v->appt_status = appt_status(a);
	if (strcmp(v->appt_status, "In Consult") == 0)
		v->status = "in_progress";
	else if (strcmp(v->appt_status, "Cancelled") == 0)
		v->status = "cancelled";
	else
		v->status = "completed";
	if (a->consult_id == 0 || !with_notes)
		return;

	r = data_next(&rng);
	v->nlines = r % (SIM_NLINES_MAX + 1);
	for (i = 0; i < v->nlines; i++) {
		r = data_next(&rng);
		v->lines[i].product = PICK(products, r);
		v->lines[i].quantity = 1 + (r >> 8) % 3;
		v->lines[i].declined = (r >> 16) % 100 < 15;
	}
	if (a->late_notes) {
		if (sim.notes_gen == 0)
			return;
		rng = data_mix(a->seed ^ sim.notes_gen);
	}
	write_notes(v, rng);
	buf_printf(&v->discharge, "%s went home with %s %s. Bland diet for "
	    "3 days, small frequent meals. Call us if %s is not eating by "
	    "tomorrow.", v->patient, v->first_name, v->last_name, v->patient);
}

void
data_visit_release(struct sim_visit *v)
{
	unsigned int i;

	for (i = 0; i < SIM_SOAP; i++)
		buf_release(&v->soap[i]);
	buf_release(&v->notes);
	buf_release(&v->discharge);
}

void
data_format_local(int64_t t, char buf[DATA_LOCAL_LEN])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, DATA_LOCAL_LEN, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, DATA_LOCAL_LEN, "1970-01-01 00:00:00");
}

static int
to_time(struct tm *tm, int64_t *ret)
{
	time_t t;

	tm->tm_isdst = -1;
	t = mktime(tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ret = t;
	return 0;
}

int
data_parse_local(const char *s, int64_t *ret)
{
	struct tm tm;
	const char *end;

	if (s == NULL || strlen(s) != 19)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
	if (end == NULL || *end != '\0')
		return -EINVAL;
	return to_time(&tm, ret);
}

int
data_parse_date(const char *s, int64_t *ret)
{
	struct tm tm;
	const char *end;

	if (s == NULL || strlen(s) != 10)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end == NULL || *end != '\0')
		return -EINVAL;
	return to_time(&tm, ret);
}

void
data_sha256_hex(const void *p, size_t len, char hex[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0, i;

	if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) != 1)
		mdlen = 0;
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * i] = '\0';
}
