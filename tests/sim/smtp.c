/*
 * The simulator's SMTP sink: a mail server on a port of its own
 * (--smtp-port-file FILE), speaking the ESMTP that libcurl's smtp://
 * needs: EHLO/HELO, AUTH PLAIN and LOGIN (offered only when --smtp-user
 * and --smtp-password are given, and then required), MAIL FROM, RCPT TO,
 * DATA (dot-unstuffed, at most SMTP_DATA_MAX bytes), RSET, NOOP, QUIT.
 * Plain text only: it listens on loopback for tests.
 *
 * Every accepted message is kept for GET /__sim/mail: envelope, the user
 * that authenticated (never the password) and the data.  Knobs, in a POST
 * /__sim/control body beside the others:
 *   smtp_fail "none"|"4xx"|"5xx"|"drop"   refuse MAIL FROM with 451 (try
 *                               later) or 554 (for good), or close the
 *                               connection unanswered (a new one at once,
 *                               one a client kept open at its MAIL FROM)
 *   smtp_fail_next N            only the next N transactions fail (0: all)
 * The knob is taken at each MAIL FROM, not per connection: libcurl keeps
 * a connection open and sends the next mail over it.
 *   smtp_slow_ms MS             every reply that much later
 *   smtp_reset true             forget the messages and the counters
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "tests/sim/sim.h"

#define SMTP_LINE_MAX	4096
#define SMTP_DATA_MAX	(1024 * 1024)
#define SMTP_RCPT_MAX	100
#define SMTP_KEEP_MAX	10000		/* messages kept */

enum smtp_fail { FAIL_NONE, FAIL_4XX, FAIL_5XX, FAIL_DROP };

enum smtp_phase {
	PH_COMMAND,
	PH_DATA,
	PH_AUTH_PLAIN,		/* waiting for the PLAIN response */
	PH_AUTH_USER,		/* LOGIN: the user name */
	PH_AUTH_PASS,		/* LOGIN: the password */
};

struct sknobs {
	enum smtp_fail	fail;
	uint64_t	fail_next;
	uint64_t	slow_ms;
};

struct conn {
	struct bufferevent	*bev;
	struct event		*timer;		/* slow replies */
	struct evbuffer		*pending;	/* replies waiting for it */
	enum smtp_phase		 phase;
	bool			 drop;		/* close it unanswered */
	bool			 authed;
	bool			 closing;
	char			 user[256];
	char			*from;
	json_t			*rcpt;
	struct buf		 data;
	bool			 too_big;
	LIST_ENTRY(conn)	 entry;
};

static struct {
	struct event_base		*base;
	struct evconnlistener		*listener;
	const char			*user, *password;
	struct sknobs			 k, staged;
	bool				 have_stage, reset;
	json_t				*messages;
	uint64_t			 sessions, refused_4xx, refused_5xx;
	uint64_t			 dropped, auth_failed;
	LIST_HEAD(, conn)		 conns;
} s;

static void
conn_free(struct conn *c)
{
	LIST_REMOVE(c, entry);
	bufferevent_free(c->bev);
	event_free(c->timer);
	evbuffer_free(c->pending);
	free(c->from);
	json_decref(c->rcpt);
	buf_release(&c->data);
	free(c);
}

static void
flush_pending(struct conn *c)
{
	bufferevent_write_buffer(c->bev, c->pending);
	if (c->closing) {
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_free(c);
		return;
	}
	bufferevent_enable(c->bev, EV_READ);
}

static void
slow_fire(evutil_socket_t fd, short what, void *arg)
{
	flush_pending(arg);
}

/* Send what is pending, now or after smtp_slow_ms. */
static void
arm(struct conn *c)
{
	struct timeval tv;

	if (s.k.slow_ms == 0) {
		flush_pending(c);
		return;
	}
	bufferevent_disable(c->bev, EV_READ);
	tv = clock_timeval_ms(s.k.slow_ms);
	evtimer_add(c->timer, &tv);
}

