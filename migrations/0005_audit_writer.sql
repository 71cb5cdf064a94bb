-- 0005_audit_writer: the key that makes vetsyncd's audit writer idempotent.
--
-- vetsyncd spools every audit record locally first and replays the spool
-- into idexx_sync_audit_log (supervisor/auditdb.c).  Each row it writes
-- carries its record's key, metadata->>'spool_key' = "<epoch>/<seq>" (the
-- spool's random epoch and the record's number in it), and the writer's
-- INSERT skips keys already present.  This index makes a key unique, so
-- that even two writes racing (a unit sent again after a lost connection
-- while the first still commits) cannot double a row: the second fails
-- and is retried, and then finds the key.  Rows without a key (vetsyncctl's
-- direct appends, rows of the PRD's table) are not in the index.

create unique index if not exists idexx_sync_audit_log_spool_key_idx
    on idexx_sync_audit_log ((metadata->>'spool_key'))
    where metadata ? 'spool_key';
