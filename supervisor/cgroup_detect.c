/*
 * Where our cgroups are, read from the text of /proc/self/cgroup and
 * /proc/self/mountinfo, and which mechanism that makes.  Pure functions,
 * so that the unit tests can feed them the hosts this one is not.
 *
 * A mount whose root is a subtree (a bind mount, a cgroup namespace seen
 * from outside) is used only when it contains our cgroup; the first such
 * mount wins.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

#include "supervisor/cgroup.h"
#include "supervisor/cgroup_int.h"

static bool
cg_list_has(const char *list, size_t len, const char *word)
{
	size_t wlen = strlen(word);
	const char *p = list, *end = list + len, *comma;

	while (p < end) {
		comma = memchr(p, ',', (size_t)(end - p));
		if (comma == NULL)
			comma = end;
		if ((size_t)(comma - p) == wlen && memcmp(p, word, wlen) == 0)
			return true;
		p = comma + 1;
	}
	return false;
}

int
cgroup_self_path(const char *text, const char *controller, unsigned *ret_id,
    char **ret_path)
{
	const char *line = text, *nl, *c1, *c2;
	unsigned long id;

	for (; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line);
		c1 = memchr(line, ':', (size_t)(nl - line));
		if (c1 == NULL)
			goto next;
		c2 = memchr(c1 + 1, ':', (size_t)(nl - c1 - 1));
		if (c2 == NULL || c2[1] != '/')
			goto next;
		id = strtoul(line, NULL, 10);
		if (controller == NULL ? (id != 0 || c2 != c1 + 1) :
		    !cg_list_has(c1 + 1, (size_t)(c2 - c1 - 1), controller))
			goto next;
		*ret_id = (unsigned)id;
		*ret_path = xstrndup(c2 + 1, (size_t)(nl - c2 - 1));
		return 0;
	next:
		if (*nl == '\0')
			break;
	}
	return -ENOENT;
}

/* mountinfo escapes blanks, tabs, newlines and backslashes as \ooo. */
static char *
cg_unescape(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 3 < len &&
		    s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' &&
		    s[i + 3] >= '0' && s[i + 3] <= '7') {
			*o++ = (char)(((s[i + 1] - '0') << 6) |
			    ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
			i += 3;
		} else
			*o++ = s[i];
	}
	*o = '\0';
	return out;
}

/* Join a mount point with cgpath below the mount's root, or NULL. */
static char *
cg_join_mount(const char *mnt, const char *root, const char *cgpath)
{
	size_t rlen = strlen(root);

	if (strcmp(root, "/") == 0)
		rlen = 0;
	else if (strncmp(cgpath, root, rlen) != 0 ||
	    (cgpath[rlen] != '/' && cgpath[rlen] != '\0'))
		return NULL;
	cgpath += rlen;
	if (*cgpath == '/')
		cgpath++;
	if (*cgpath == '\0')
		return xstrdup(mnt);
	return xasprintf("%s%s%s", mnt,
	    mnt[strlen(mnt) - 1] == '/' ? "" : "/", cgpath);
}

int
cgroup_mount_dir(const char *text, const char *controller, const char *cgpath,
    char **ret_dir)
{
	const char *line = text, *nl, *f[12], *p;
	size_t flen[12], nf, sep;
	char *root, *mnt, *dir;

	for (; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line);
		/* id parent dev root mnt opts [optional...] - type src super */
		nf = 0;
		sep = 0;
		for (p = line; p < nl && nf < 12;) {
			while (p < nl && *p == ' ')
				p++;
			if (p == nl)
				break;
			f[nf] = p;
			while (p < nl && *p != ' ')
				p++;
			flen[nf] = (size_t)(p - f[nf]);
			if (sep == 0 && nf >= 6 && flen[nf] == 1 &&
			    *f[nf] == '-')
				sep = nf;
			nf++;
		}
		if (sep == 0 || nf < sep + 4)
			goto next;
		if (controller == NULL) {
			if (flen[sep + 1] != 7 ||
			    memcmp(f[sep + 1], "cgroup2", 7) != 0)
				goto next;
		} else {
			if (flen[sep + 1] != 6 ||
			    memcmp(f[sep + 1], "cgroup", 6) != 0 ||
			    !cg_list_has(f[sep + 3], flen[sep + 3], controller))
				goto next;
		}
		root = cg_unescape(f[3], flen[3]);
		mnt = cg_unescape(f[4], flen[4]);
		dir = cg_join_mount(mnt, root, cgpath);
		free(root);
		free(mnt);
		if (dir != NULL) {
			*ret_dir = dir;
			return 0;
		}
	next:
		if (*nl == '\0')
			break;
	}
	return -ENOENT;
}

int
cgroup_choose_mode(bool v2_usable, unsigned v1_mask, bool allow_none,
    enum cgroup_mode *ret)
{
	if (v2_usable)
		*ret = CGROUP_MODE_V2;
	else if ((v1_mask & CGROUP_CTL_REQUIRED) == CGROUP_CTL_REQUIRED)
		*ret = CGROUP_MODE_V1;
	else if (allow_none)
		*ret = CGROUP_MODE_NONE;
	else
		return -ENOTSUP;
	return 0;
}