/* One reply line (or several, CRLF-separated, already formed). */
static void
reply(struct conn *c, const char *text)
{
	evbuffer_add_printf(c->pending, "%s\r\n", text);
	arm(c);
}

static void
reply_close(struct conn *c, const char *text)
{
	c->closing = true;
	reply(c, text);
}

static void
reset_txn(struct conn *c)
{
	free(c->from);
	c->from = NULL;
	json_array_clear(c->rcpt);
	buf_reset(&c->data);
	c->too_big = false;
}

/* Standard base64 (RFC 4648 §4), as AUTH uses it. */
static int
b64_decode(const char *in, char *out, size_t outsz, size_t *ret_len)
{
	size_t len = strlen(in), pad = 0;
	int n;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 >= outsz)
		return -EINVAL;
	if ((n = EVP_DecodeBlock((unsigned char *)out,
	    (const unsigned char *)in, (int)len)) < 0)
		return -EINVAL;
	while (pad < 2 && in[len - 1 - pad] == '=')
		pad++;
	*ret_len = (size_t)n - pad;
	out[*ret_len] = '\0';
	return 0;
}

static void
auth_check(struct conn *c, const char *user, const char *pass)
{
	if (strcmp(user, s.user) == 0 && strcmp(pass, s.password) == 0) {
		c->authed = true;
		snprintf(c->user, sizeof(c->user), "%s", user);
		reply(c, "235 2.7.0 Authentication successful");
	} else {
		s.auth_failed++;
		reply(c, "535 5.7.8 Authentication credentials invalid");
	}
}

static void
auth_plain(struct conn *c, const char *b64)
{
	char dec[1024];
	const char *user, *pass;
	size_t n;

	c->phase = PH_COMMAND;
	if (b64_decode(b64, dec, sizeof(dec), &n) < 0 ||
	    (user = memchr(dec, '\0', n)) == NULL || user + 1 >= dec + n) {
		reply(c, "501 5.5.2 Cannot decode the response");
		return;
	}
	user++;
	pass = user + strlen(user) + 1;
	if (pass > dec + n) {
		reply(c, "501 5.5.2 Cannot decode the response");
		return;
	}
	auth_check(c, user, pass);
	explicit_bzero(dec, sizeof(dec));
}

