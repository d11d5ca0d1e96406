-- Named queries of the PostgreSQL store. Each starts with a "-- name:" line; parameters
-- are psycopg's %(name)s. Tables are unqualified: the connection's search_path is the
-- store's schema.

-- name: latest_run_by_workflow_id
SELECT * FROM runs WHERE workflow_id = %(workflow_id)s
ORDER BY created_at DESC, created_seq DESC LIMIT 1;

-- name: run_by_id
SELECT * FROM runs WHERE run_id = %(run_id)s;

-- name: live_run_by_workflow_id
SELECT * FROM runs WHERE workflow_id = %(workflow_id)s
  AND status IN ('pending', 'running', 'suspended', 'parked');

-- name: insert_run
-- Creates the run and its run_started event, unless a live run with this workflow id
-- appeared meanwhile (another process): then nothing is written and no row returned.
WITH r AS (
    INSERT INTO runs (run_id, workflow_id, workflow_name, status, input, created_at,
                      updated_at, wake_at, owner, epoch, history_len)
    VALUES (%(run_id)s, %(workflow_id)s, %(workflow_name)s, %(status)s, %(input)s, %(now)s,
            %(now)s, %(wake_at)s, %(owner)s, %(epoch)s, 1)
    ON CONFLICT DO NOTHING
    RETURNING run_id
)
INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
SELECT run_id, 0, 'run_started', NULL, %(workflow_name)s, %(now)s, %(input)s, NULL FROM r
RETURNING run_id;

-- name: append
-- The hot path: fence by epoch, bump the history length, insert the events; one
-- statement, so a stale epoch writes nothing. Returns the number of fenced rows (0 or 1).
WITH fence AS (
    UPDATE runs SET history_len = %(new_len)s, updated_at = %(now)s
    WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND status = 'running'
    RETURNING run_id
), ins AS (
    INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
    SELECT f.run_id, e.seq, e.kind, e.op, e.name, e.ts, e.data, e.meta
    FROM fence f, unnest(%(seqs)s::bigint[], %(kinds)s::text[], %(ops)s::bigint[],
                         %(names)s::text[], %(tss)s::float8[], %(datas)s::bytea[],
                         %(metas)s::bytea[]) AS e(seq, kind, op, name, ts, data, meta)
)
SELECT count(*) FROM fence;

-- name: append_transition
-- An append that also changes the status (suspend, finish) and/or consumes the inbox.
-- A NULL status keeps the run's status, result, error and wake_at.
WITH fence AS (
    UPDATE runs SET history_len = %(new_len)s, updated_at = %(now)s,
        status = COALESCE(%(status)s::text, status),
        result = CASE WHEN %(status)s::text IS NULL THEN result ELSE %(result)s::bytea END,
        error = CASE WHEN %(status)s::text IS NULL THEN error ELSE %(error)s::bytea END,
        wake_at = CASE WHEN %(status)s::text IS NULL THEN wake_at
                       ELSE %(wake_at)s::float8 END,
        owner = CASE WHEN %(release)s::boolean THEN NULL ELSE owner END,
        closed_at = CASE WHEN %(terminal)s::boolean THEN %(now)s ELSE closed_at END
    WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND status = 'running'
    RETURNING run_id
), ins AS (
    INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
    SELECT f.run_id, e.seq, e.kind, e.op, e.name, e.ts, e.data, e.meta
    FROM fence f, unnest(%(seqs)s::bigint[], %(kinds)s::text[], %(ops)s::bigint[],
                         %(names)s::text[], %(tss)s::float8[], %(datas)s::bytea[],
                         %(metas)s::bytea[]) AS e(seq, kind, op, name, ts, data, meta)
), consumed AS (
    DELETE FROM inbox WHERE run_id = %(run_id)s AND id <= %(consume)s::bigint
      AND EXISTS (SELECT 1 FROM fence)
), beats AS (
    DELETE FROM heartbeats WHERE %(terminal)s::boolean AND run_id = %(run_id)s
      AND EXISTS (SELECT 1 FROM fence)
)
SELECT count(*) FROM fence;

