/*
 * Schema migrations: the ordered SQL files of migrations/ (installed in
 * $(pkgdatadir)/migrations), applied to the database vetsyncd uses.
 *
 * A migration file is named NNNN_name.sql (four digits, then [a-z0-9_]);
 * NNNN is its version.  Each pending file runs in its own transaction
 * together with the row that records it in vetsync_schema_migrations
 * (version, name, sha256, applied_at), so a file is applied whole or not at
 * all.  The whole run holds a PostgreSQL advisory lock: two migrations at
 * once (two operators, two VMs) run one after the other, and the second finds
 * nothing left to do.  Running again changes nothing.
 *
 * Refused, before anything is applied: a file whose content changed since
 * it was applied (its SHA-256 differs from the recorded one), an applied
 * version with no file (an older installation talking to a newer
 * database), and a pending version older than one already applied.
 *
 * Migrations run as the schema owner; files must not contain BEGIN/COMMIT.
 */
#ifndef VS_SUPERVISOR_MIGRATE_H
#define VS_SUPERVISOR_MIGRATE_H

#include <stdbool.h>
#include <stdio.h>

struct db;

#define MIGRATE_DEFAULT_DIR	VS_PKGDATADIR "/migrations"
#define MIGRATE_FILES_MAX	1000	/* files in the directory */
#define MIGRATE_SIZE_MAX	(1024 * 1024) /* bytes in one file */
#define MIGRATE_ERR_MAX		1536

struct migrate_options {
	const char *dir;	/* NULL: MIGRATE_DEFAULT_DIR */
	bool dry_run;		/* say what would be applied; change nothing */
	FILE *progress;		/* a line per step; NULL: quiet */
};

struct migrate_result {
	unsigned applied;	/* files applied by this run (or to be) */
	unsigned already;	/* files that were applied before */
	int version;		/* the database's version after; 0: none */
};

/*
 * Bring the database up to date.  Returns 0 and fills *ret, or a negative
 * errno with the reason in err: -EBADMSG (an applied file changed, or the
 * files and the database disagree), -ENOENT/-EIO (reading the files),
 * -EINVAL (a badly named or oversized file), or db.h's errors (a
 * migration failed: err names the file and PostgreSQL's message, and
 * nothing of that file stays applied).
 */
int migrate_run(struct db *, const struct migrate_options *,
    struct migrate_result *ret, char *err, size_t errsz);

#endif
