/*
 * Apply the migration files in order (migrate.h).  The files are read and
 * checked against the database before any is applied, so a refusal leaves
 * the database as it was.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/clock.h"

#include "supervisor/db.h"
#include "supervisor/migrate.h"

/* pg_advisory_lock key: "vetsync" in ASCII, one per database. */
#define MIGRATE_LOCK_KEY "33325598079807075"

#define VERSION_TABLE "vetsync_schema_migrations"

struct migration {
	int version;
	char name[64];
	char sha256[65];
	char *sql;
	bool applied;
};

struct migrations {
	struct migration *v;
	size_t n;
};

static void
migrations_release(struct migrations *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].sql);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

/* NNNN_[a-z0-9_]+.sql */
static bool
name_valid(const char *name)
{
	size_t len = strlen(name), i;

	if (len < 10 || len >= sizeof(((struct migration *)0)->name) ||
	    strcmp(name + len - 4, ".sql") != 0)
		return false;
	for (i = 0; i < 4; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	if (name[4] != '_')
		return false;
	for (i = 5; i < len - 4; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return false;
	return true;
}

static int
read_file(const char *dir, const char *name, struct buf *b, char *err,
    size_t errsz)
{
	char path[4096], chunk[65536];
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		r = -errno;
		snprintf(err, errsz, "migration %s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errsz, "migration %s: not a regular file", path);
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(b, chunk, (size_t)n) < 0) {
			r = -EINVAL;
			snprintf(err, errsz, "migration %s: over %d bytes",
			    path, MIGRATE_SIZE_MAX);
			goto out;
		}
	if (n < 0) {
		r = -errno;
		snprintf(err, errsz, "migration %s: %s", path, strerror(errno));
		goto out;
	}
	if (b->len == 0 || memchr(b->data, '\0', b->len) != NULL) {
		r = -EINVAL;
		snprintf(err, errsz, "migration %s: empty or not text", path);
	}
out:
	close(fd);
	return r;
}

static int
sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		return -EIO;
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(((const struct migration *)a)->name,
	    ((const struct migration *)b)->name);
}

/* Read every NNNN_*.sql of dir, sorted by version. */
static int
load_files(const char *dir, struct migrations *m, char *err, size_t errsz)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	if ((d = opendir(dir)) == NULL) {
		r = -errno;
		snprintf(err, errsz, "migrations directory '%s': %s", dir,
		    strerror(errno));
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		struct migration *mg, *v;
		struct buf b;

		if (de->d_name[0] == '.' || strlen(de->d_name) < 4 ||
		    strcmp(de->d_name + strlen(de->d_name) - 4, ".sql") != 0)
			continue;
		if (!name_valid(de->d_name)) {
			snprintf(err, errsz, "migration %s/%s: expected a name "
			    "like 0001_name.sql ([a-z0-9_])", dir, de->d_name);
			r = -EINVAL;
			goto out;
		}
		if (m->n == MIGRATE_FILES_MAX) {
			snprintf(err, errsz, "migrations directory '%s': more "
			    "than %d files", dir, MIGRATE_FILES_MAX);
			r = -EINVAL;
			goto out;
		}
		if ((v = realloc(m->v, (m->n + 1) * sizeof(*v))) == NULL) {
			r = -ENOMEM;
			snprintf(err, errsz, "migrations: out of memory");
			goto out;
		}
		m->v = v;
		mg = &m->v[m->n];
		memset(mg, 0, sizeof(*mg));
		snprintf(mg->name, sizeof(mg->name), "%s", de->d_name);
		mg->version = atoi(mg->name);
		buf_init(&b, MIGRATE_SIZE_MAX);
		if ((r = read_file(dir, mg->name, &b, err, errsz)) < 0 ||
		    (r = sha256_hex(b.data, b.len, mg->sha256)) < 0) {
			buf_release(&b);
			goto out;
		}
		mg->sql = buf_detach(&b, NULL);
		m->n++;
	}
	qsort(m->v, m->n, sizeof(*m->v), compare_names);
	for (size_t i = 1; i < m->n; i++)
		if (m->v[i].version == m->v[i - 1].version) {
			snprintf(err, errsz, "migrations %s and %s have the "
			    "same version %04d", m->v[i - 1].name, m->v[i].name,
			    m->v[i].version);
			r = -EINVAL;
			goto out;
		}
out:
	closedir(d);
	return r;
}