-- name: wake_if_inbox
-- After a suspension, in its own statement (a fresh snapshot taken after the run's row
-- lock was ours): a message stored by another transaction meanwhile still wakes the run.
WITH w AS (
    UPDATE runs SET status = 'pending', wake_at = %(now)s, updated_at = %(now)s
    WHERE run_id = %(run_id)s AND status = 'suspended'
      AND EXISTS (SELECT 1 FROM inbox WHERE run_id = %(run_id)s)
    RETURNING run_id
)
SELECT pg_notify(%(channel)s, %(token)s) FROM w;

-- name: history
SELECT run_id, seq, kind, ts, op, name, data, meta FROM events
WHERE run_id = %(run_id)s ORDER BY seq;

-- name: claim
-- Due runs of these workflows, skipping rows another worker is claiming right now, then
-- (up to the same limit) running runs of these workflows whose owner's lease expired.
WITH ready AS (
    UPDATE runs SET status = 'running', owner = %(worker)s, epoch = epoch + 1,
        updated_at = %(real_now)s
    WHERE run_id IN (
        SELECT run_id FROM runs
        WHERE status IN ('pending', 'suspended') AND wake_at <= %(now)s
          AND workflow_name = ANY(%(names)s::text[])
        ORDER BY wake_at LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED)
    RETURNING run_id, workflow_id, workflow_name, epoch, history_len
), taken AS (
    UPDATE runs SET owner = %(worker)s, epoch = epoch + 1, updated_at = %(real_now)s
    WHERE run_id IN (
        SELECT run_id FROM runs
        WHERE status = 'running' AND workflow_name = ANY(%(names)s::text[])
          AND owner IN (SELECT worker_id FROM workers
                        WHERE lease_until < %(real_now)s AND worker_id <> %(worker)s)
        LIMIT GREATEST(0, %(limit)s - (SELECT count(*) FROM ready))
        FOR UPDATE SKIP LOCKED)
    RETURNING run_id, workflow_id, workflow_name, epoch, history_len
)
SELECT * FROM ready UNION ALL SELECT * FROM taken;

-- name: delete_dead_idle_workers
-- Expired workers that own nothing any more.
DELETE FROM workers w
WHERE lease_until < %(real_now)s AND worker_id <> %(worker)s
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.status = 'running' AND r.owner = w.worker_id);

-- name: unclaim_since
-- After a claim whose commit outcome is unknown: give back what it may have taken.
UPDATE runs SET status = 'pending', owner = NULL, wake_at = %(now)s, updated_at = %(now)s
WHERE status = 'running' AND owner = %(worker)s AND updated_at = %(real_now)s;

-- name: next_wake_for
SELECT MIN(wake_at) FROM runs
WHERE status IN ('pending', 'suspended') AND wake_at IS NOT NULL
  AND workflow_name = ANY(%(names)s::text[]);

-- name: list_runs
SELECT * FROM runs
WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(name)s::text IS NULL OR workflow_name = %(name)s::text)
ORDER BY created_at DESC, created_seq DESC LIMIT %(limit)s;

-- name: register_worker
INSERT INTO workers (worker_id, host, pid, started_at, lease_until)
VALUES (%(worker)s, %(host)s, %(pid)s, %(real_now)s, %(lease_until)s)
ON CONFLICT (worker_id) DO UPDATE
SET host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
    lease_until = EXCLUDED.lease_until;

-- name: renew_worker
UPDATE workers SET lease_until = %(lease_until)s WHERE worker_id = %(worker)s;

-- name: worker_pids
SELECT pid FROM workers WHERE host = %(host)s;

-- name: expire_worker_pids
UPDATE workers SET lease_until = 0 WHERE host = %(host)s AND pid = ANY(%(pids)s::bigint[]);

-- name: release_owned
UPDATE runs SET status = 'pending', owner = NULL, wake_at = %(now)s, updated_at = %(now)s
WHERE status = 'running' AND owner = %(worker)s;

-- name: delete_worker
DELETE FROM workers WHERE worker_id = %(worker)s;

-- name: release_run
UPDATE runs SET status = 'pending', owner = NULL, wake_at = %(now)s, updated_at = %(now)s
WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND status = 'running';

