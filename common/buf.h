/*
 * A growable byte buffer, always NUL-terminated (after len), in the manner
 * of git's strbuf.  Embedded: buf_init()/buf_release().  buf_detach() hands
 * the bytes to the caller, who frees them.  Growth past limit (when nonzero)
 * fails with -EMSGSIZE and leaves the buffer as it was.
 */
#ifndef VS_COMMON_BUF_H
#define VS_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t limit;	/* 0: unbounded */
};

void buf_init(struct buf *, size_t limit);
void buf_release(struct buf *);
/* Like buf_release(), wiping the contents first. */
void buf_release_secret(struct buf *);
void buf_reset(struct buf *);
int buf_append(struct buf *, const void *, size_t);
int buf_puts(struct buf *, const char *);
int buf_printf(struct buf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
char *buf_detach(struct buf *, size_t *ret_len);

#endif
