/*
 * Inside the IDEXX Neo client: the state of one flow and the helpers
 * client.c (login, sessions, requests, the result) lends to
 * client_records.c (what each flow fetches and reads).  Not for use
 * outside those two files.
 *
 * Helpers that can fail return 0 to go on and -1 to stop; the reason is
 * then in the result (client_fail*: the first failure wins) or in
 * sink_err when the supervisor could not be told.
 */
#ifndef VS_WORKER_CLIENT_INT_H
#define VS_WORKER_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/client.h"
#include "worker/extract.h"
#include "worker/http.h"

#define CLIENT_LOGINS_MAX	16	/* renewals per job, a backstop */
#define CLIENT_PAGES_MAX	500	/* prd-html list pages */
#define CLIENT_ROWS_MAX		20000	/* consultations per job */
#define CLIENT_FP_KINDS		8

struct client {
	const struct client_params *p;
	const struct client_sink *sink;
	struct client_result *res;
	struct http_config hc;
	struct http *http;
	bool html;
	const char *login_path;
	const char *fp_sent[CLIENT_FP_KINDS];
	size_t n_fp_sent;
	unsigned ok_since_login;
	unsigned logins;
	bool failed;
	bool logged_in;
	int sink_err;
	/* the batch running now */
	int (*each)(struct client *, struct http_req *);
	const char *batch_kind;
	uint32_t batch_done, batch_total;
};

/* What a finished request says about the session. */
#define CLIENT_EXPIRED	1

int client_fail(struct client *, enum client_status, const char *cls,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A request without a usable answer: its class, with a snapshot. */
int client_fail_req(struct client *, const struct http_req *,
    const char *what);
/* The extractor did not find what the profile says: UI_CHANGED. */
int client_fail_extract(struct client *, const struct http_req *,
    const char *what, const struct extract_error *);
/* A JSON body must be UTF-8 as a whole: else FAILED "encoding". */
int client_check_utf8(struct client *, const struct http_req *,
    const char *what);
/* Send the structure of a kind of response, once per kind per job. */
int client_fingerprint(struct client *, const char *kind,
    const struct http_req *, bool html);
int client_progress(struct client *, enum client_stage, uint32_t done,
    uint32_t total);
/* A sink callback's return: kept in sink_err, -1 when nonzero. */
int client_sink_rc(struct client *, int r);

/* An endpoint with {id}, {start}, {end}, {page}... filled (malloc'd). */
char *client_expand(struct client *, const char *tmpl, const char *id,
    unsigned page);
/* An endpoint with the window appended unless templated (malloc'd). */
char *client_window_path(struct client *, const char *tmpl,
    const char *kstart, const char *kend, bool dates, unsigned page);
/* Is a clinic-local time inside the job's window (or unplaceable)? */
bool client_in_window(struct client *, const char *date);
/* A URL from a page as a path on the base URL; NULL if elsewhere. */
char *client_local_path(struct client *, const char *url,
    const char *relto);

/* One request on the session (renewed when it expires); 2xx or fail. */
int client_get(struct client *, struct http_req *, const char *what);
/* Requests in parallel on the session; each() reads one as it lands. */
int client_batch(struct client *, struct http_req **, size_t n,
    const char *kind, int (*each)(struct client *, struct http_req *));

/* client_records.c: the flows' fetching and reading. */
int client_records_schedule(struct client *);
int client_records_notes_json(struct client *);
int client_records_notes_html(struct client *);

#endif