static struct migration *
find_version(struct migrations *m, int version)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].version == version)
			return &m->v[i];
	return NULL;
}

/* Mark what is applied; refuse if the files and the database disagree. */
static int
check_applied(struct db *db, struct migrations *m, bool have_table,
    int *ret_version, char *err, size_t errsz)
{
	struct db_result *res = NULL;
	int r, newest = 0;

	*ret_version = 0;
	if (!have_table)
		return 0;
	r = db_query(db, "SELECT version, name, sha256 FROM " VERSION_TABLE
	    " ORDER BY version", 0, NULL, &res);
	if (r < 0) {
		snprintf(err, errsz, "reading " VERSION_TABLE ": %s",
		    db_error(db));
		return r;
	}
	for (size_t i = 0; i < db_result_rows(res); i++) {
		int version = atoi(db_result_value(res, i, 0));
		const char *name = db_result_value(res, i, 1);
		const char *sha = db_result_value(res, i, 2);
		struct migration *mg = find_version(m, version);

		if (mg == NULL) {
			snprintf(err, errsz, "migration %s is applied in the "
			    "database but has no file here: this installation "
			    "is older than the database's schema", name);
			r = -EBADMSG;
			goto out;
		}
		if (strcmp(mg->name, name) != 0 ||
		    strcmp(mg->sha256, sha) != 0) {
			snprintf(err, errsz, "migration %s changed since it "
			    "was applied as %s (sha256 now %.12s..., applied "
			    "%.12s...); refusing to go on: restore the file, "
			    "and put changes in a new migration", mg->name,
			    name, mg->sha256, sha);
			r = -EBADMSG;
			goto out;
		}
		mg->applied = true;
		if (version > newest)
			newest = version;
	}
	for (size_t i = 0; i < m->n; i++)
		if (!m->v[i].applied && m->v[i].version < newest) {
			snprintf(err, errsz, "migration %s is not applied but "
			    "is older than version %04d, which is: refusing "
			    "to apply out of order", m->v[i].name, newest);
			r = -EBADMSG;
			goto out;
		}
	*ret_version = newest;
out:
	db_result_free(res);
	return r;
}

static int
apply_one(struct db *db, const struct migration *mg, char *err, size_t errsz)
{
	char version[16];
	const char *params[3] = { version, mg->name, mg->sha256 };
	struct db_result *res = NULL;
	int r;

	snprintf(version, sizeof(version), "%d", mg->version);
	if ((r = db_begin(db, NULL)) < 0)
		goto fail;
	if ((r = db_exec(db, "SET LOCAL search_path = public")) < 0 ||
	    (r = db_exec(db, mg->sql)) < 0)
		goto fail;
	r = db_query(db, "INSERT INTO " VERSION_TABLE
	    " (version, name, sha256) VALUES ($1, $2, $3)", 3, params, &res);
	db_result_free(res);
	if (r < 0 || (r = db_commit(db)) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errsz, "migration %s failed, nothing of it applied: "
	    "%s%s%s", mg->name, db_error(db), db_sqlstate(db)[0] != '\0' ? " SQLSTATE " :
	    "", db_sqlstate(db));
	db_rollback(db);
	return r;
}

