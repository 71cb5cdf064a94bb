/*
 * The bounds of the wire contract: the protocol version, the largest frame
 * and, for every field of every message in proto/vetsync.proto, whether it
 * is required, how long it may be, how many it may repeat and what form it
 * must have.  frame.c enforces them in both directions; security review
 * reads them here.
 *
 * Invariants: the table of a message lists its fields in field-number order,
 * one entry each, under the field's name (the unit tests check this against
 * the generated descriptors).  Every message at every limit encodes within
 * FRAME_MAX (also tested), so a peer that respects the field limits never
 * meets the frame limit.
 */
#ifndef VS_PROTO_FRAME_LIMITS_H
#define VS_PROTO_FRAME_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define FRAME_PROTOCOL_VERSION	1

/* Whole frame: one encoded Envelope, one SEQPACKET packet. */
#define FRAME_MAX		(256 * 1024)

/* String and bytes fields, in bytes. */
#define FRAME_ID_MAX		128	/* IDEXX and clinic ids */
#define FRAME_SHORT_MAX		64	/* dates, zones, addresses, tokens */
#define FRAME_NAME_MAX		256	/* names, e-mail, phone, statuses */
#define FRAME_URL_MAX		2048	/* base URL, url path */
#define FRAME_PATH_MAX		4096	/* file system paths (PATH_MAX) */
#define FRAME_LINE_MAX		4096	/* reasons, error messages, summaries */
#define FRAME_TEXT_MAX		65536	/* notes, discharge summaries */
#define FRAME_PROFILE_MAX	65536	/* a site profile's text */
#define FRAME_SNAPSHOT_MAX	65536	/* a snapshot's body */

/* Seccomp: struct sock_filter is 8 bytes; the kernel takes BPF_MAXINSNS. */
#define FRAME_BPF_INSN_SIZE	8
#define FRAME_BPF_INSNS_MAX	4096

/* Repeated fields, in elements. */
#define FRAME_LINES_MAX		128	/* product/service lines */
#define FRAME_LANDLOCK_PATHS_MAX 16
#define FRAME_LANDLOCK_PORTS_MAX 16

/* Flags of a field's limit. */
#define FRAME_F_REQUIRED	0x01	/* present (has_ set, pointer set) */
#define FRAME_F_NONEMPTY	0x02	/* not empty, not zero */
#define FRAME_F_VERSION		0x04	/* == FRAME_PROTOCOL_VERSION */
#define FRAME_F_LOCALTIME	0x08	/* "YYYY-MM-DD HH:MM:SS" */
#define FRAME_F_HOSTNAME	0x10	/* letters, digits, '-' and '.' only */
#define FRAME_F_IPADDR		0x20	/* an IPv4 or IPv6 literal */
#define FRAME_F_SHA256		0x40	/* 64 lowercase hex digits */
#define FRAME_F_BPF		0x80	/* whole sock_filter instructions */
#define FRAME_F_UTCTIME		0x100	/* "YYYY-MM-DDTHH:MM:SSZ" */

struct frame_limit {
	const char *field;	/* the field's name in the .proto */
	unsigned int flags;	/* FRAME_F_* */
	uint64_t max;		/* strings, bytes: length; integers: value
				   (0: unbounded); each repeated element */
	uint32_t count;		/* repeated fields: most elements */
};

/*
 * The limits of a message's fields, in the order of its descriptor's
 * fields, and their number; NULL for a message vetsync does not send.
 */
const struct frame_limit *frame_limits_of(const ProtobufCMessageDescriptor *,
    size_t *ret_n);

#endif
