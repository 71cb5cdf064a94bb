/*
 * Cookie sessions of the simulator: a random token per login, a lifetime
 * (--session-ttl-ms, else the 8 hours the cookie's Max-Age announces) and a
 * request budget (--session-max-requests), both counted per session.  An
 * expired session stays in the table, so that it keeps answering "expired"
 * rather than "never logged in", until logout or the table is pruned.
 */
#include <sys/queue.h>
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "tests/sim/sim.h"

#define SESSION_BUCKETS		4096
#define SESSION_MAX		200000
#define SESSION_LIFETIME_MS	(8ULL * 3600 * 1000)

struct sim_session {
	char			 token[33];
	unsigned int		 clinic;
	uint64_t		 created_ms;
	uint64_t		 requests;
	uint64_t		 calendar_n;
	bool			 expired;
	struct sim_session	*next;		/* in its bucket */
	TAILQ_ENTRY(sim_session) entry;		/* oldest first */
};

static struct sim_session *buckets[SESSION_BUCKETS];
static TAILQ_HEAD(, sim_session) sessions = TAILQ_HEAD_INITIALIZER(sessions);
static size_t nsessions;

void
session_random_token(char hex[33])
{
	unsigned char r[16];
	size_t i;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		fatal("getrandom");
	for (i = 0; i < sizeof(r); i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
}

static unsigned int
hash(const char *s)
{
	unsigned int h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % SESSION_BUCKETS;
}

static bool
expired(struct sim_session *s)
{
	uint64_t ttl = sim.knobs.session_ttl_ms;

	if (ttl == 0)
		ttl = SESSION_LIFETIME_MS;
	if (clock_mono_ms() - s->created_ms >= ttl)
		s->expired = true;
	if (sim.knobs.session_max_requests != 0 &&
	    s->requests > sim.knobs.session_max_requests)
		s->expired = true;
	return s->expired;
}

struct sim_session *
session_new(unsigned int clinic)
{
	struct sim_session *s, *t;
	unsigned int h;

	if (nsessions >= SESSION_MAX) {
		/* Drop the expired, then the oldest. */
		for (s = TAILQ_FIRST(&sessions); s != NULL; s = t) {
			t = TAILQ_NEXT(s, entry);
			if (expired(s))
				session_free(s);
		}
		if (nsessions >= SESSION_MAX)
			session_free(TAILQ_FIRST(&sessions));
	}
	s = xcalloc(1, sizeof(*s));
	session_random_token(s->token);
	s->clinic = clinic;
	s->created_ms = clock_mono_ms();
	h = hash(s->token);
	s->next = buckets[h];
	buckets[h] = s;
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	nsessions++;
	return s;
}

struct sim_session *
session_find(const char *token)
{
	struct sim_session *s;

	if (token == NULL || strlen(token) != 32)
		return NULL;
	for (s = buckets[hash(token)]; s != NULL; s = s->next)
		if (strcmp(s->token, token) == 0)
			return s;
	return NULL;
}

void
session_free(struct sim_session *s)
{
	struct sim_session **pp;

	if (s == NULL)
		return;
	for (pp = &buckets[hash(s->token)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	TAILQ_REMOVE(&sessions, s, entry);
	nsessions--;
	explicit_bzero(s->token, sizeof(s->token));
	free(s);
}

void
session_expire_all(void)
{
	struct sim_session *s;

	TAILQ_FOREACH(s, &sessions, entry)
		s->expired = true;
}

void
session_free_all(void)
{
	while (!TAILQ_EMPTY(&sessions))
		session_free(TAILQ_FIRST(&sessions));
}

const char *
session_token(const struct sim_session *s)
{
	return s->token;
}

unsigned int
session_clinic(const struct sim_session *s)
{
	return s->clinic;
}

bool
session_use(struct sim_session *s)
{
	if (s->expired)
		return false;
	s->requests++;
	return !expired(s);
}

uint64_t
session_next_calendar(struct sim_session *s)
{
	return s->calendar_n++;
}