static void
progress(const struct migrate_options *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
progress(const struct migrate_options *o, const char *fmt, ...)
{
	va_list ap;

	if (o->progress == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(o->progress, fmt, ap);
	va_end(ap);
	fflush(o->progress);
}

static int
lock(struct db *db, const struct migrate_options *o, char *err, size_t errsz)
{
	struct db_result *res = NULL;
	int r;

	r = db_query(db, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")",
	    0, NULL, &res);
	if (r == 0 && strcmp(db_result_value(res, 0, 0), "t") != 0) {
		progress(o, "waiting for another migration of this database "
		    "to finish\n");
		r = db_exec(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY
		    ")");
	}
	db_result_free(res);
	if (r < 0)
		snprintf(err, errsz, "taking the migration lock: %s",
		    db_error(db));
	return r;
}

static int
bootstrap(struct db *db, bool dry_run, bool *ret_have, char *err,
    size_t errsz)
{
	struct db_result *res = NULL;
	int r;

	r = db_query(db, "SELECT to_regclass('" VERSION_TABLE "') IS NOT NULL",
	    0, NULL, &res);
	if (r < 0)
		goto fail;
	*ret_have = strcmp(db_result_value(res, 0, 0), "t") == 0;
	db_result_free(res);
	if (*ret_have || dry_run)
		return 0;
	/* RLS like every table: only its owner (the migrating role) sees it. */
	r = db_exec(db, "BEGIN;"
	    "CREATE TABLE " VERSION_TABLE " ("
	    " version integer PRIMARY KEY,"
	    " name text NOT NULL,"
	    " sha256 text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now());"
	    "ALTER TABLE " VERSION_TABLE " ENABLE ROW LEVEL SECURITY;"
	    "ALTER TABLE " VERSION_TABLE " FORCE ROW LEVEL SECURITY;"
	    "DO $$ BEGIN EXECUTE format('CREATE POLICY vetsync_owner ON "
	    VERSION_TABLE " TO %I USING (true) WITH CHECK (true)', "
	    "current_user); END $$;"
	    "COMMIT");
	if (r < 0) {
		db_rollback(db);
		goto fail;
	}
	*ret_have = true;
	return 0;
fail:
	snprintf(err, errsz, "creating " VERSION_TABLE ": %s", db_error(db));
	return r;
}

int
migrate_run(struct db *db, const struct migrate_options *o,
    struct migrate_result *ret, char *err, size_t errsz)
{
	struct migrate_result result = { 0 };
	struct migrations m = { NULL, 0 };
	const char *dir = o->dir != NULL ? o->dir : MIGRATE_DEFAULT_DIR;
	bool locked = false, have_table = false;
	int r;

	if ((r = load_files(dir, &m, err, errsz)) < 0)
		goto out;
	if (m.n == 0) {
		snprintf(err, errsz, "migrations directory '%s': no NNNN_*.sql "
		    "file", dir);
		r = -ENOENT;
		goto out;
	}
	/* Long migrations must not hit vetsyncd's statement timeout. */
	if ((r = db_exec(db, "SET statement_timeout = 0")) < 0) {
		snprintf(err, errsz, "%s", db_error(db));
		goto out;
	}
	if ((r = lock(db, o, err, errsz)) < 0)
		goto out;
	locked = true;
	if ((r = bootstrap(db, o->dry_run, &have_table, err, errsz)) < 0 ||
	    (r = check_applied(db, &m, have_table, &result.version, err,
	    errsz)) < 0)
		goto out;
	for (size_t i = 0; i < m.n; i++) {
		struct migration *mg = &m.v[i];
		uint64_t t0;

		if (mg->applied) {
			result.already++;
			continue;
		}
		if (o->dry_run) {
			progress(o, "would apply %s\n", mg->name);
			result.applied++;
			continue;
		}
		progress(o, "applying %s ... ", mg->name);
		t0 = clock_mono_ms();
		if ((r = apply_one(db, mg, err, errsz)) < 0) {
			progress(o, "failed\n");
			goto out;
		}
		progress(o, "done (%llu ms)\n",
		    (unsigned long long)(clock_mono_ms() - t0));
		result.applied++;
		result.version = mg->version;
	}
	*ret = result;
	r = 0;
out:
	/* Should this fail, the lock goes with the session anyway. */
	if (locked)
		(void)db_exec(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY
		    ")");
	migrations_release(&m);
	return r;
}