-- name: park_run
UPDATE runs SET status = 'parked', owner = NULL, wake_at = NULL, error = %(error)s,
    code_hash = %(code_hash)s, updated_at = %(now)s
WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND status = 'running';

-- name: unpark
UPDATE runs SET status = 'pending', wake_at = %(now)s, updated_at = %(now)s, error = NULL,
    code_hash = NULL
WHERE status = 'parked' AND workflow_name = %(name)s
  AND (code_hash IS NULL OR code_hash <> %(code_hash)s);

-- name: resume_parked
UPDATE runs SET status = 'pending', wake_at = %(now)s, updated_at = %(now)s, error = NULL,
    code_hash = NULL
WHERE run_id = %(run_id)s AND status = 'parked'
RETURNING *;

-- name: send_message
-- Lock the live run, store the message, and wake the run if it is suspended.
WITH w AS (
    UPDATE runs SET updated_at = %(now)s,
        wake_at = CASE WHEN status = 'suspended' THEN %(now)s ELSE wake_at END,
        status = CASE WHEN status = 'suspended' THEN 'pending' ELSE status END
    WHERE run_id = %(run_id)s AND status IN ('pending', 'running', 'suspended', 'parked')
    RETURNING *
), i AS (
    INSERT INTO inbox (run_id, kind, name, data, ts)
    SELECT run_id, %(kind)s, %(name)s, %(data)s, %(now)s FROM w
)
SELECT * FROM w;

-- name: read_inbox
SELECT id, kind, name, data FROM inbox WHERE run_id = %(run_id)s ORDER BY id;

-- name: runs_with_inbox
SELECT DISTINCT i.run_id FROM inbox i JOIN runs r ON r.run_id = i.run_id
WHERE r.status = 'running' AND r.owner = %(worker)s;

-- name: terminate_run
-- Fences out the owner (epoch + 1) and records run_terminated at the run's current end.
WITH t AS (
    UPDATE runs SET status = 'terminated', owner = NULL, wake_at = NULL, epoch = epoch + 1,
        history_len = history_len + 1, error = %(error)s, updated_at = %(now)s,
        closed_at = %(now)s
    WHERE run_id = %(run_id)s AND status IN ('pending', 'running', 'suspended', 'parked')
    RETURNING *
), e AS (
    INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
    SELECT run_id, history_len - 1, 'run_terminated', NULL, NULL, %(now)s, %(error)s, NULL
    FROM t
), h AS (
    DELETE FROM heartbeats WHERE run_id = %(run_id)s AND EXISTS (SELECT 1 FROM t)
), i AS (
    DELETE FROM inbox WHERE run_id = %(run_id)s AND EXISTS (SELECT 1 FROM t)
)
SELECT * FROM t;

-- name: save_heartbeat
INSERT INTO heartbeats (run_id, op, details, ts)
VALUES (%(run_id)s, %(op)s, %(details)s, %(now)s)
ON CONFLICT (run_id, op) DO UPDATE SET details = EXCLUDED.details, ts = EXCLUDED.ts;

-- name: load_heartbeats
SELECT op, details FROM heartbeats WHERE run_id = %(run_id)s;

-- name: notify
SELECT pg_notify(%(channel)s, %(token)s);

-- name: purge_lock
-- One retention job at a time per schema (held until the end of the transaction).
SELECT pg_try_advisory_xact_lock(%(key)s);

-- name: purge_finished
-- A batch of runs that ended before the cutoff, with their history and leftovers.
WITH doomed AS (
    DELETE FROM runs WHERE run_id IN (
        SELECT run_id FROM runs
        WHERE closed_at IS NOT NULL AND closed_at < %(before)s
          AND status IN ('completed', 'failed', 'cancelled', 'terminated')
        ORDER BY closed_at LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED)
    RETURNING run_id
), e AS (
    DELETE FROM events WHERE run_id IN (SELECT run_id FROM doomed)
), i AS (
    DELETE FROM inbox WHERE run_id IN (SELECT run_id FROM doomed)
), h AS (
    DELETE FROM heartbeats WHERE run_id IN (SELECT run_id FROM doomed)
)
SELECT count(*) FROM doomed;
