/*
 * Frames of the supervisor <-> worker channel: encoding, decoding and the
 * validation both share, and one-packet send and receive.
 *
 * Validation walks the generated descriptors beside the limit tables of
 * frame_limits.c, so every field of every message is checked by one piece
 * of code, and a field without a limit is refused rather than let through.
 * Deliberate quirks: decoded envelopes are allocated through an allocator
 * that wipes on free, since a Job carries credentials; and a decoded frame
 * must re-encode to exactly its own length, which rejects the encodings
 * protobuf-c accepts but never produces (duplicate fields, overlong
 * varints, strings with a NUL inside).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "common/utf8.h"
#include "common/xmalloc.h"

#include "proto/frame.h"
#include "proto/frame_limits.h"
#include "proto/vetsync.pb-c.h"

/* Deeper than the schema nests (envelope, consultation, lines, field). */
#define FRAME_DEPTH_MAX		8

/* File descriptors a refused packet may carry that we close ourselves; the
   kernel drops those that do not fit, so none leaks either way. */
#define FRAME_RECV_FDS		16

/* Send buffer: one frame, its header and the kernel's skb overhead. */
#define FRAME_SNDBUF		(FRAME_MAX + 16384)

struct frame_vctx {
	char *err;
	size_t errsz;
	size_t depth;
	struct {
		const char *name;
		long index;	/* repeated element, or -1 */
	} path[FRAME_DEPTH_MAX];
};

static int frame_fail(char *, size_t, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));
static int frame_vfail(struct frame_vctx *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static int frame_validate_message(struct frame_vctx *,
    const ProtobufCMessage *);

static void *
frame_alloc(void *data, size_t size)
{
	return xmalloc(size);
}

static void
frame_wipe_free(void *data, void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static ProtobufCAllocator frame_allocator = {
	.alloc = frame_alloc,
	.free = frame_wipe_free,
	.allocator_data = NULL,
};

static int
frame_fail(char *err, size_t errsz, int error, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return error;
}

/* Fail naming the field being checked: "consultation.lines[3].name: ...". */
static int
frame_vfail(struct frame_vctx *v, int error, const char *fmt, ...)
{
	char path[FRAME_ERR_MAX / 2], msg[FRAME_ERR_MAX];
	size_t i, off = 0;
	va_list ap;
	int n;

	if (v->err == NULL || v->errsz == 0)
		return error;
	path[0] = '\0';
	for (i = 0; i < v->depth && off < sizeof(path); i++) {
		if (v->path[i].index >= 0)
			n = snprintf(path + off, sizeof(path) - off,
			    "%s%s[%ld]", i > 0 ? "." : "", v->path[i].name,
			    v->path[i].index);
		else
			n = snprintf(path + off, sizeof(path) - off, "%s%s",
			    i > 0 ? "." : "", v->path[i].name);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return frame_fail(v->err, v->errsz, error, "%s: %s",
	    v->depth > 0 ? path : "envelope", msg);
}

static int
frame_vpush(struct frame_vctx *v, const char *name)
{
	if (v->depth == FRAME_DEPTH_MAX)
		return frame_vfail(v, -EPROTO, "nested too deep");
	v->path[v->depth].name = name;
	v->path[v->depth].index = -1;
	v->depth++;
	return 0;
}

/* Not isdigit(): that one depends on the locale. */
static bool
frame_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static unsigned int
frame_two_digits(const char *s)
{
	return (unsigned int)(s[0] - '0') * 10 + (unsigned int)(s[1] - '0');
}

/*
 * "YYYY-MM-DD HH:MM:SS" (clinic-local) or, with utc, "YYYY-MM-DDTHH:MM:SSZ";
 * each part in range (days not per month).
 */
static bool
frame_is_time(const char *s, size_t len, bool utc)
{
	const char *form = utc ? "dddd-dd-ddTdd:dd:ddZ" : "dddd-dd-dd dd:dd:dd";
	size_t i;

	if (len != strlen(form))
		return false;
	for (i = 0; i < len; i++) {
		if (form[i] == 'd' ? !frame_is_digit(s[i]) : s[i] != form[i])
			return false;
	}
	return frame_two_digits(s + 5) >= 1 && frame_two_digits(s + 5) <= 12 &&
	    frame_two_digits(s + 8) >= 1 && frame_two_digits(s + 8) <= 31 &&
	    frame_two_digits(s + 11) <= 23 && frame_two_digits(s + 14) <= 59 &&
	    frame_two_digits(s + 17) <= 59;
}

static bool
frame_is_hostname(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || frame_is_digit(s[i]) || s[i] == '-' ||
		    s[i] == '.'))
			return false;
	}
	return true;
}

