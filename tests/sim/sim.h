/*
 * The IDEXX Neo simulator (tests/idexx_sim): state shared by its modules.
 *
 * One process, one thread, one global struct sim.  Clinic data is generated
 * lazily and deterministically from --seed and the time the simulator
 * started (sim.t0), so 1,000 clinics cost nothing until they are asked for.
 * Notes are not stored: they are regenerated from each appointment's seed
 * whenever a page needs them.
 *
 * Modules: data.c (the generator and clinic-local time), neo.c (the JSON
 * profile and the ground truth), html.c (the PRD's pages and the login
 * form), session.c (cookie sessions), control.c (knobs, stats, the control
 * endpoint), mutate.c (broken bodies) and idexx_sim.c (options, HTTP,
 * failure injection).
 */
#ifndef VS_TESTS_SIM_SIM_H
#define VS_TESTS_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct evbuffer;
struct evhttp_request;
struct evkeyvalq;

#define SIM_MAX_CLINICS		20000
#define SIM_MAX_CONSULTATIONS	20000
#define SIM_ID_STRIDE		100000	/* ids are clinic * stride + n */
#define SIM_CONSULT_BASE	50000
#define SIM_PAGE_ROWS		20

enum sim_profile {
	SIM_PROFILE_NEO,
	SIM_PROFILE_HTML,
};

enum sim_body {
	SIM_BODY_NORMAL,
	SIM_BODY_TRUNCATED,
	SIM_BODY_GARBAGE,
	SIM_BODY_HUGE,
	SIM_BODY_NON_UTF8,
};

/* How an expired session answers; 0 means the profile's default. */
enum sim_expiry {
	SIM_EXPIRY_DEFAULT = 0,
	SIM_EXPIRY_401 = 401,
	SIM_EXPIRY_302 = 302,
};

/* Calendar wrappers; SIM_WRAP_ROTATE cycles through the other four. */
enum sim_wrap {
	SIM_WRAP_ROTATE = -1,
	SIM_WRAP_ARRAY,
	SIM_WRAP_APPOINTMENTS,
	SIM_WRAP_DATA,
	SIM_WRAP_EVENTS,
};

struct sim_knobs {
	uint64_t	latency_ms;
	uint64_t	slow_ms;
	uint64_t	session_ttl_ms;		/* 0: sessions live 8 h */
	uint64_t	session_max_requests;	/* 0: unlimited */
	uint64_t	rate_429;		/* millionths */
	uint64_t	rate_5xx;		/* millionths */
	uint64_t	retry_after;		/* seconds */
	enum sim_body	body;
	int		variant;		/* 0, 1 or 2 */
	int		wrap;			/* enum sim_wrap */
	bool		ui_changed;
	enum sim_expiry	expiry;
	bool	       *locked;			/* [nclinics + 1] */
};

enum sim_kind {
	SIM_VISIT,
	SIM_BLOCK,
	SIM_ROSTER,
};

/* What the "consultation" knob made of a consultation since. */
enum sim_change {
	SIM_CHANGE_NONE,		/* as generated */
	SIM_CHANGE_IN_CONSULT,		/* reopened */
	SIM_CHANGE_CANCELLED,		/* its appointment cancelled */
	SIM_CHANGE_CHECKED_OUT,		/* completed at done_at */
};

struct sim_appt {
	int64_t		start;		/* Unix seconds */
	int64_t		end;
	uint32_t	id;
	uint32_t	consult_id;	/* 0: never consulted */
	uint64_t	seed;
	uint8_t		kind;		/* enum sim_kind */
	bool		cancelled;
	bool		noshow;
	bool		late_notes;	/* empty until "add_notes" */
	bool		in_progress;
	uint8_t		provider;
	uint8_t		change;		/* enum sim_change */
	int64_t		done_at;	/* 0: completed at its start */
};

struct sim_clinic {
	unsigned int	 index;
	uint64_t	 seed;
	unsigned int	 nproviders;
	struct sim_appt	*appts;		/* sorted by start */
	size_t		 nappts;
	uint32_t	*consults;	/* consultation n - 1 -> appts index */
	size_t		 nconsults;
};

struct sim_stats {
	uint64_t	requests;
	uint64_t	bytes;
	uint64_t	logins;
	uint64_t	failed_logins;
	uint64_t	expired;
	uint64_t	r429;
	uint64_t	r5xx;
};

#define SIM_NLINES_MAX	5
#define SIM_SOAP	4

struct sim_line {
	const char	*product;
	unsigned int	 quantity;
	bool		 declined;
};

/* Everything a page shows about one appointment, built on demand. */
struct sim_visit {
	const struct sim_clinic	*clinic;
	const struct sim_appt	*appt;
	uint32_t	 patient_id;
	uint32_t	 client_id;
	uint32_t	 provider_id;
	const char	*patient;
	const char	*species;
	const char	*breed;
	const char	*first_name;
	const char	*last_name;
	char		 email[64];
	char		 phone[32];
	const char	*provider;
	const char	*type;
	const char	*reason;
	const char	*status;	/* consultation status */
	const char	*appt_status;	/* calendar current_status */
	struct buf	 soap[SIM_SOAP];
	struct buf	 notes;
	struct buf	 discharge;
	struct sim_line	 lines[SIM_NLINES_MAX];
	unsigned int	 nlines;
};