static char *
arg_address(const char *p)
{
	const char *lt = strchr(p, '<'), *gt;

	if (lt == NULL || (gt = strchr(lt, '>')) == NULL)
		return NULL;
	return xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

static void
message_done(struct conn *c)
{
	json_t *m;
	char id[32];

	if (c->too_big) {
		reply(c, "552 5.3.4 Message too big");
		reset_txn(c);
		return;
	}
	if (json_array_size(s.messages) < SMTP_KEEP_MAX) {
		m = json_pack("{s:s,s:o,s:s,s:s#,s:I}", "from", c->from,
		    "rcpt", json_copy(c->rcpt), "auth_user", c->user, "data",
		    c->data.data != NULL ? c->data.data : "", c->data.len,
		    "at_ms", (json_int_t)clock_wall_ms());
		if (m == NULL)
			m = json_pack("{s:s,s:o,s:s,s:s}", "from", c->from,
			    "rcpt", json_copy(c->rcpt), "auth_user", c->user,
			    "data",
			    "(not UTF-8)");
		json_array_append_new(s.messages, m);
	}
	log_info("smtp: message %zu from <%s> to %zu recipient(s), %zu "
	    "bytes", json_array_size(s.messages), log_q(c->from),
	    json_array_size(c->rcpt), c->data.len);
	snprintf(id, sizeof(id), "%zu", json_array_size(s.messages));
	evbuffer_add_printf(c->pending, "250 2.0.0 Ok: queued as %s\r\n", id);
	reset_txn(c);
	arm(c);
}

static void
data_line(struct conn *c, const char *line, size_t len)
{
	if (len == 1 && line[0] == '.') {
		c->phase = PH_COMMAND;
		message_done(c);
		return;
	}
	if (len > 0 && line[0] == '.') {
		line++;
		len--;
	}
	if (c->too_big || buf_append(&c->data, line, len) < 0 ||
	    buf_append(&c->data, "\r\n", 2) < 0)
		c->too_big = true;
}

static bool
verb(const char *line, const char *v)
{
	size_t n = strlen(v);

	return strncasecmp(line, v, n) == 0 && (line[n] == '\0' ||
	    line[n] == ' ' || line[n] == ':');
}

/* The failure the knobs ask of this transaction (or connection). */
static enum smtp_fail
take_fail(void)
{
	enum smtp_fail f = s.k.fail;

	if (f != FAIL_NONE && s.k.fail_next > 0 && --s.k.fail_next == 0)
		s.k.fail = FAIL_NONE;
	return f;
}

static void
command(struct conn *c, const char *line)
{
	enum smtp_fail f;
	char *addr;

	if (verb(line, "EHLO")) {
		reset_txn(c);
		reply(c, s.user != NULL ? "250-sim.test\r\n250-8BITMIME\r\n"
		    "250-SIZE 1048576\r\n250-AUTH PLAIN LOGIN\r\n250 HELP" :
		    "250-sim.test\r\n250-8BITMIME\r\n250-SIZE 1048576\r\n"
		    "250 HELP");
	} else if (verb(line, "HELO")) {
		reset_txn(c);
		reply(c, "250 sim.test");
	} else if (verb(line, "AUTH") && s.user != NULL && !c->authed) {
		const char *mech = line + 5;

		if (strncasecmp(mech, "PLAIN", 5) == 0 && mech[5] == ' ')
			auth_plain(c, mech + 6);
		else if (strncasecmp(mech, "PLAIN", 5) == 0) {
			c->phase = PH_AUTH_PLAIN;
			reply(c, "334 ");
		} else if (strncasecmp(mech, "LOGIN", 5) == 0) {
			c->phase = PH_AUTH_USER;
			reply(c, "334 VXNlcm5hbWU6");
		} else
			reply(c, "504 5.5.4 Unrecognized authentication type");
	} else if (verb(line, "MAIL")) {
		if (s.user != NULL && !c->authed)
			reply(c, "530 5.7.0 Authentication required");
		else if ((f = take_fail()) == FAIL_DROP) {
			s.dropped++;
			c->drop = true;
		} else if (f == FAIL_4XX) {
			s.refused_4xx++;
			reply(c, "451 4.3.0 Try again later");
		} else if (f == FAIL_5XX) {
			s.refused_5xx++;
			reply(c, "554 5.7.1 Refused by policy");
		} else if ((addr = arg_address(line)) == NULL)
			reply(c, "501 5.1.7 Bad sender address syntax");
		else {
			reset_txn(c);
			c->from = addr;
			reply(c, "250 2.1.0 Ok");
		}
	} else if (verb(line, "RCPT")) {
		if (c->from == NULL)
			reply(c, "503 5.5.1 Need MAIL first");
		else if (json_array_size(c->rcpt) >= SMTP_RCPT_MAX)
			reply(c, "452 4.5.3 Too many recipients");
		else if ((addr = arg_address(line)) == NULL)
			reply(c, "501 5.1.3 Bad recipient address syntax");
		else {
			json_array_append_new(c->rcpt, json_string(addr));
			free(addr);
			reply(c, "250 2.1.5 Ok");
		}
	} else if (verb(line, "DATA")) {
		if (c->from == NULL || json_array_size(c->rcpt) == 0)
			reply(c, "503 5.5.1 Need RCPT first");
		else {
			c->phase = PH_DATA;
			reply(c, "354 End data with <CR><LF>.<CR><LF>");
		}
	} else if (verb(line, "RSET")) {
		reset_txn(c);
		reply(c, "250 2.0.0 Ok");
	} else if (verb(line, "NOOP"))
		reply(c, "250 2.0.0 Ok");
	else if (verb(line, "QUIT"))
		reply_close(c, "221 2.0.0 Bye");
	else
		reply(c, "502 5.5.2 Command not recognized");
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line, dec[1024];
	size_t len, n;

	while (!c->closing && (line = evbuffer_readln(in, &len,
	    EVBUFFER_EOL_CRLF)) != NULL) {
		if (len > SMTP_LINE_MAX) {
			free(line);
			reply_close(c, "500 5.5.0 Line too long");
			return;
		}
		switch (c->phase) {
		case PH_DATA:
			data_line(c, line, len);
			break;
		case PH_AUTH_PLAIN:
			auth_plain(c, line);
			break;
		case PH_AUTH_USER:
			if (b64_decode(line, dec, sizeof(dec), &n) == 0 &&
			    n < sizeof(c->user)) {
				memcpy(c->user, dec, n + 1);
				c->phase = PH_AUTH_PASS;
				reply(c, "334 UGFzc3dvcmQ6");
			} else {
				c->phase = PH_COMMAND;
				reply(c, "501 5.5.2 Cannot decode");
			}
			break;
		case PH_AUTH_PASS:
			c->phase = PH_COMMAND;
			if (b64_decode(line, dec, sizeof(dec), &n) == 0) {
				char user[256];

				snprintf(user, sizeof(user), "%s", c->user);
				c->user[0] = '\0';
				auth_check(c, user, dec);
			} else
				reply(c, "501 5.5.2 Cannot decode");
			explicit_bzero(dec, sizeof(dec));
			break;
		default:
			command(c, line);
			break;
		}
		explicit_bzero(line, len);
		free(line);
		if (c->drop) {
			conn_free(c);
			return;
		}
		/* A slow reply holds the rest until it is sent. */
		if (s.k.slow_ms > 0 && evtimer_pending(c->timer, NULL))
			return;
	}
	if (evbuffer_get_length(in) > SMTP_LINE_MAX)
		reply_close(c, "500 5.5.0 Line too long");
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing && evbuffer_get_length(c->pending) == 0 &&
	    !evtimer_pending(c->timer, NULL))
		conn_free(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct conn *c;

	s.sessions++;
	c = xcalloc(1, sizeof(*c));
	if ((c->bev = bufferevent_socket_new(s.base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    (c->timer = evtimer_new(s.base, slow_fire, c)) == NULL ||
	    (c->pending = evbuffer_new()) == NULL)
		fatalx("out of memory");
	c->rcpt = json_array();
	buf_init(&c->data, SMTP_DATA_MAX);
	LIST_INSERT_HEAD(&s.conns, c, entry);
	if (s.k.fail == FAIL_DROP) {
		(void)take_fail();
		s.dropped++;
		conn_free(c);
		return;
	}
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	reply(c, "220 sim.test ESMTP idexx_sim");
}

int
smtp_start(struct event_base *base, const char *bind_addr,
    const char *user, const char *password, unsigned int *ret_port)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	socklen_t len = sizeof(ss);

	s.base = base;
	s.user = user;
	s.password = password;
	s.messages = json_array();
	LIST_INIT(&s.conns);
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(bind_addr, (struct sockaddr *)&ss,
	    &sslen) != 0)
		return -EINVAL;
	s.listener = evconnlistener_new_bind(base, on_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    16, (struct sockaddr *)&ss, sslen);
	if (s.listener == NULL)
		return -EADDRINUSE;
	if (getsockname(evconnlistener_get_fd(s.listener),
	    (struct sockaddr *)&ss, &len) != 0)
		return -errno;
	*ret_port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

void
smtp_free(void)
{
	struct conn *c;

	while ((c = LIST_FIRST(&s.conns)) != NULL)
		conn_free(c);
	if (s.listener != NULL)
		evconnlistener_free(s.listener);
	s.listener = NULL;
	json_decref(s.messages);
	s.messages = NULL;
}

void
smtp_inspect(struct evbuffer *b)
{
	static const char *const fails[] = { "none", "4xx", "5xx", "drop" };
	json_t *j;
	char *t;

	j = json_pack("{s:o,s:I,s:I,s:I,s:I,s:I,s:{s:s,s:I,s:I}}",
	    "messages", s.messages != NULL ? json_incref(s.messages) :
	    json_array(),
	    "sessions", (json_int_t)s.sessions,
	    "refused_4xx", (json_int_t)s.refused_4xx,
	    "refused_5xx", (json_int_t)s.refused_5xx,
	    "dropped", (json_int_t)s.dropped,
	    "auth_failed", (json_int_t)s.auth_failed,
	    "knobs", "fail", fails[s.k.fail],
	    "fail_next", (json_int_t)s.k.fail_next,
	    "slow_ms", (json_int_t)s.k.slow_ms);
	if (j == NULL || (t = json_dumps(j, JSON_COMPACT)) == NULL)
		fatalx("cannot build a JSON answer");
	evbuffer_add(b, t, strlen(t));
	free(t);
	json_decref(j);
}

static int
stage(const char *key, json_t *v)
{
	const char *f;

	if (strcmp(key, "smtp_fail") == 0) {
		if ((f = json_string_value(v)) == NULL)
			return -EINVAL;
		if (strcmp(f, "none") == 0)
			s.staged.fail = FAIL_NONE;
		else if (strcmp(f, "4xx") == 0)
			s.staged.fail = FAIL_4XX;
		else if (strcmp(f, "5xx") == 0)
			s.staged.fail = FAIL_5XX;
		else if (strcmp(f, "drop") == 0)
			s.staged.fail = FAIL_DROP;
		else
			return -EINVAL;
	} else if (strcmp(key, "smtp_fail_next") == 0) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 1000000)
			return -EINVAL;
		s.staged.fail_next = (uint64_t)json_integer_value(v);
	} else if (strcmp(key, "smtp_slow_ms") == 0) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 600000)
			return -EINVAL;
		s.staged.slow_ms = (uint64_t)json_integer_value(v);
	} else if (strcmp(key, "smtp_reset") == 0) {
		if (!json_is_true(v))
			return -EINVAL;
		s.reset = true;
	} else
		return -ENOENT;
	return 0;
}