static bool
frame_is_ipaddr(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, s, &a4) == 1 ||
	    inet_pton(AF_INET6, s, &a6) == 1;
}

static bool
frame_is_sha256(const char *s, size_t len)
{
	size_t i;

	if (len != 64)
		return false;
	for (i = 0; i < len; i++) {
		if (!frame_is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	}
	return true;
}

static int
frame_validate_string(struct frame_vctx *v, const struct frame_limit *l,
    const char *s)
{
	size_t len;

	if (s == NULL)
		return frame_vfail(v, -EPROTO, "missing");
	len = strlen(s);
	if (len > l->max)
		return frame_vfail(v, -EPROTO, "%zu bytes over the %llu limit",
		    len, (unsigned long long)l->max);
	if ((l->flags & FRAME_F_NONEMPTY) && len == 0)
		return frame_vfail(v, -EPROTO, "empty");
	if (!utf8_valid(s, len))
		return frame_vfail(v, -EPROTO, "invalid UTF-8");
	if ((l->flags & FRAME_F_LOCALTIME) && !frame_is_time(s, len, false))
		return frame_vfail(v, -EPROTO, "not YYYY-MM-DD HH:MM:SS");
	if ((l->flags & FRAME_F_UTCTIME) && !frame_is_time(s, len, true))
		return frame_vfail(v, -EPROTO, "not YYYY-MM-DDTHH:MM:SSZ");
	if ((l->flags & FRAME_F_HOSTNAME) && !frame_is_hostname(s, len))
		return frame_vfail(v, -EPROTO, "not a host name");
	if ((l->flags & FRAME_F_IPADDR) && !frame_is_ipaddr(s))
		return frame_vfail(v, -EPROTO, "not an IP address");
	if ((l->flags & FRAME_F_SHA256) && !frame_is_sha256(s, len))
		return frame_vfail(v, -EPROTO, "not 64 lowercase hex digits");
	return 0;
}

static int
frame_validate_bytes(struct frame_vctx *v, const struct frame_limit *l,
    const ProtobufCBinaryData *b)
{
	if (b->len > 0 && b->data == NULL)
		return frame_vfail(v, -EPROTO, "missing");
	if (b->len > l->max)
		return frame_vfail(v, -EPROTO, "%zu bytes over the %llu limit",
		    b->len, (unsigned long long)l->max);
	if ((l->flags & FRAME_F_NONEMPTY) && b->len == 0)
		return frame_vfail(v, -EPROTO, "empty");
	if ((l->flags & FRAME_F_BPF) && b->len % FRAME_BPF_INSN_SIZE != 0)
		return frame_vfail(v, -EPROTO,
		    "%zu bytes are not whole %d-byte instructions", b->len,
		    FRAME_BPF_INSN_SIZE);
	return 0;
}

static int
frame_validate_uint(struct frame_vctx *v, const struct frame_limit *l,
    uint64_t val)
{
	if ((l->flags & FRAME_F_VERSION) && val != FRAME_PROTOCOL_VERSION)
		return frame_vfail(v, -EPROTONOSUPPORT,
		    "version %llu, this side speaks %d",
		    (unsigned long long)val, FRAME_PROTOCOL_VERSION);
	if ((l->flags & FRAME_F_NONEMPTY) && val == 0)
		return frame_vfail(v, -EPROTO, "zero");
	if (l->max != 0 && val > l->max)
		return frame_vfail(v, -EPROTO, "%llu over the %llu limit",
		    (unsigned long long)val, (unsigned long long)l->max);
	return 0;
}

/* One value: a singular field's, or one element of a repeated field. */
static int
frame_validate_value(struct frame_vctx *v, const ProtobufCFieldDescriptor *f,
    const struct frame_limit *l, const void *p)
{
	const ProtobufCMessage *sub;
	int val;

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		return frame_validate_string(v, l, *(char *const *)p);
	case PROTOBUF_C_TYPE_BYTES:
		return frame_validate_bytes(v, l, p);
	case PROTOBUF_C_TYPE_UINT32:
		return frame_validate_uint(v, l, *(const uint32_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
		return frame_validate_uint(v, l, *(const uint64_t *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return 0;
	case PROTOBUF_C_TYPE_ENUM:
		val = *(const int *)p;
		if (protobuf_c_enum_descriptor_get_value(f->descriptor,
		    val) == NULL)
			return frame_vfail(v, -EPROTO, "unknown value %d", val);
		return 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		sub = *(ProtobufCMessage *const *)p;
		if (sub == NULL)
			return frame_vfail(v, -EPROTO, "missing");
		if (sub->descriptor != f->descriptor)
			return frame_vfail(v, -EPROTO,
			    "a %s where a %s belongs", sub->descriptor->name,
			    ((const ProtobufCMessageDescriptor *)
			    f->descriptor)->name);
		return frame_validate_message(v, sub);
	default:
		return frame_vfail(v, -EPROTO,
		    "field type %d not in the schema", (int)f->type);
	}
}

static size_t
frame_element_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	default:
		return 4;
	}
}

static bool
frame_field_present(const ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) ==
		    f->id;
	if (f->type == PROTOBUF_C_TYPE_STRING ||
	    f->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(void *const *)(base + f->offset) != NULL;
	if (f->label != PROTOBUF_C_LABEL_OPTIONAL)
		return true;
	return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
}

static int
frame_validate_field(struct frame_vctx *v, const ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *f, const struct frame_limit *l)
{
	const char *base = (const char *)m, *items;
	size_t count, i, size;
	int r;

	if (f->label != PROTOBUF_C_LABEL_REPEATED) {
		if (frame_field_present(m, f))
			return frame_validate_value(v, f, l, base + f->offset);
		if (l->flags & FRAME_F_REQUIRED)
			return frame_vfail(v, -EPROTO, "missing");
		return 0;
	}

	count = *(const size_t *)(base + f->quantifier_offset);
	items = *(const char *const *)(base + f->offset);
	if (count > l->count)
		return frame_vfail(v, -EPROTO, "%zu items over the %u limit",
		    count, l->count);
	if (count > 0 && items == NULL)
		return frame_vfail(v, -EPROTO, "missing");
	size = frame_element_size(f->type);
	for (i = 0; i < count; i++) {
		v->path[v->depth - 1].index = (long)i;
		if ((r = frame_validate_value(v, f, l, items + i * size)) < 0)
			return r;
	}
	v->path[v->depth - 1].index = -1;
	return 0;
}

static const char *
frame_job_kind_name(int kind)
{
	const ProtobufCEnumValue *ev;

	ev = protobuf_c_enum_descriptor_get_value(
	    &vetsync__job_kind__descriptor, kind);
	return ev != NULL ? ev->name : "the job kind";
}

/* What one message's fields cannot say alone. */
static int
frame_validate_job(struct frame_vctx *v, const Vetsync__Job *job)
{
	int r;

	if (job->kind == VETSYNC__JOB_KIND__VALIDATE_CREDENTIALS)
		return 0;
	if ((r = frame_vpush(v, "window_start")) < 0)
		return r;
	if (job->window_start == NULL)
		return frame_vfail(v, -EPROTO, "missing, %s needs it",
		    frame_job_kind_name(job->kind));
	v->path[v->depth - 1].name = "window_end";
	if (job->window_end == NULL)
		return frame_vfail(v, -EPROTO, "missing, %s needs it",
		    frame_job_kind_name(job->kind));
	if (strcmp(job->window_start, job->window_end) >= 0)
		return frame_vfail(v, -EPROTO, "not after window_start");
	v->depth--;
	return 0;
}

static int
frame_validate_message(struct frame_vctx *v, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *desc = m->descriptor;
	const struct frame_limit *limits;
	size_t i, n;
	int r;

	limits = frame_limits_of(desc, &n);
	if (limits == NULL || n != desc->n_fields)
		return frame_vfail(v, -EPROTO, "%s: no limits for the message",
		    desc->name);
	for (i = 0; i < n; i++) {
		if (strcmp(desc->fields[i].name, limits[i].field) != 0)
			return frame_vfail(v, -EPROTO,
			    "%s.%s: limits out of step with the schema",
			    desc->name, desc->fields[i].name);
		if ((r = frame_vpush(v, desc->fields[i].name)) < 0)
			return r;
		r = frame_validate_field(v, m, &desc->fields[i], &limits[i]);
		if (r < 0)
			return r;
		v->depth--;
	}
	if (m->n_unknown_fields > 0)
		return frame_vfail(v, -EPROTO, "unknown field %u",
		    m->unknown_fields[0].tag);
	if (desc == &vetsync__job__descriptor)
		return frame_validate_job(v, (const Vetsync__Job *)m);
	return 0;
}

int
frame_validate(const Vetsync__Envelope *env, char *err, size_t errsz)
{
	struct frame_vctx v = { .err = err, .errsz = errsz, .depth = 0 };

	if (env == NULL ||
	    env->base.descriptor != &vetsync__envelope__descriptor)
		return frame_fail(err, errsz, -EINVAL, "not an envelope");
	if (env->msg_case == VETSYNC__ENVELOPE__MSG__NOT_SET) {
		if (env->base.n_unknown_fields > 0)
			return frame_fail(err, errsz, -ENOMSG,
			    "unknown message kind %u",
			    env->base.unknown_fields[0].tag);
		return frame_fail(err, errsz, -ENOMSG,
		    "envelope holds no message");
	}
	if (strcmp(frame_kind_name((int)env->msg_case), "unknown") == 0)
		return frame_fail(err, errsz, -ENOMSG,
		    "unknown message kind %d", (int)env->msg_case);
	return frame_validate_message(&v, &env->base);
}

int
frame_encode(const Vetsync__Envelope *env, uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t *buf;
	size_t len;
	int r;

	if ((r = frame_validate(env, NULL, 0)) < 0)
		return r;
	len = vetsync__envelope__get_packed_size(env);
	if (len > FRAME_MAX)
		return -EMSGSIZE;
	buf = xmalloc(len);
	if (vetsync__envelope__pack(env, buf) != len) {
		frame_wipe_free(NULL, buf);
		return -EPROTO;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int
frame_decode_err(const uint8_t *buf, size_t len, Vetsync__Envelope **ret_env,
    char *err, size_t errsz)
{
	Vetsync__Envelope *env = NULL;
	size_t packed;
	int r;

	if (len == 0) {
		r = frame_fail(err, errsz, -EBADMSG, "empty frame");
		goto out;
	}
	if (len > FRAME_MAX) {
		r = frame_fail(err, errsz, -EMSGSIZE,
		    "frame of %zu bytes over the %d limit", len, FRAME_MAX);
		goto out;
	}
	env = vetsync__envelope__unpack(&frame_allocator, len, buf);
	if (env == NULL) {
		r = frame_fail(err, errsz, -EBADMSG,
		    "frame of %zu bytes is not an envelope", len);
		goto out;
	}
	if ((r = frame_validate(env, err, errsz)) < 0)
		goto out;
	packed = vetsync__envelope__get_packed_size(env);
	if (packed != len) {
		r = frame_fail(err, errsz, -EPROTO,
		    "%s: non-canonical encoding, %zu bytes re-encode to %zu",
		    frame_kind_name(env->msg_case), len, packed);
		goto out;
	}
	*ret_env = env;
	env = NULL;
	r = 0;
out:
	frame_free(env);
	return r;
}

int
frame_decode(const uint8_t *buf, size_t len, Vetsync__Envelope **ret_env)
{
	return frame_decode_err(buf, len, ret_env, NULL, 0);
}

void
frame_free(Vetsync__Envelope *env)
{
	if (env != NULL)
		vetsync__envelope__free_unpacked(env, &frame_allocator);
}

int
frame_socket_init(int fd)
{
	int size = FRAME_SNDBUF, got = 0;
	socklen_t len = sizeof(got);

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) == -1)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) == -1)
		return -errno;
	if (got >= FRAME_SNDBUF)
		return 0;
	/* Over net.core.wmem_max: only CAP_NET_ADMIN may go past it. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size,
	    sizeof(size)) == -1)
		return errno == EPERM ? -ENOBUFS : -errno;
	return 0;
}

int
frame_send(int fd, const Vetsync__Envelope *env)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int r;

	if ((r = frame_encode(env, &buf, &len)) < 0)
		return r;
	do
		n = send(fd, buf, len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		r = -errno;
	else if ((size_t)n != len)
		r = -EIO;	/* a SEQPACKET send is whole or nothing */
	else
		r = 0;
	explicit_bzero(buf, len);
	free(buf);
	return r;
}

