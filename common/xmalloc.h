/*
 * Checked allocation: these never return NULL; running out of memory is
 * fatal (STYLE §3).  Sizes are checked for overflow.  Callers free with
 * free(); secrets are wiped with explicit_bzero() first (see xfree_secret).
 */
#ifndef VS_COMMON_XMALLOC_H
#define VS_COMMON_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *, size_t nmemb, size_t size);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
/* Wipe len bytes (strlen + 1 when len is 0 and p a string) and free. */
void xfree_secret(void *p, size_t len);
/*
 * free() that wipes the whole block first, for allocators handed to
 * libraries whose buffers may hold a secret (jansson's, via
 * json_set_alloc_funcs): the size comes from malloc_usable_size().
 */
void xfree_wiped(void *p);

#endif
