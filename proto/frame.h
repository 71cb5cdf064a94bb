/*
 * Frames of the supervisor <-> worker channel: one vetsync.Envelope per
 * AF_UNIX SOCK_SEQPACKET packet (DESIGN §3, proto/vetsync.proto).
 *
 * Nothing from the peer is trusted.  A frame is accepted only if it is at
 * most FRAME_MAX bytes, unpacks, names a known message kind, speaks
 * FRAME_PROTOCOL_VERSION (Setup, Hello), passes every field limit of
 * proto/frame_limits.h (required fields, lengths, UTF-8, counts, enum
 * values, forms), has no unknown field and is encoded exactly as
 * frame_encode() would encode it (so no duplicate field, overlong varint or
 * embedded NUL slips through).  We never send what we would refuse: the
 * encoder validates first.  Which message may arrive in which state is the
 * receiver's dispatch table's business, not this module's.
 *
 * Errors (negative errno; the err buffer, when given, says which field):
 *   -EBADMSG		empty, truncated or not a protobuf Envelope
 *   -EMSGSIZE		over FRAME_MAX
 *   -ENOMSG		no message kind set, or one this version does not know
 *   -EPROTONOSUPPORT	Setup or Hello of another protocol version
 *   -EPROTO		a field breaks its limit, an unknown field, a
 *			non-canonical encoding; on receive, ancillary data
 *   -EPIPE		(receive) the peer closed the channel
 *   -EAGAIN		(send, receive) the socket would block
 *
 * Frames may carry credentials (Job): every buffer this module allocates
 * for a frame is wiped before it is freed, decoded envelopes included.
 * There is no global state: err buffers are the caller's.
 */
#ifndef VS_PROTO_FRAME_H
#define VS_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frame_limits.h"
#include "proto/vetsync.pb-c.h"

/* Room for any message frame_*() writes into an err buffer. */
#define FRAME_ERR_MAX	256

/*
 * Check every field of env against the limits.  0 or an error above, with
 * the reason ("consultation.notes: 70000 bytes over the 65536 limit") in
 * err when err is not NULL.  frame_encode() and frame_send() call it; a
 * sender that wants the reason for their -EPROTO calls it itself.
 */
int frame_validate(const Vetsync__Envelope *env, char *err, size_t errsz);

/*
 * Validate and encode env.  On success *ret_buf (malloc'd, at most
 * FRAME_MAX bytes, never empty) is the caller's: wipe it with
 * explicit_bzero() if the frame may hold credentials, then free() it.
 */
int frame_encode(const Vetsync__Envelope *env, uint8_t **ret_buf,
    size_t *ret_len);

/*
 * Decode and validate len bytes.  On success *ret_env is the caller's, to
 * release with frame_free().  frame_decode_err() also writes the reason for
 * a failure into err (errsz bytes, FRAME_ERR_MAX is enough).
 */
int frame_decode(const uint8_t *buf, size_t len, Vetsync__Envelope **ret_env);
int frame_decode_err(const uint8_t *buf, size_t len,
    Vetsync__Envelope **ret_env, char *err, size_t errsz);

/* Wipe and free an envelope from frame_decode() or frame_recv(); NULL ok. */
void frame_free(Vetsync__Envelope *env);

/*
 * Make fd able to carry FRAME_MAX packets: the default socket send buffer
 * (net.core.wmem_default) is smaller.  Call on both ends of the socketpair.
 */
int frame_socket_init(int fd);

/*
 * Send env as one packet (MSG_NOSIGNAL: a dead peer is -EPIPE, not
 * SIGPIPE).  Blocks only if fd does; a full queue on a non-blocking fd is
 * -EAGAIN and nothing was sent.
 */
int frame_send(int fd, const Vetsync__Envelope *env);

/*
 * Receive one packet and decode it.  An oversized packet is consumed and
 * refused (-EMSGSIZE), so the next frame can still be read; so is one that
 * carries ancillary data (file descriptors are closed, never kept: -EPROTO).
 * An empty packet is -EBADMSG; the peer's close is -EPIPE.  err is written
 * on every failure but -EAGAIN; it may be NULL.
 */
int frame_recv(int fd, Vetsync__Envelope **ret_env, char *err, size_t errsz);

/*
 * The name of a message kind for logs ("hello", "job_result"), from
 * Vetsync__Envelope's msg_case; "none" for NOT_SET, "unknown" otherwise.
 */
const char *frame_kind_name(int msg_case);

#endif
