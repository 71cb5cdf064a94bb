/*
 * Inside the simulator's QStash: the state qstash.c (the API, the message
 * store, the clock, the knobs) shares with qstash_deliver.c (signing,
 * delivery attempts, retries).  Only those two include this; the rest of
 * the simulator sees tests/sim/services.h.
 */
#ifndef VS_TESTS_SIM_QSTASH_H
#define VS_TESTS_SIM_QSTASH_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp_connection;
struct services_opts;
struct evhttp_request;
struct json_t;

#define MSG_ID_LEN		(4 + 26)	/* "msg_" + 26 */
#define MSG_MAX			1000000
#define MSG_HISTORY_MAX		32		/* attempts kept per message */
#define HASH_SIZE		65536
#define BACKOFF_MAX_S		86400
#define JWT_LIFETIME_S		300
#define KEY_MAX			256
#define DEDUP_ID_MAX		512

enum msg_state {
	MSG_PENDING,
	MSG_DELIVERED,
	MSG_FAILED,
	MSG_CANCELLED,
};

struct msg {
	char			 id[MSG_ID_LEN + 1];
	char			*dest;
	char			*method;
	char			*ctype;
	char			*dedup;		/* NULL: none */
	char			*caller;	/* publisher's address */
	void			*body;
	size_t			 len;
	json_t			*received;	/* publish headers, redacted */
	json_t			*forward;	/* name -> value */
	json_t			*history;	/* one object per attempt */
	int64_t			 created_ms;	/* QStash clock */
	int64_t			 not_before_ms;
	int64_t			 next_ms;	/* next attempt */
	unsigned int		 retries;
	unsigned int		 retried;
	unsigned int		 attempts;
	unsigned int		 inflight;
	unsigned int		 dup_left;	/* duplicates still to send */
	unsigned int		 requests;	/* publishes answered with it */
	bool			 orphan;	/* reset while on the wire */
	enum msg_state		 state;
	int			 last_status;
	struct msg		*id_next;	/* hash chains */
	struct msg		*dedup_next;
	TAILQ_ENTRY(msg)	 all;
	TAILQ_ENTRY(msg)	 active;	/* while pending */
};

TAILQ_HEAD(msg_list, msg);

enum down_mode {
	DOWN_NO,
	DOWN_503,
	DOWN_CLOSE,
};

enum sign_mode {
	SIGN_CURRENT,
	SIGN_NEXT,
	SIGN_UNKNOWN,
	SIGN_CORRUPT,
};

struct qknobs {
	uint64_t	 fail_next;
	uint64_t	 fail_code;
	uint64_t	 rate_429;	/* millionths */
	uint64_t	 rate_5xx;
	uint64_t	 retry_after;
	uint64_t	 slow_ms;
	uint64_t	 duplicate;	/* next N messages delivered twice */
	bool		 dup_concurrent;
	enum down_mode	 down;
	enum sign_mode	 sign;
	int64_t		 sign_skew;	/* seconds added to iat/nbf/exp */
	uint64_t	 timeout_s;
	uint64_t	 dedup_window_s;
	uint64_t	 max_retries;
	uint64_t	 parallel;
	char		 current_key[KEY_MAX];
	char		 next_key[KEY_MAX];
};

struct qstats {
	uint64_t	publishes;	/* requests to /v2/publish */
	uint64_t	published;	/* 200: enqueued */
	uint64_t	deduplicated;	/* 202 */
	uint64_t	unauthorized;
	uint64_t	bad_requests;
	uint64_t	r429;
	uint64_t	r5xx;
	uint64_t	closed;
	uint64_t	deliveries;	/* requests sent to destinations */
	uint64_t	delivered;
	uint64_t	retries;
	uint64_t	failed;
	uint64_t	cancelled;
	uint64_t	duplicates;
};

/* A staged control request: knobs and actions applied together. */
struct qstage {
	struct qknobs	 k;
	bool		 scale_set;
	uint64_t	 scale;
	uint64_t	 advance_s;
	bool		 reset;
};

/* The one QStash of the simulator. */
struct qstash {
	struct event_base	*base;
	const char		*token;
	struct qknobs		 k;
	struct qstats		 st;
	struct msg_list		 all;
	struct msg_list		 active;
	size_t			 nmsgs;
	struct msg		*by_id[HASH_SIZE];
	struct msg		*by_dedup[HASH_SIZE];
	/* The clock: sim0_ms at mono0, running scale times real time. */
	uint64_t		 mono0;
	int64_t			 sim0_ms;
	uint64_t		 scale;
	struct qstage		*stage;
};

extern struct qstash qs;

/* qstash.c */
/* The QStash clock, in Unix milliseconds. */
int64_t		 qstash_now_ms(void);
/* Leave the pending state for another (delivered, failed, cancelled). */
void		 qstash_finish(struct msg *, enum msg_state);
void		 qstash_msg_free(struct msg *);
/* prefix followed by random characters up to n, NUL-terminated at out[n]. */
void		 qstash_random_id(char *out, size_t n, const char *prefix);
int		 qstash_parse_delay(const char *, uint64_t *ret_ms);
void		 qstash_publish(struct evhttp_request *, const char *dest);
void		 qstash_cancel(struct evhttp_request *, const char *id);
void		 qstash_cancel_bulk(struct evhttp_request *);
void		 qstash_init(struct event_base *, const struct services_opts *);
void		 qstash_free(void);
/* Stage one qstash_ knob: 0, -ENOENT (unknown) or -EINVAL (bad value). */
int		 qstash_control_stage(const char *key, struct json_t *value);
void		 qstash_control_end(bool apply);

/* qstash_deliver.c */
/* Look for due messages in at most real_ms (sooner if already armed). */
void		 qstash_arm(uint64_t real_ms);
void		 qstash_deliver_init(void);
/* Drop attempts still on the wire, without their callbacks. */
void		 qstash_deliver_free(void);

#endif
