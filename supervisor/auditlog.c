/*
 * Verification and reading of the hash-chained audit log (auditlog.h).
 * The canonical encoding is written out here a second time, on purpose: a
 * chain checked only by the SQL that built it would trust that SQL.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/parse.h"

#include "supervisor/auditlog.h"
#include "supervisor/db.h"

#define CHAIN_TAG	"vetsync-audit-v1\n"
#define GENESIS_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* In the order of struct auditlog_row. */
#define ROW_COLUMNS \
	"seq::text, id::text, " TS("\"timestamp\"") ", " TS("created_at") \
	", user_id::text, clinic_id::text, actor, action, status, " \
	"ip_address::text, session_id, policy_hash, error_details::text, " \
	"metadata::text, prev_hash, hash"

static void
row_from_result(const struct db_result *res, struct auditlog_row *row)
{
	const char **f[] = {
		&row->seq, &row->id, &row->timestamp, &row->created_at,
		&row->user_id, &row->clinic_id, &row->actor, &row->action,
		&row->status, &row->ip_address, &row->session_id,
		&row->policy_hash, &row->error_details, &row->metadata,
		&row->prev_hash, &row->hash,
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		*f[i] = db_result_value(res, 0, i);
}

int
auditlog_service_role(struct db *db)
{
	struct db_result *res = NULL;
	const char *v;
	int r;

	r = db_query(db, "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles "
	    "WHERE rolname = 'service_role') THEN current_user <> "
	    "'service_role' AND pg_has_role('service_role', 'MEMBER') "
	    "ELSE false END", 0, NULL, &res);
	if (r < 0)
		return r;
	v = db_result_value(res, 0, 0);
	if (v != NULL && strcmp(v, "t") == 0)
		r = db_exec(db, "SET ROLE service_role");
	db_result_free(res);
	return r;
}

static void
hash_field(EVP_MD_CTX *ctx, const char *v)
{
	char len[32];

	if (v == NULL) {
		EVP_DigestUpdate(ctx, "~", 1);
		return;
	}
	snprintf(len, sizeof(len), "%zu:", strlen(v));
	EVP_DigestUpdate(ctx, len, strlen(len));
	EVP_DigestUpdate(ctx, v, strlen(v));
	EVP_DigestUpdate(ctx, ",", 1);
}

static int
row_hash(EVP_MD_CTX *ctx, const struct auditlog_row *row, char hex[65])
{
	const char *fields[] = {
		row->seq, row->prev_hash, row->id, row->timestamp,
		row->created_at, row->user_id, row->clinic_id, row->actor,
		row->action, row->status, row->ip_address, row->session_id,
		row->policy_hash, row->error_details, row->metadata,
	};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		return -EIO;
	EVP_DigestUpdate(ctx, CHAIN_TAG, strlen(CHAIN_TAG));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		hash_field(ctx, fields[i]);
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
		return -EIO;
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

struct walk {
	struct auditlog_verify *v;
	EVP_MD_CTX *ctx;
	int64_t next_seq;		/* the seq the next row must have */
	char prev_hash[65];		/* the hash it must point back to */
};

static int
broken(struct walk *w, const struct auditlog_row *row, int64_t seq,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
broken(struct walk *w, const struct auditlog_row *row, int64_t seq,
    const char *fmt, ...)
{
	va_list ap;

	w->v->broken = true;
	w->v->broken_seq = seq;
	snprintf(w->v->broken_id, sizeof(w->v->broken_id), "%s",
	    row != NULL && row->id != NULL ? row->id : "");
	va_start(ap, fmt);
	vsnprintf(w->v->reason, sizeof(w->v->reason), fmt, ap);
	va_end(ap);
	return 1;	/* stop the walk */
}

static int
verify_row(const struct db_result *res, void *arg)
{
	struct walk *w = arg;
	struct auditlog_row row;
	char hex[65];
	int64_t seq;
	int r;

	row_from_result(res, &row);
	seq = strtoll(row.seq, NULL, 10);
	if (seq != w->next_seq)
		return broken(w, &row, seq, "rows missing before it: expected "
		    "seq %" PRId64 ", found %" PRId64, w->next_seq, seq);
	if (row.prev_hash == NULL || strcmp(row.prev_hash, w->prev_hash) != 0)
		return broken(w, &row, seq, "prev_hash %.16s... is not the "
		    "hash of row %" PRId64 " (%.16s...)",
		    row.prev_hash != NULL ? row.prev_hash : "NULL", seq - 1,
		    w->prev_hash);
	if ((r = row_hash(w->ctx, &row, hex)) < 0)
		return r;
	if (row.hash == NULL || strcmp(row.hash, hex) != 0)
		return broken(w, &row, seq, "its fields do not match its hash "
		    "(stored %.16s..., computed %.16s...): the row was changed",
		    row.hash != NULL ? row.hash : "NULL", hex);
	if (w->v->rows == 0)
		w->v->first_seq = seq;
	w->v->last_seq = seq;
	w->v->rows++;
	w->next_seq = seq + 1;
	snprintf(w->prev_hash, sizeof(w->prev_hash), "%s", row.hash);
	return 0;
}

/* One row of one or two text columns; NULL values when there is no row. */
static int
query_pair(struct db *db, const char *sql, char *a, size_t asz, char *b,
    size_t bsz, bool *ret_found)
{
	struct db_result *res = NULL;
	int r;

	if ((r = db_query(db, sql, 0, NULL, &res)) < 0)
		return r;
	*ret_found = db_result_rows(res) > 0;
	if (*ret_found) {
		snprintf(a, asz, "%s", db_result_value(res, 0, 0) != NULL ?
		    db_result_value(res, 0, 0) : "");
		snprintf(b, bsz, "%s", db_result_value(res, 0, 1) != NULL ?
		    db_result_value(res, 0, 1) : "");
	}
	db_result_free(res);
	return 0;
}

int
auditlog_verify(struct db *db, struct auditlog_verify *ret)
{
	struct auditlog_verify v;
	struct walk w = { .v = &v };
	char cp_seq[32], head_seq[32], head_hash[80], after[32];
	const char *params[1] = { after };
	bool found, in_tx = false;
	int64_t head;
	int r;

	memset(&v, 0, sizeof(v));
	if ((w.ctx = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	if ((r = auditlog_service_role(db)) < 0)
		goto out;
	/* One snapshot: checkpoint, rows and head agree with each other. */
	if ((r = db_begin(db, "ISOLATION LEVEL REPEATABLE READ READ ONLY")) < 0)
		goto out;
	in_tx = true;
	r = query_pair(db, "SELECT through_seq, through_hash FROM "
	    "idexx_sync_audit_checkpoints ORDER BY id DESC LIMIT 1", cp_seq,
	    sizeof(cp_seq), w.prev_hash, sizeof(w.prev_hash), &found);
	if (r < 0)
		goto out;
	if (found) {
		v.checkpoint_seq = strtoll(cp_seq, NULL, 10);
	} else {
		v.checkpoint_seq = 0;
		snprintf(w.prev_hash, sizeof(w.prev_hash), "%s", GENESIS_HASH);
	}
	w.next_seq = v.checkpoint_seq + 1;
	r = query_pair(db, "SELECT seq, hash FROM idexx_sync_audit_chain",
	    head_seq, sizeof(head_seq), head_hash, sizeof(head_hash), &found);
	if (r < 0)
		goto out;
	if (!found) {
		broken(&w, NULL, 0, "the chain head (idexx_sync_audit_chain) "
		    "is missing");
		goto done;
	}
	head = strtoll(head_seq, NULL, 10);
	snprintf(after, sizeof(after), "%" PRId64, v.checkpoint_seq);
	/* l.seq: the bigint, not the text column of the same name. */
	r = db_query_each(db, "SELECT " ROW_COLUMNS " FROM idexx_sync_audit_log"
	    " l WHERE l.seq > $1 ORDER BY l.seq", 1, params, verify_row, &w);
	if (r < 0 || v.broken)
		goto done;
	if (head != w.next_seq - 1 || strcmp(head_hash, w.prev_hash) != 0)
		broken(&w, NULL, head, "the chain head is at seq %" PRId64
		    " but the last row is seq %" PRId64 ": rows at the end "
		    "were deleted", head, w.next_seq - 1);
done:
	if (r == 0) {
		in_tx = false;
		r = db_commit(db);
	}
out:
	if (in_tx)
		db_rollback(db);
	EVP_MD_CTX_free(w.ctx);
	if (r == 0)
		*ret = v;
	return r;
}

struct tail {
	auditlog_row_fn *fn;
	void *arg;
};

static int
tail_row(const struct db_result *res, void *arg)
{
	struct tail *t = arg;
	struct auditlog_row row;

	row_from_result(res, &row);
	return t->fn(&row, t->arg);
}

int
auditlog_tail(struct db *db, unsigned n, auditlog_row_fn *fn, void *arg)
{
	struct tail t = { fn, arg };
	char limit[16];
	const char *params[1] = { limit };
	int r;

	if (n > AUDITLOG_TAIL_MAX)
		n = AUDITLOG_TAIL_MAX;
	snprintf(limit, sizeof(limit), "%u", n);
	if ((r = auditlog_service_role(db)) < 0)
		return r;
	return db_query_each(db, "SELECT * FROM (SELECT " ROW_COLUMNS
	    ", l.seq AS o FROM idexx_sync_audit_log l WHERE l.seq IS NOT NULL"
	    " ORDER BY l.seq DESC LIMIT $1) t ORDER BY o", 1, params, tail_row,
	    &t);
}

/* A JSON object's text (NULL stays NULL); -EINVAL when it is not one. */
static int
json_object_text(const char *text, const char *clinic, char **ret)
{
	json_t *o = NULL;

	*ret = NULL;
	if (text == NULL && clinic == NULL)
		return 0;
	o = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) :
	    json_object();
	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	if (clinic != NULL)
		json_object_set_new(o, "clinic", json_string(clinic));
	*ret = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return *ret != NULL ? 0 : -ENOMEM;
}

int
auditlog_append(struct db *db, const struct auditlog_entry *e,
    int64_t *ret_seq)
{
	struct db_result *res = NULL;
	char *error = NULL, *meta = NULL;
	const char *uid, *p[8];
	int r;

	if (e->action == NULL || e->action[0] == '\0')
		return -EINVAL;
	uid = e->clinic != NULL && parse_uuid_ok(e->clinic) ?
	    e->clinic : NULL;
	if ((r = json_object_text(e->error_details, NULL, &error)) < 0 ||
	    (r = json_object_text(e->metadata, uid == NULL ? e->clinic : NULL,
	    &meta)) < 0)
		goto out;
	if ((r = auditlog_service_role(db)) < 0)
		goto out;
	p[0] = uid;
	p[1] = e->actor != NULL ? e->actor : "vetsyncctl";
	p[2] = e->action;
	p[3] = e->status;
	p[4] = e->session_id;
	p[5] = e->policy_hash;
	p[6] = error;
	p[7] = meta;
	r = db_query(db, "INSERT INTO idexx_sync_audit_log (user_id, clinic_id,"
	    " actor, action, status, session_id, policy_hash, error_details,"
	    " metadata) VALUES ($1::uuid, $1::uuid, $2, $3, $4, $5, $6,"
	    " $7::jsonb, $8::jsonb) RETURNING seq::text", 8, p, &res);
	if (r == 0 && ret_seq != NULL)
		*ret_seq = strtoll(db_result_value(res, 0, 0) != NULL ?
		    db_result_value(res, 0, 0) : "0", NULL, 10);
out:
	db_result_free(res);
	free(error);
	free(meta);
	return r;
}