int
smtp_control_begin(const char *text, size_t len, struct buf *err,
    char **ret_rest)
{
	json_error_t jerr;
	json_t *top, *rest = NULL, *v;
	const char *key;
	int r = 0;

	s.staged = s.k;
	s.reset = false;
	s.have_stage = false;
	top = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (top == NULL || !json_is_object(top)) {
		buf_printf(err, "control: not a JSON object");
		r = -EINVAL;
		goto out;
	}
	rest = json_object();
	json_object_foreach(top, key, v) {
		if (strncmp(key, "smtp_", 5) != 0) {
			json_object_set(rest, key, v);
			continue;
		}
		if ((r = stage(key, v)) != 0) {
			buf_printf(err, "control: %s knob '%s'", r == -ENOENT ?
			    "unknown" : "bad value for", log_q(key));
			goto out;
		}
		s.have_stage = true;
	}
	if ((*ret_rest = json_dumps(rest, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
out:
	json_decref(rest);
	json_decref(top);
	return r;
}

void
smtp_control_end(bool apply)
{
	if (apply && s.have_stage) {
		s.k = s.staged;
		if (s.reset) {
			json_array_clear(s.messages);
			s.sessions = s.refused_4xx = s.refused_5xx = 0;
			s.dropped = s.auth_failed = 0;
		}
	}
	s.have_stage = false;
	s.reset = false;
}
