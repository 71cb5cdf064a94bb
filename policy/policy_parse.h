/*
 * The line reader shared by the three policy files.  Every file is plain
 * text, one rule a line: words separated by blanks, then an optional
 * "# reason" that runs to the end of the line.  A line holding only blanks
 * or a comment is skipped.  Errors carry "file:line: message".
 */
#ifndef VS_POLICY_PARSE_H
#define VS_POLICY_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define POLICY_LINE_MAX		1024	/* longer lines are an error */
#define POLICY_WORDS_MAX	16
#define POLICY_FILE_MAX		(256 * 1024)

struct policy_line {
	const char *file;
	unsigned int lineno;
	size_t nword;
	char *word[POLICY_WORDS_MAX];
	const char *reason;		/* trimmed; "" when there is none */
};

/*
 * Called once per rule line; returns 0 or a negative errno after writing
 * the message with policy_line_error().
 */
typedef int (*policy_line_fn)(const struct policy_line *, void *ctx,
    char *err, size_t errsz);

/* Read path and call fn for each rule line.  Stops at the first error. */
int policy_parse_file(const char *path, policy_line_fn fn, void *ctx,
    char *err, size_t errsz);

/* Format "file:line: message" into err; returns -EINVAL. */
int policy_line_error(const struct policy_line *, char *err, size_t errsz,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Symbolic numbers the files may use: errno names (ENOSYS), and a fixed
 * table of constants (AF_INET, CLONE_THREAD, PROT_EXEC, TCGETS, ...).
 * Return 0 or -ENOENT.
 */
int policy_errno_lookup(const char *name, int *ret);
const char *policy_errno_name(int e);
int policy_const_lookup(const char *name, uint64_t *ret);

/*
 * Parse a value: terms joined by '|' (no blanks), each a decimal or 0x
 * number or a constant from the table.  A leading '~' complements the whole
 * value within 32 bits.  0 or -EINVAL.
 */
int policy_value_parse(const char *s, uint64_t *ret);

#endif