/* Close every fd a packet brought; returns how many control messages. */
static size_t
frame_drop_ancillary(struct msghdr *msg, size_t *ret_nfds)
{
	struct cmsghdr *c;
	size_t i, n, ncmsg = 0, nfds = 0;
	int fd;

	for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		ncmsg++;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
			nfds++;
		}
	}
	*ret_nfds = nfds;
	return ncmsg;
}

/* recvmsg() said 0: the peer's close, or an empty packet from a live one. */
static bool
frame_peer_closed(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&pfd, 1, 0) == 1 &&
	    (pfd.revents & (POLLRDHUP | POLLHUP)) != 0;
}

int
frame_recv(int fd, Vetsync__Envelope **ret_env, char *err, size_t errsz)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(sizeof(int) * FRAME_RECV_FDS)];
	} control;
	struct iovec iov;
	struct msghdr msg;
	uint8_t *buf;
	size_t got = 0, nfds;
	ssize_t n;
	int r;

	buf = xmalloc(FRAME_MAX + 1);
	iov.iov_base = buf;
	iov.iov_len = FRAME_MAX + 1;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.space;
	msg.msg_controllen = sizeof(control.space);

	do
		n = recvmsg(fd, &msg, MSG_TRUNC | MSG_CMSG_CLOEXEC);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		r = -errno;
		if (r != -EAGAIN)
			frame_fail(err, errsz, r, "receiving a frame: %s",
			    strerror(-r));
		goto out;
	}
	got = (size_t)n > FRAME_MAX + 1 ? FRAME_MAX + 1 : (size_t)n;

	if (frame_drop_ancillary(&msg, &nfds) > 0 ||
	    (msg.msg_flags & MSG_CTRUNC)) {
		r = frame_fail(err, errsz, -EPROTO,
		    "frame carried ancillary data (%zu file descriptors, "
		    "closed)", nfds);
		goto out;
	}
	if (n == 0 && frame_peer_closed(fd)) {
		r = frame_fail(err, errsz, -EPIPE, "peer closed the channel");
		goto out;
	}
	if ((size_t)n > FRAME_MAX || (msg.msg_flags & MSG_TRUNC)) {
		r = frame_fail(err, errsz, -EMSGSIZE,
		    "frame of %zd bytes over the %d limit", n, FRAME_MAX);
		goto out;
	}
	r = frame_decode_err(buf, got, ret_env, err, errsz);
out:
	explicit_bzero(buf, got);
	free(buf);
	return r;
}

const char *
frame_kind_name(int msg_case)
{
	const ProtobufCFieldDescriptor *f;

	if (msg_case == VETSYNC__ENVELOPE__MSG__NOT_SET)
		return "none";
	if (msg_case < 0)
		return "unknown";
	f = protobuf_c_message_descriptor_get_field(
	    &vetsync__envelope__descriptor, (unsigned int)msg_case);
	return f != NULL ? f->name : "unknown";
}