struct sim {
	enum sim_profile	 profile;
	unsigned int		 nclinics;
	uint64_t		 seed;
	unsigned int		 consultations;
	const char		*timezone;
	int64_t			 t0;		/* wall seconds at start */
	struct sim_knobs	 knobs;
	struct sim_clinic	**clinics;	/* [nclinics + 1], lazy */
	struct sim_stats	*stats;		/* [nclinics + 1]; [0] total */
	unsigned int		 notes_gen;
	uint64_t		 prng;		/* failure injection */
	uint64_t		 calendar_n;	/* requests, for rotation */
};

extern struct sim sim;

/* data.c */
uint64_t	 data_mix(uint64_t);
uint64_t	 data_next(uint64_t *state);
const struct sim_clinic *data_clinic(unsigned int);
void		 data_clinics_free(void);
/* The appointment holding consultation id, or NULL. */
const struct sim_appt *data_consult_find(uint32_t id, unsigned int *ret_clinic);
bool		 data_consult_visible(const struct sim_appt *, int64_t now);
/* True for appointments a sync should report (a visible consultation). */
bool		 data_reportable(const struct sim_appt *, int64_t now);
/* Fills v; notes, discharge and lines only when with_notes. */
void		 data_visit_init(struct sim_visit *, const struct sim_clinic *,
		    const struct sim_appt *, bool with_notes);
/* Whether the consultation has notes now (cheaper than generating them). */
bool		 data_has_notes(const struct sim_appt *);
/* The consultation's date: when it was completed, else its start. */
int64_t		 data_consult_date(const struct sim_appt *);
/* Whether the calendar shows the appointment as cancelled. */
bool		 data_appt_cancelled(const struct sim_appt *);
/*
 * Change a consultation of that clinic (a, from neo_lookup) as a clinic
 * does in IDEXX Neo.  Checking out one that is not checked out completes
 * it now, later than any completion before; one checked out stays as is.
 */
void		 data_consult_change(unsigned int clinic,
		    const struct sim_appt *a, enum sim_change);
void		 data_visit_release(struct sim_visit *);
const char	*data_provider_name(const struct sim_clinic *, unsigned int);
/* "YYYY-MM-DD HH:MM:SS" in the simulated clinic's zone. */
#define DATA_LOCAL_LEN 20
void		 data_format_local(int64_t, char buf[DATA_LOCAL_LEN]);
int		 data_parse_local(const char *, int64_t *ret);
/* "YYYY-MM-DD": local midnight of that day. */
int		 data_parse_date(const char *, int64_t *ret);
void		 data_sha256_hex(const void *, size_t, char hex[65]);
int64_t		 data_now(void);

/* session.c */
struct sim_session;
struct sim_session *session_new(unsigned int clinic);
struct sim_session *session_find(const char *token);
void		 session_free(struct sim_session *);
void		 session_expire_all(void);
void		 session_free_all(void);
const char	*session_token(const struct sim_session *);
unsigned int	 session_clinic(const struct sim_session *);
/* Count a request; false once the session has expired. */
bool		 session_use(struct sim_session *);
uint64_t	 session_next_calendar(struct sim_session *);
void		 session_random_token(char hex[33]);

/* neo.c: each returns an HTTP status and fills body. */
int		 neo_calendar(unsigned int clinic, struct evkeyvalq *query,
		    struct sim_session *, struct evbuffer *body);
int		 neo_page_data(unsigned int clinic, const char *id,
		    struct evbuffer *body);
/* The visible consultation of that clinic with that id, or NULL. */
const struct sim_appt *neo_lookup(unsigned int clinic, const char *id);
int		 neo_expected(struct evkeyvalq *query, struct evbuffer *body);

/* html.c */
void		 html_escape(struct evbuffer *, const char *);
void		 html_login(struct evbuffer *, const char *csrf,
		    const char *error);
void		 html_dashboard(struct evbuffer *, unsigned int clinic);
int		 html_list(unsigned int clinic, struct evkeyvalq *query,
		    struct evbuffer *body);
int		 html_detail(unsigned int clinic, const char *id,
		    struct evbuffer *body);
void		 html_expired(struct evbuffer *);

/* mutate.c: apply sim.knobs.body to an answer. */
void		 mutate_body(struct evbuffer *, bool json);
void		 mutate_free(void);

/* jwks.c: Supabase's JWKS document, steered by POST /__sim/jwks. */
bool		 jwks_route(struct evhttp_request *, const char *path);
int		 jwks_control(struct evhttp_request *, struct evbuffer *body);
void		 jwks_free(void);

/* control.c */
int		 control_apply(const char *json, size_t len, struct buf *err);
void		 control_knobs(struct evbuffer *);
void		 control_stats(struct evbuffer *);
void		 control_stats_reset(void);
/* How expired sessions answer now: 401 or 302. */
int		 control_expiry(void);
int		 control_parse_body(const char *, enum sim_body *);
int		 control_parse_locked(const char *);

/* smtp.c: the SMTP sink on a port of its own (--smtp-port-file). */
struct event_base;
int		 smtp_start(struct event_base *, const char *bind_addr,
		    const char *user, const char *password,
		    unsigned int *ret_port);
void		 smtp_free(void);
/* GET /__sim/mail: the messages, the counters and the knobs. */
void		 smtp_inspect(struct evbuffer *);
/* As services_control_begin() for the smtp_ knobs (see smtp.c). */
int		 smtp_control_begin(const char *json, size_t len,
		    struct buf *err, char **ret_rest);
void		 smtp_control_end(bool apply);

#endif
