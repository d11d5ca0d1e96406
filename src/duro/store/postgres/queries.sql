-- Named queries of the PostgreSQL store. Each starts with a "-- name:" line; parameters
-- are psycopg's %(name)s. Tables are unqualified: the connection's search_path is the
-- store's schema.

-- name: latest_run_by_workflow_id
-- In %(namespace)s (NULL: in any namespace).
SELECT * FROM runs WHERE workflow_id = %(workflow_id)s
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
ORDER BY created_at DESC, created_seq DESC LIMIT 1;

-- name: run_by_id
SELECT * FROM runs WHERE run_id = %(run_id)s;

-- name: live_run_by_workflow_id
SELECT * FROM runs WHERE workflow_id = %(workflow_id)s
  AND status IN ('pending', 'running', 'suspended', 'parked');

-- name: insert_run
-- Creates the run (and, unless started_event is false, its run_started event), unless a
-- live run with this workflow id (or deduplication key) appeared meanwhile (another
-- process), or, with fresh, any run with this workflow id exists (the first try of a
-- start, which then needs no lookup first): then nothing is written and no row returned.
WITH r AS (
    INSERT INTO runs (run_id, workflow_id, workflow_name, status, input, created_at,
                      updated_at, wake_at, owner, epoch, history_len, parent_run_id,
                      parent_op, parent_close, deadline_at, origin_run_id, queue, priority,
                      concurrency_key, dedup_key, debounce_key, started_at, depth, headers,
                      namespace)
    SELECT %(run_id)s, %(workflow_id)s, %(workflow_name)s, %(status)s, %(input)s, %(now)s,
           %(now)s, %(wake_at)s, %(owner)s, %(epoch)s, 1, %(parent_run_id)s,
           %(parent_op)s, %(parent_close)s, %(deadline_at)s, %(origin_run_id)s, %(queue)s,
           %(priority)s, %(concurrency_key)s, %(dedup_key)s, %(debounce_key)s,
           %(started_at)s, %(depth)s, %(headers)s, %(namespace)s
    WHERE NOT (%(fresh)s::boolean
               AND EXISTS (SELECT 1 FROM runs WHERE workflow_id = %(workflow_id)s))
    ON CONFLICT DO NOTHING
    RETURNING run_id
), e AS (
    INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
    SELECT run_id, 0, 'run_started', NULL, %(workflow_name)s, %(now)s, %(input)s, %(meta)s
    FROM r WHERE %(started_event)s::boolean
)
SELECT run_id FROM r;

-- name: append
-- The hot path: fence by epoch and by the history's length (the events must continue the
-- stored history: when an earlier write of the run failed, a later one must not commit
-- past it and leave a gap), bump the length, insert the events; one statement, so a
-- failed fence writes nothing. Returns the number of fenced rows (0 or 1).
WITH fence AS (
    UPDATE runs SET history_len = %(new_len)s, updated_at = %(now)s, recoveries = 0
    WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND status = 'running'
      AND history_len = %(first_seq)s
    RETURNING run_id
), ins AS (
    INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
    SELECT f.run_id, e.seq, e.kind, e.op, e.name, e.ts, e.data, e.meta
    FROM fence f, unnest(%(seqs)s::bigint[], %(kinds)s::text[], %(ops)s::bigint[],
                         %(names)s::text[], %(tss)s::float8[], %(datas)s::bytea[],
                         %(metas)s::bytea[]) AS e(seq, kind, op, name, ts, data, meta)
)
SELECT count(*) FROM fence;

-- name: append_one
-- The hottest path of all (one step_completed): as "append" with scalar parameters,
-- which psycopg adapts several times faster than arrays.
WITH fence AS (
    UPDATE runs SET history_len = %(new_len)s, updated_at = %(now)s, recoveries = 0
    WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND status = 'running'
      AND history_len = %(seq)s
    RETURNING run_id
), ins AS (
    INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
    SELECT run_id, %(seq)s::bigint, %(kind)s::text, %(op)s::bigint, %(name)s::text,
           %(ts)s::float8, %(data)s::bytea, %(meta)s::bytea
    FROM fence
)
SELECT count(*) FROM fence;

-- name: append_transition
-- An append that also changes the status (suspend, finish) and/or consumes the inbox.
-- A NULL status keeps the run's status, result, error and wake_at.
WITH fence AS (
    UPDATE runs SET history_len = %(new_len)s, updated_at = %(now)s, recoveries = 0,
        status = COALESCE(%(status)s::text, status),
        result = CASE WHEN %(status)s::text IS NULL THEN result ELSE %(result)s::bytea END,
        error = CASE WHEN %(status)s::text IS NULL THEN error ELSE %(error)s::bytea END,
        wake_at = CASE WHEN %(status)s::text IS NULL THEN wake_at
                       ELSE %(wake_at)s::float8 END,
        owner = CASE WHEN %(release)s::boolean THEN NULL ELSE owner END,
        closed_at = CASE WHEN %(terminal)s::boolean THEN %(now)s ELSE closed_at END
    WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND status = 'running'
      AND history_len = %(first_seq)s
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

-- name: record_waits
-- What the run waits for as it suspends (duro/_waits.py), in the suspension's
-- transaction, after its fenced append; fenced too (nothing when the append was not).
UPDATE runs SET waits = %(waits)s
WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND history_len = %(new_len)s;

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
-- Without run_id: the caller has it, and a copy per event is wasted work on a long history.
SELECT seq, kind, ts, op, name, data, meta FROM events
WHERE run_id = %(run_id)s ORDER BY seq;

-- name: runs_history
-- The histories of a batch of claimed runs (Store.load_runs), grouped by run.
SELECT run_id, seq, kind, ts, op, name, data, meta FROM events
WHERE run_id = ANY(%(ids)s::text[]) ORDER BY run_id, seq;

-- name: runs_heartbeats
SELECT run_id, op, details FROM heartbeats WHERE run_id = ANY(%(ids)s::text[]);

-- name: runs_with_messages
SELECT DISTINCT run_id FROM inbox WHERE run_id = ANY(%(ids)s::text[]);

-- name: claim_open
-- Due runs of these workflows in queues without limits (or, with %(queues)s, in those of
-- them this worker serves), best priority first, skipping rows another worker is
-- claiming right now. The locking select is a MATERIALIZED CTE, evaluated once: a "WHERE
-- run_id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)" may be rescanned by a plan and
-- claim more than n.
WITH picked AS MATERIALIZED (
    SELECT run_id FROM runs
    WHERE status IN ('pending', 'suspended') AND wake_at <= %(now)s
      AND workflow_name = ANY(%(names)s::text[])
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND NOT (queue = ANY(%(limited)s::text[]))
    ORDER BY priority DESC, wake_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE runs r SET status = 'running', owner = %(worker)s, epoch = r.epoch + 1,
    updated_at = %(real_now)s, started_at = COALESCE(r.started_at, %(now)s)
FROM picked p WHERE r.run_id = p.run_id
RETURNING r.run_id, r.workflow_id, r.workflow_name, r.epoch, r.history_len, r.queue;

-- name: claim_ahead_open
-- Suspended runs due within the look-ahead window (until %(until)s), earliest first, in
-- queues without limits: loaded before their timers end so that they wake on time.
-- Never a pending run: a delayed start must not begin early.
WITH picked AS MATERIALIZED (
    SELECT run_id FROM runs
    WHERE status = 'suspended' AND wake_at <= %(until)s
      AND workflow_name = ANY(%(names)s::text[])
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND NOT (queue = ANY(%(limited)s::text[]))
    ORDER BY wake_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE runs r SET status = 'running', owner = %(worker)s, epoch = r.epoch + 1,
    updated_at = %(real_now)s
FROM picked p WHERE r.run_id = p.run_id
RETURNING r.run_id, r.workflow_id, r.workflow_name, r.epoch, r.history_len, r.queue;

-- name: take_over
-- Running runs of these workflows whose owner's lease expired, up to the room left. A
-- recovery, counted until the run writes something (a run whose code kills its worker
-- would otherwise crash every worker in turn, forever): always for the first two in a
-- row, then only if the run died on trial (taken up alone: see worker/_recovery.py).
WITH orphans AS MATERIALIZED (
    SELECT run_id FROM runs
    WHERE status = 'running' AND workflow_name = ANY(%(names)s::text[])
      AND owner IN (SELECT worker_id FROM workers
                    WHERE lease_until < %(real_now)s AND worker_id <> %(worker)s)
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE runs r SET owner = %(worker)s, epoch = r.epoch + 1, updated_at = %(real_now)s,
    recoveries = CASE WHEN r.recoveries < 2 OR r.on_trial = 1 THEN r.recoveries + 1
                      ELSE r.recoveries END,
    on_trial = 0
FROM orphans o WHERE r.run_id = o.run_id
RETURNING r.run_id, r.workflow_id, r.workflow_name, r.epoch, r.history_len, r.queue,
    r.recoveries;

-- name: mark_trial
UPDATE runs SET on_trial = 1
WHERE run_id = %(run_id)s AND epoch = %(epoch)s AND status = 'running';

-- name: release_dead_tasks
-- Step tasks held by workers whose lease expired go back to their queue.
UPDATE tasks SET status = 'pending', owner = NULL, updated_at = %(real_now)s
WHERE status = 'running'
  AND owner IN (SELECT worker_id FROM workers
                WHERE lease_until < %(real_now)s AND worker_id <> %(worker)s);

-- name: queue_configs
SELECT name, concurrency, per_worker, rate_limit, rate_period, key_concurrency FROM queues;

-- name: lock_queue
-- Claims in a limited queue hold its row until they commit: one claimer at a time checks
-- (and uses up) the limits, whatever the number of workers.
SELECT name, concurrency, per_worker, rate_limit, rate_period, key_concurrency
FROM queues WHERE name = %(queue)s FOR UPDATE;

-- name: queue_running
SELECT count(*) AS n FROM runs WHERE queue = %(queue)s AND status = 'running';

-- name: queue_running_by_key
SELECT concurrency_key, count(*) AS n FROM runs
WHERE queue = %(queue)s AND status = 'running' AND concurrency_key IS NOT NULL
GROUP BY concurrency_key;

-- name: queue_rate_window
-- With the queue's row locked: the database's clock now (the stamp of this claim's first
-- starts, one clock for every host), and the starts within the period before it, after
-- forgetting older ones.
WITH t AS MATERIALIZED (SELECT extract(epoch FROM clock_timestamp())::float8 AS stamp),
forget AS (
    DELETE FROM queue_starts
    WHERE queue = %(queue)s AND ts <= (SELECT stamp FROM t) - %(period)s
)
SELECT t.stamp, (SELECT count(*) FROM queue_starts
                 WHERE queue = %(queue)s AND ts > t.stamp - %(period)s) AS n
FROM t;

-- name: queue_started_lately
-- Starts within the last period, by the database's clock (the one claims stamp with).
SELECT count(*) AS n FROM queue_starts
WHERE queue = %(queue)s AND ts > extract(epoch FROM clock_timestamp()) - %(period)s;

-- name: queue_record_starts
INSERT INTO queue_starts (queue, ts) SELECT %(queue)s, %(stamp)s FROM generate_series(1, %(n)s);

-- name: queue_candidates
SELECT run_id, concurrency_key, started_at FROM runs
WHERE queue = %(queue)s AND status IN ('pending', 'suspended') AND wake_at <= %(now)s
  AND workflow_name = ANY(%(names)s::text[])
ORDER BY priority DESC, wake_at LIMIT %(page)s OFFSET %(offset)s
FOR UPDATE SKIP LOCKED;

-- name: claim_ids
UPDATE runs SET status = 'running', owner = %(worker)s, epoch = epoch + 1,
    updated_at = %(real_now)s, started_at = COALESCE(started_at, %(now)s)
WHERE run_id = ANY(%(ids)s::text[]) AND status IN ('pending', 'suspended')
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue;

-- name: upsert_queue
INSERT INTO queues (name, concurrency, per_worker, rate_limit, rate_period, key_concurrency,
                    updated_at)
VALUES (%(name)s, %(concurrency)s, %(per_worker)s, %(rate_limit)s, %(rate_period)s,
        %(key_concurrency)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency,
    per_worker = EXCLUDED.per_worker, rate_limit = EXCLUDED.rate_limit,
    rate_period = EXCLUDED.rate_period, key_concurrency = EXCLUDED.key_concurrency,
    updated_at = EXCLUDED.updated_at;

-- name: queue_counts
-- Of %(namespace)s's runs (NULL: every namespace's).
SELECT queue, status, count(*) AS n FROM runs
WHERE status IN ('pending', 'suspended', 'running')
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
GROUP BY queue, status;

-- name: queue_task_counts
-- Step tasks per queue (pending: waiting for a worker of the queue; running: claimed),
-- of %(namespace)s's runs (NULL: every namespace's).
SELECT t.queue, t.status, count(*) AS n FROM tasks t
WHERE t.status IN ('pending', 'running')
  AND (%(namespace)s::text IS NULL
       OR t.run_id IN (SELECT run_id FROM runs WHERE namespace = %(namespace)s::text))
GROUP BY t.queue, t.status;

-- name: live_dedup
SELECT * FROM runs WHERE queue = %(queue)s AND dedup_key = %(key)s
  AND status IN ('pending', 'running', 'suspended', 'parked');

-- name: pending_debounce
-- Starts fold into a pending run of their own namespace only (NULL: any).
SELECT * FROM runs WHERE queue = %(queue)s AND debounce_key = %(key)s AND status = 'pending'
  AND started_at IS NULL
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
FOR UPDATE;

-- name: debounce_again
-- Not started yet, so nothing has read its input: the last start's wins, and the quiet
-- period starts over.
WITH e AS (
    UPDATE events SET data = %(input)s, ts = %(now)s WHERE run_id = %(run_id)s AND seq = 0
)
UPDATE runs SET input = %(input)s, wake_at = %(wake_at)s, updated_at = %(now)s
WHERE run_id = %(run_id)s
RETURNING *;

-- name: enqueue_task
INSERT INTO tasks (task_id, run_id, op, attempt, step, queue, args, info, status,
                   created_at, updated_at)
VALUES (%(task_id)s, %(run_id)s, %(op)s, %(attempt)s, %(step)s, %(queue)s, %(args)s,
        %(info)s, 'pending', %(now)s, %(now)s)
ON CONFLICT (task_id) DO NOTHING;

-- name: waits_of_run
SELECT waits FROM runs WHERE run_id = %(run_id)s;

-- name: open_tasks_of_run
-- The run's step tasks not done yet (pending: no worker of the queue claimed it yet;
-- running: claimed by owner), oldest first (tasks_run index).
SELECT op, attempt, step, queue, status, owner, created_at, updated_at FROM tasks
WHERE run_id = %(run_id)s AND status IN ('pending', 'running')
ORDER BY created_at;

-- name: next_task
SELECT 1 AS found FROM tasks WHERE status = 'pending'
  AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
  AND step = ANY(%(steps)s::text[])
LIMIT 1;

-- name: claim_tasks
WITH picked AS MATERIALIZED (
    SELECT task_id FROM tasks WHERE status = 'pending'
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND step = ANY(%(steps)s::text[])
    ORDER BY created_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks t SET status = 'running', owner = %(worker)s, updated_at = %(real_now)s
FROM picked p WHERE t.task_id = p.task_id
RETURNING t.task_id, t.run_id, t.op, t.attempt, t.step, t.queue, t.args, t.info;

-- name: finish_task
UPDATE tasks SET status = 'done', updated_at = %(now)s
WHERE task_id = %(task_id)s AND status = 'running' AND owner = %(worker)s
RETURNING task_id;

-- name: cancel_task
DELETE FROM tasks WHERE task_id = %(task_id)s AND status = 'pending';

-- name: release_tasks_of
UPDATE tasks SET status = 'pending', owner = NULL, updated_at = %(now)s
WHERE owner = %(worker)s AND status = 'running';

-- name: delete_tasks_of_run
DELETE FROM tasks WHERE run_id = %(run_id)s;

-- name: closing_links
-- What a run's end affects: its parent (kind 'parent', if it has one) and its live
-- children (kind 'child'), with whether each child is already being cancelled.
SELECT 'parent' AS kind, r.parent_run_id AS run_id, r.parent_op AS parent_op,
       p.status AS status, NULL::text AS policy, false AS cancelling
FROM runs r JOIN runs p ON p.run_id = r.parent_run_id
WHERE r.run_id = %(run_id)s
UNION ALL
SELECT 'child', c.run_id, NULL, c.status, c.parent_close,
       EXISTS (SELECT 1 FROM inbox i WHERE i.run_id = c.run_id AND i.kind = 'cancel')
       OR EXISTS (SELECT 1 FROM events e WHERE e.run_id = c.run_id
                  AND e.kind = 'cancel_requested')
FROM runs c
WHERE c.parent_run_id = %(run_id)s
  AND c.status IN ('pending', 'running', 'suspended', 'parked');

-- name: history_prefix
SELECT seq, kind, ts, op, name, data, meta FROM events
WHERE run_id = %(run_id)s AND seq < %(upto)s ORDER BY seq;

-- name: insert_events
INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
SELECT %(run_id)s, e.seq, e.kind, e.op, e.name, e.ts, e.data, e.meta
FROM unnest(%(seqs)s::bigint[], %(kinds)s::text[], %(ops)s::bigint[], %(names)s::text[],
            %(tss)s::float8[], %(datas)s::bytea[], %(metas)s::bytea[])
     AS e(seq, kind, op, name, ts, data, meta);

-- name: set_history_len
UPDATE runs SET history_len = %(len)s WHERE run_id = %(run_id)s;

-- name: put_state
-- Published state copied with a history (reset, retry, fork): not fenced.
INSERT INTO run_state (run_id, key, value, ts)
VALUES (%(run_id)s, %(key)s, %(value)s, %(ts)s)
ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, ts = EXCLUDED.ts;

-- name: copy_state
INSERT INTO run_state (run_id, key, value, ts)
SELECT %(new_run_id)s, key, value, ts FROM run_state WHERE run_id = %(run_id)s;

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
-- The earliest due time of a ready run of these workflows, or 0 (due now) when a worker
-- that owns running runs of them let its lease expire (by the database's clock): then the
-- survivors claim at their next poll and take those runs over, instead of waiting for
-- their periodic takeover check. Cheap: the workers table is small, runs_owned is indexed.
SELECT CASE WHEN EXISTS (
    SELECT 1 FROM workers w
    WHERE w.lease_until < extract(epoch FROM clock_timestamp())
      AND EXISTS (SELECT 1 FROM runs r WHERE r.owner = w.worker_id AND r.status = 'running'
                  AND r.workflow_name = ANY(%(names)s::text[])))
  THEN 0
  ELSE (SELECT MIN(wake_at) FROM runs
        WHERE status IN ('pending', 'suspended') AND wake_at IS NOT NULL
          AND workflow_name = ANY(%(names)s::text[]))
END AS due;

-- Listings: a page of runs, newest first, ties by run id (descending, in the "C"
-- collation: code point order, as on SQLite), strictly below the keyset bound
-- (upper_at, upper_id) and created at or after lower_at; the query is picked by
-- store/_rules.list_query after the index its filters allow. Each page is one range of
-- an index read backwards, no sort (EXPLAIN: "Index Scan Backward using runs_created ...
-- Index Cond: ((ROW(created_at, (run_id)::text) < ROW(...)) AND (created_at >= ...))",
-- and for a rare status the same on runs_status with "status = ..." first; a common
-- status may be read off runs_created, filtered, which the planner prices lower;
-- tests/integration/test_listing.py checks the plans; a namespace's listing reads
-- runs_namespace the same way). The other filters are checked on the rows the range
-- yields; %(namespace)s (NULL: every namespace) is one of them.

-- name: list_runs
SELECT * FROM runs
WHERE (created_at, run_id COLLATE "C") < (%(upper_at)s::float8, %(upper_id)s::text)
  AND created_at >= %(lower_at)s::float8
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(name)s::text IS NULL OR workflow_name = %(name)s::text)
  AND (%(prefix)s::text IS NULL OR starts_with(workflow_id, %(prefix)s::text))
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT %(limit)s;

-- name: list_runs_by_namespace
-- Not for 'default' (runs_namespace leaves it out: list_runs reads runs_created); the
-- literal term is what lets the planner use the partial index.
SELECT * FROM runs
WHERE namespace = %(namespace)s::text AND namespace <> 'default'
  AND (created_at, run_id COLLATE "C") < (%(upper_at)s::float8, %(upper_id)s::text)
  AND created_at >= %(lower_at)s::float8
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(name)s::text IS NULL OR workflow_name = %(name)s::text)
  AND (%(prefix)s::text IS NULL OR starts_with(workflow_id, %(prefix)s::text))
ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT %(limit)s;

-- name: list_runs_by_status
SELECT * FROM runs
WHERE status = %(status)s::text
  AND (created_at, run_id COLLATE "C") < (%(upper_at)s::float8, %(upper_id)s::text)
  AND created_at >= %(lower_at)s::float8
  AND (%(name)s::text IS NULL OR workflow_name = %(name)s::text)
  AND (%(prefix)s::text IS NULL OR starts_with(workflow_id, %(prefix)s::text))
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT %(limit)s;

-- name: list_runs_by_name
SELECT * FROM runs
WHERE workflow_name = %(name)s::text
  AND (created_at, run_id COLLATE "C") < (%(upper_at)s::float8, %(upper_id)s::text)
  AND created_at >= %(lower_at)s::float8
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(prefix)s::text IS NULL OR starts_with(workflow_id, %(prefix)s::text))
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT %(limit)s;

-- name: list_runs_by_attribute
-- The range of the first attribute's (key, value) in run_search_attributes_match; the
-- other attributes (more_keys, more_values) must all match too.
SELECT r.* FROM run_search_attributes a JOIN runs r ON r.run_id = a.run_id
WHERE a.key = %(key)s::text AND a.value = %(value)s::text
  AND (a.created_at, a.run_id COLLATE "C") < (%(upper_at)s::float8, %(upper_id)s::text)
  AND a.created_at >= %(lower_at)s::float8
  AND (%(status)s::text IS NULL OR r.status = %(status)s::text)
  AND (%(name)s::text IS NULL OR r.workflow_name = %(name)s::text)
  AND (%(prefix)s::text IS NULL OR starts_with(r.workflow_id, %(prefix)s::text))
  AND (%(namespace)s::text IS NULL OR r.namespace = %(namespace)s::text)
  AND (%(n_more)s::int = 0 OR (
      SELECT count(*) FROM run_search_attributes m
      JOIN unnest(%(more_keys)s::text[], %(more_values)s::text[]) AS w(key, value)
          ON m.key = w.key AND m.value = w.value
      WHERE m.run_id = r.run_id) = %(n_more)s::int)
ORDER BY a.created_at DESC, a.run_id COLLATE "C" DESC LIMIT %(limit)s;

-- name: search_attributes_of
-- The attributes of a page of runs, in one read.
SELECT run_id, key, data FROM run_search_attributes
WHERE run_id = ANY(%(ids)s::text[]) ORDER BY run_id, key;

-- name: register_worker
INSERT INTO workers (worker_id, host, pid, started_at, lease_until, queues)
VALUES (%(worker)s, %(host)s, %(pid)s, %(real_now)s, %(lease_until)s, %(queues)s)
ON CONFLICT (worker_id) DO UPDATE
SET host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
    lease_until = EXCLUDED.lease_until, queues = EXCLUDED.queues;

-- name: renew_worker
UPDATE workers SET lease_until = %(lease_until)s WHERE worker_id = %(worker)s;

-- name: list_workers
-- Every registered worker with the runs it holds (runs_owned: one index probe each).
SELECT w.worker_id, w.host, w.pid, w.started_at, w.lease_until, w.queues,
       (SELECT count(*) FROM runs r
        WHERE r.owner = w.worker_id AND r.status = 'running') AS running
FROM workers w ORDER BY w.started_at, w.worker_id;

-- name: worker_pids
SELECT pid FROM workers WHERE host = %(host)s;

-- name: expire_worker_pids
UPDATE workers SET lease_until = 0 WHERE host = %(host)s AND pid = ANY(%(pids)s::bigint[]);

-- name: worker_session_lock
-- A worker's liveness lock (see _liveness.py), taken by its session and kept until the
-- session ends; the server instance tells a probe whether it still holds it there.
SELECT pg_try_advisory_lock(hashtextextended(%(prefix)s || %(worker)s, 0)),
       pg_postmaster_start_time();

-- name: worker_session_keep
-- The liveness session idles by design: a server-wide idle_session_timeout (PostgreSQL 14+)
-- must not end it, or its worker would be presumed dead every time.
SET idle_session_timeout = 0;

-- name: worker_session_unlock
SELECT pg_advisory_unlock(hashtextextended(%(prefix)s || %(worker)s, 0));

-- name: worker_sessions
-- Whose liveness lock is free, for every registered worker and for the prober's own
-- (%(ours)s: its row may be gone, its lock must still be checked). Trying each lock costs
-- a lookup in the lock table; reading pg_locks instead would latch all of it, on every
-- worker's probe. A lock taken here ends with this (autocommit) statement.
SELECT w.id, pg_try_advisory_xact_lock(hashtextextended(%(prefix)s || w.id, 0)),
       pg_postmaster_start_time()
FROM (SELECT worker_id FROM workers UNION SELECT unnest(%(ours)s::text[])) AS w (id);

-- name: expire_workers
UPDATE workers SET lease_until = 0 WHERE worker_id = ANY(%(workers)s::text[]);

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
    code_hash = NULL, recoveries = 0
WHERE status = 'parked' AND workflow_name = %(name)s
  AND (code_hash IS NULL OR code_hash <> %(code_hash)s);

-- name: resume_parked
UPDATE runs SET status = 'pending', wake_at = %(now)s, updated_at = %(now)s, error = NULL,
    code_hash = NULL, recoveries = 0
WHERE run_id = %(run_id)s AND status = 'parked'
RETURNING *;

-- name: send_message
-- Lock the live run, store the message (and an update request's row, a signal id's row:
-- a signal id the run already has stores nothing but the wake-up), and wake the run
-- if it is suspended; nothing at all if the run is no longer live (it may have ended, or
-- continued as new, since the caller looked it up).
WITH w AS (
    UPDATE runs SET updated_at = %(now)s,
        wake_at = CASE WHEN status = 'suspended' THEN %(now)s ELSE wake_at END,
        status = CASE WHEN status = 'suspended' THEN 'pending' ELSE status END
    WHERE run_id = %(run_id)s AND status IN ('pending', 'running', 'suspended', 'parked')
    RETURNING *
), s AS (
    -- A signal id: its row, unless the run has it (a concurrent delivery's insert is
    -- waited for); the message goes in only if this row did.
    INSERT INTO signal_ids (run_id, signal_id, ts)
    SELECT run_id, %(signal_id)s::text, %(now)s FROM w WHERE %(signal_id)s::text IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING run_id
), i AS (
    INSERT INTO inbox (run_id, kind, name, data, meta, ts)
    SELECT run_id, %(kind)s, %(name)s, %(data)s, %(meta)s, %(now)s FROM w
    WHERE %(signal_id)s::text IS NULL OR EXISTS (SELECT 1 FROM s)
), u AS (
    INSERT INTO updates (run_id, update_id, name, status, ts)
    SELECT run_id, %(update_id)s::text, %(name)s, 'requested', %(now)s FROM w
    WHERE %(update_id)s::text IS NOT NULL
)
SELECT * FROM w;

-- name: delete_update
DELETE FROM updates WHERE run_id = %(run_id)s AND update_id = %(update_id)s;

-- name: find_signal
-- The workflow id's latest run, if its current chain of runs (as find_update's) already
-- took this signal id; no row if not.
SELECT * FROM runs WHERE workflow_id = %(workflow_id)s AND EXISTS (
    SELECT 1 FROM signal_ids s JOIN runs r ON r.run_id = s.run_id
    WHERE r.workflow_id = %(workflow_id)s AND s.signal_id = %(signal_id)s
      AND r.created_seq >= COALESCE((SELECT max(created_seq) FROM runs
                                     WHERE workflow_id = %(workflow_id)s
                                       AND origin_run_id IS NULL), 0))
ORDER BY created_at DESC, created_seq DESC LIMIT 1;

-- name: consume_inbox
DELETE FROM inbox WHERE run_id = %(run_id)s AND id <= %(upto)s;

-- name: put_search_attributes
-- A new run's search attributes (its start's, or a copy's): not fenced.
INSERT INTO run_search_attributes (run_id, key, value, data, created_at)
SELECT %(run_id)s::text, a.key, a.value, a.data, %(created_at)s::float8
FROM unnest(%(keys)s::text[], %(values)s::text[], %(datas)s::text[]) AS a(key, value, data)
ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, data = EXCLUDED.data;

-- name: upsert_search_attributes
-- Search attributes follow the history: written with the search_attributes_upserted
-- event, fenced, with the run's creation time.
WITH fence AS (
    SELECT created_at FROM runs WHERE run_id = %(run_id)s AND epoch = %(epoch)s
      AND history_len = %(new_len)s
), gone AS (
    DELETE FROM run_search_attributes
    WHERE run_id = %(run_id)s AND key = ANY(%(deleted)s::text[])
      AND EXISTS (SELECT 1 FROM fence)
)
INSERT INTO run_search_attributes (run_id, key, value, data, created_at)
SELECT %(run_id)s::text, a.key, a.value, a.data, f.created_at
FROM fence f,
     unnest(%(keys)s::text[], %(values)s::text[], %(datas)s::text[]) AS a(key, value, data)
ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, data = EXCLUDED.data;

-- name: copy_search_attributes
-- Continue-as-new: the successor (created now) keeps its predecessor's attributes.
INSERT INTO run_search_attributes (run_id, key, value, data, created_at)
SELECT %(new_run_id)s, key, value, data, %(now)s FROM run_search_attributes
WHERE run_id = %(run_id)s;

-- name: upsert_state
-- Published state follows the history: written with the state_set event, fenced.
INSERT INTO run_state (run_id, key, value, ts)
SELECT %(run_id)s::text, %(key)s::text, %(value)s::bytea, %(ts)s::float8
WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = %(run_id)s AND epoch = %(epoch)s
              AND history_len = %(new_len)s)
ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, ts = EXCLUDED.ts;

-- name: set_update
UPDATE updates SET status = %(status)s, result = %(result)s, error = %(error)s, ts = %(ts)s
WHERE run_id = %(run_id)s AND update_id = %(update_id)s
  AND EXISTS (SELECT 1 FROM runs WHERE run_id = %(run_id)s AND epoch = %(epoch)s
              AND history_len = %(new_len)s);

-- name: read_inbox
SELECT id, kind, name, data, meta FROM inbox WHERE run_id = %(run_id)s ORDER BY id;

-- name: runs_with_inbox
SELECT DISTINCT i.run_id FROM inbox i JOIN runs r ON r.run_id = i.run_id
WHERE r.status = 'running' AND r.owner = %(worker)s;

-- name: close_run
-- End a live run from outside its worker (terminate; time out, fenced by the caller's
-- epoch): fences out the owner (epoch + 1) and records the closing event at the run's end.
WITH t AS (
    UPDATE runs SET status = %(status)s, owner = NULL, wake_at = NULL, epoch = epoch + 1,
        history_len = history_len + 1, error = %(error)s, updated_at = %(now)s,
        closed_at = %(now)s
    WHERE run_id = %(run_id)s AND status IN ('pending', 'running', 'suspended', 'parked')
      AND (%(epoch)s::bigint IS NULL OR epoch = %(epoch)s::bigint)
    RETURNING *
), e AS (
    INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
    SELECT run_id, history_len - 1, %(kind)s, NULL, NULL, %(now)s, %(error)s, NULL
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

-- name: get_state
SELECT value FROM run_state WHERE run_id = %(run_id)s AND key = %(key)s;

-- name: get_update
SELECT status, result, error FROM updates WHERE run_id = %(run_id)s AND update_id = %(update_id)s;

-- name: find_update
-- An update id within the workflow id's current chain of runs: those made since its
-- newest fresh start (continue-as-new and reset runs have an origin; a start does not).
SELECT u.run_id, r.namespace, u.status, u.result, u.error
FROM updates u JOIN runs r ON r.run_id = u.run_id
WHERE r.workflow_id = %(workflow_id)s AND u.update_id = %(update_id)s
  AND r.created_seq >= COALESCE((SELECT max(created_seq) FROM runs
                                 WHERE workflow_id = %(workflow_id)s
                                   AND origin_run_id IS NULL), 0)
ORDER BY r.created_seq DESC LIMIT 1;

-- name: reject_update
WITH u AS (
    UPDATE updates SET status = 'rejected', result = NULL, error = %(error)s, ts = %(now)s
    WHERE run_id = %(run_id)s AND update_id = %(update_id)s
)
DELETE FROM inbox WHERE id = %(message_id)s;

-- name: run_depth
-- A parent's nesting depth and namespace (its children are one deeper, in the same).
SELECT depth, namespace FROM runs WHERE run_id = %(run_id)s;

-- name: children_of
SELECT * FROM runs WHERE parent_run_id = %(run_id)s ORDER BY created_at, created_seq;

-- name: notify
SELECT pg_notify(%(channel)s, %(token)s);

-- name: purge_lock
-- One retention job at a time per schema (held until the end of the transaction).
SELECT pg_try_advisory_xact_lock(%(key)s);

-- name: purge_doomed
-- A batch of runs that ended before the cutoff (locked), and their histories: deleted
-- here, before the runs (purge_finished), so the stats rollup's trigger still finds the
-- run of each event it takes out.
WITH doomed AS MATERIALIZED (
    SELECT run_id FROM runs
    WHERE closed_at IS NOT NULL AND closed_at < %(before)s
      AND status NOT IN ('pending', 'running', 'suspended', 'parked')
    ORDER BY closed_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), e AS (
    DELETE FROM events WHERE run_id IN (SELECT run_id FROM doomed)
)
SELECT coalesce(array_agg(run_id), '{}') FROM doomed;

-- name: purge_finished
-- The runs of purge_doomed, with their leftovers.
WITH doomed AS MATERIALIZED (
    SELECT unnest(%(ids)s::text[]) AS run_id
), r AS (
    DELETE FROM runs WHERE run_id IN (SELECT run_id FROM doomed)
), i AS (
    DELETE FROM inbox WHERE run_id IN (SELECT run_id FROM doomed)
), h AS (
    DELETE FROM heartbeats WHERE run_id IN (SELECT run_id FROM doomed)
), s AS (
    DELETE FROM run_state WHERE run_id IN (SELECT run_id FROM doomed)
), u AS (
    DELETE FROM updates WHERE run_id IN (SELECT run_id FROM doomed)
), a AS (
    DELETE FROM run_search_attributes WHERE run_id IN (SELECT run_id FROM doomed)
), g AS (
    DELETE FROM signal_ids WHERE run_id IN (SELECT run_id FROM doomed)
), p AS (
    DELETE FROM approvals WHERE run_id IN (SELECT run_id FROM doomed)
), t AS (
    DELETE FROM run_streams WHERE run_id IN (SELECT run_id FROM doomed)
), o AS (
    DELETE FROM run_stream_ops WHERE run_id IN (SELECT run_id FROM doomed)
)
SELECT count(*) FROM doomed;

-- name: owned_runs
SELECT run_id, epoch FROM runs WHERE status = 'running' AND owner = %(worker)s;

-- name: writer_stamp
-- First statement of every write transaction (see migration 0005): fails on the key when
-- the writer settled this batch number as lost (a late transaction of a lost connection).
INSERT INTO writer_commits (writer_id, batch) VALUES (%(writer)s, %(batch)s);

-- name: writer_prune
-- Queued with a stamp now and then: only the latest batch's key is ever asked about, and
-- keys of settled lost batches stay to keep their late transactions out.
DELETE FROM writer_commits WHERE writer_id = %(writer)s AND batch < %(batch)s AND NOT fenced;

-- name: writer_settle
-- After a lost connection: waits for a transaction still holding the lost batch's key. A
-- row back means the key was free: that batch did not commit, and now never will.
INSERT INTO writer_commits (writer_id, batch, fenced) VALUES (%(writer)s, %(batch)s, true)
ON CONFLICT (writer_id, batch) DO NOTHING
RETURNING batch;

-- name: writer_gone
DELETE FROM writer_commits WHERE writer_id = %(writer)s;

-- name: writer_forget_stale
-- Keys of writers that stopped without saying so (a killed process).
DELETE FROM writer_commits WHERE at < now() - interval '7 days';

-- name: writer_end_stuck
-- The lost connection's backend still holds the batch's key (the server has not noticed
-- the client is gone): end it, which rolls its transaction back.
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE pid = %(pid)s AND backend_xid IS NOT NULL;

-- name: ask_query
INSERT INTO queries (query_id, run_id, workflow_id, workflow_name, name, args, headers,
                     created_at, expires_at)
VALUES (%(query_id)s, %(run_id)s, %(workflow_id)s, %(workflow_name)s, %(name)s, %(args)s,
        %(headers)s, %(now)s, %(expires_at)s);

-- name: open_queries
-- Questions no live worker is answering, for workflows a worker has the code of.
SELECT query_id, run_id, workflow_id, workflow_name, name, args, headers, created_at,
       expires_at
FROM queries
WHERE answered_at IS NULL AND workflow_name = ANY(%(names)s::text[])
  AND expires_at > %(now)s AND (claimed_by IS NULL OR claimed_at < %(stale)s)
ORDER BY created_at LIMIT %(limit)s;

-- name: claim_query
UPDATE queries SET claimed_by = %(worker)s, claimed_at = %(now)s
WHERE query_id = %(query_id)s AND answered_at IS NULL
  AND (claimed_by IS NULL OR claimed_at < %(stale)s);

-- name: answer_query
UPDATE queries SET answered_at = %(now)s, answer = %(answer)s, error = %(error)s
WHERE query_id = %(query_id)s AND answered_at IS NULL;

-- name: query_answer
SELECT answered_at, answer, error FROM queries WHERE query_id = %(query_id)s;

-- name: forget_query
DELETE FROM queries WHERE query_id = %(query_id)s;

-- name: expire_queries
-- Questions whose askers stopped waiting (and so never read or deleted them).
DELETE FROM queries WHERE expires_at < %(now)s;

-- Analytics (Client.stats, store/_base/_stats.py) over the rollup of migration 0017: the
-- rollup (stats_runs, stats_steps) and what it does not hold yet of the pending runs
-- (*_pending), for the whole hours of the window (hour >= :from_hour); the facts views
-- for the runs of its partial first hour (listed_at >= :since, hour < :from_hour). Rows
-- of the same shape as SQLite's.

-- name: stats_runs
SELECT workflow_name, status, dbucket, erred, etype, sum(n) AS n FROM stats_runs
WHERE hour >= %(from_hour)s
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
  AND (%(name)s::text IS NULL OR workflow_name = %(name)s::text)
GROUP BY namespace, workflow_name, status, dbucket, erred, etype HAVING sum(n) <> 0;

-- name: stats_runs_pending
-- What the rollup does not hold yet of the pending runs (as sqlite/queries.sql): their
-- facts now, less their facts as counted.
SELECT workflow_name, status, dbucket, erred, etype, sum(n) AS n FROM (
    SELECT f.namespace, f.workflow_name, f.hour, f.status, f.dbucket, f.erred, f.etype,
           1 AS n
    FROM stats_pending p JOIN runs r ON r.run_id = p.run_id
    CROSS JOIN LATERAL stats_run_fact(r) f
    UNION ALL
    SELECT c.namespace, c.workflow_name, c.hour, c.status, c.dbucket, c.erred, c.etype, -1
    FROM stats_pending p JOIN stats_counted c ON c.run_id = p.run_id) x
WHERE hour >= %(from_hour)s
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
  AND (%(name)s::text IS NULL OR workflow_name = %(name)s::text)
GROUP BY namespace, workflow_name, status, dbucket, erred, etype HAVING sum(n) <> 0;

-- name: stats_steps_pending
-- The step events of the pending runs past what was counted of them.
SELECT f.workflow_name, f.step, f.kind, f.etype, f.dbucket, count(*) AS n,
       sum(f.calls) AS calls, sum(f.input_tokens)::bigint AS input_tokens,
       sum(f.output_tokens)::bigint AS output_tokens, sum(f.cost) AS cost,
       sum(f.unpriced) AS unpriced
FROM stats_pending p
JOIN runs r ON r.run_id = p.run_id
LEFT JOIN stats_counted c ON c.run_id = p.run_id
CROSS JOIN LATERAL (
    SELECT e FROM events e
    WHERE e.run_id = p.run_id AND e.seq >= coalesce(c.counted_len, 0)
      AND e.kind IN ('step_completed', 'step_retrying', 'step_failed')) x
CROSS JOIN LATERAL stats_step_fact(x.e, r) f
WHERE f.hour >= %(from_hour)s
  AND (%(namespace)s::text IS NULL OR f.namespace = %(namespace)s::text)
  AND (%(name)s::text IS NULL OR f.workflow_name = %(name)s::text)
GROUP BY f.namespace, f.workflow_name, f.step, f.kind, f.etype, f.dbucket;

-- Bringing up to :limit pending runs into the rollup (postgres/_store.py stats): in one
-- repeatable-read transaction holding stats_catch_up_lock, the batch is picked into a
-- temporary table, then, in this order, its counted facts go out, its facts now and its
-- events past the counted length come in, the counted state moves on, the runs are no
-- longer pending. A run written meanwhile (its commit not in this snapshot) marks itself
-- pending again after this transaction ends (the unique key makes it wait).

-- name: stats_catch_up_lock
SELECT pg_try_advisory_xact_lock(%(key)s);

-- name: stats_catch_up_pick
CREATE TEMPORARY TABLE stats_catching_up ON COMMIT DROP AS
SELECT run_id FROM stats_pending ORDER BY run_id LIMIT %(limit)s;

-- name: stats_catch_up_runs_out
INSERT INTO stats_runs AS t
SELECT namespace, workflow_name, status, dbucket, erred, etype, hour, -count(*)
FROM stats_counted WHERE run_id IN (SELECT run_id FROM stats_catching_up)
GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (namespace, workflow_name, status, dbucket, erred, etype, hour)
DO UPDATE SET n = t.n + excluded.n;

-- name: stats_catch_up_runs_in
INSERT INTO stats_runs AS t
SELECT f.namespace, f.workflow_name, f.status, f.dbucket, f.erred, f.etype, f.hour, count(*)
FROM runs r CROSS JOIN LATERAL stats_run_fact(r) f WHERE r.run_id IN (SELECT run_id FROM stats_catching_up)
GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (namespace, workflow_name, status, dbucket, erred, etype, hour)
DO UPDATE SET n = t.n + excluded.n;

-- name: stats_catch_up_steps
INSERT INTO stats_steps AS t
SELECT f.namespace, f.workflow_name, f.step, f.kind, f.etype, f.dbucket, f.hour, count(*),
       sum(f.calls), sum(f.input_tokens), sum(f.output_tokens), sum(f.cost), sum(f.unpriced)
FROM runs r
LEFT JOIN stats_counted c ON c.run_id = r.run_id
CROSS JOIN LATERAL (
    SELECT e FROM events e
    WHERE e.run_id = r.run_id AND e.seq >= coalesce(c.counted_len, 0)
      AND e.kind IN ('step_completed', 'step_retrying', 'step_failed')) x
CROSS JOIN LATERAL stats_step_fact(x.e, r) f
WHERE r.run_id IN (SELECT run_id FROM stats_catching_up)
GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (namespace, workflow_name, step, kind, etype, dbucket, hour)
DO UPDATE SET n = t.n + excluded.n, calls = t.calls + excluded.calls,
    input_tokens = t.input_tokens + excluded.input_tokens,
    output_tokens = t.output_tokens + excluded.output_tokens,
    cost = t.cost + excluded.cost, unpriced = t.unpriced + excluded.unpriced;

-- name: stats_catch_up_counted
INSERT INTO stats_counted AS t
SELECT f.run_id,
       coalesce((SELECT max(e.seq) + 1 FROM events e WHERE e.run_id = r.run_id), 0),
       f.namespace, f.workflow_name, f.status, f.dbucket, f.erred, f.etype, f.hour
FROM runs r CROSS JOIN LATERAL stats_run_fact(r) f WHERE r.run_id IN (SELECT run_id FROM stats_catching_up)
ON CONFLICT (run_id) DO UPDATE SET counted_len = excluded.counted_len,
    status = excluded.status, dbucket = excluded.dbucket, erred = excluded.erred,
    etype = excluded.etype;

-- name: stats_catch_up_done
DELETE FROM stats_pending WHERE run_id IN (SELECT run_id FROM stats_catching_up);

-- name: stats_runs_partial
SELECT workflow_name, status, dbucket, erred, etype, count(*) AS n FROM stats_run_facts
WHERE listed_at >= %(since)s AND hour < %(from_hour)s
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
  AND (%(name)s::text IS NULL OR workflow_name = %(name)s::text)
GROUP BY workflow_name, status, dbucket, erred, etype;

-- name: stats_steps
SELECT workflow_name, step, kind, etype, dbucket, sum(n) AS n, sum(calls) AS calls,
       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
       sum(cost) AS cost, sum(unpriced) AS unpriced
FROM stats_steps
WHERE hour >= %(from_hour)s
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
  AND (%(name)s::text IS NULL OR workflow_name = %(name)s::text)
GROUP BY namespace, workflow_name, step, kind, etype, dbucket HAVING sum(n) <> 0;

-- name: stats_steps_partial
-- The partial hour's runs first, then each one's step events by the primary key (left
-- to itself, the planner estimates a hash join over a scan of every event cheaper).
WITH w AS MATERIALIZED (
    SELECT r AS run FROM runs r
    WHERE r.created_at >= %(since)s AND floor(r.created_at / 3600)::bigint < %(from_hour)s
      AND (%(namespace)s::text IS NULL OR r.namespace = %(namespace)s::text)
      AND (%(name)s::text IS NULL OR r.workflow_name = %(name)s::text))
SELECT f.workflow_name, f.step, f.kind, f.etype, f.dbucket, count(*) AS n,
       sum(f.calls) AS calls, sum(f.input_tokens)::bigint AS input_tokens,
       sum(f.output_tokens)::bigint AS output_tokens, sum(f.cost) AS cost,
       sum(f.unpriced) AS unpriced
FROM w
CROSS JOIN LATERAL (
    SELECT e FROM events e
    WHERE e.run_id = (w.run).run_id
      AND e.kind IN ('step_completed', 'step_retrying', 'step_failed')) x
CROSS JOIN LATERAL stats_step_fact(x.e, w.run) f
GROUP BY f.workflow_name, f.step, f.kind, f.etype, f.dbucket;

-- name: live_peers
-- Other workers whose lease is current (fair claims: alone, a worker takes what it can).
SELECT count(*) AS n FROM workers
WHERE lease_until >= %(real_now)s AND worker_id <> %(worker)s;

-- name: claim_census
-- How the ready work is to be shared: the runs held by live workers (all of them, and
-- this one's), and the due runs of these workflows, counted up to %(cap)s, of which
-- those unchanged since %(stale_before)s (stale: any worker takes them).
SELECT
  (SELECT count(*) FROM runs WHERE status = 'running'
     AND owner IN (SELECT worker_id FROM workers
                   WHERE lease_until >= %(real_now)s)) AS held,
  (SELECT count(*) FROM runs WHERE status = 'running' AND owner = %(worker)s) AS mine,
  (SELECT count(*) FROM (SELECT 1 FROM runs
     WHERE status IN ('pending', 'suspended') AND wake_at <= %(now)s
       AND workflow_name = ANY(%(names)s::text[])
       AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
     LIMIT %(cap)s) AS r) AS ready,
  (SELECT count(*) FROM (SELECT 1 FROM runs
     WHERE status IN ('pending', 'suspended') AND wake_at <= %(now)s
       AND updated_at <= %(stale_before)s
       AND workflow_name = ANY(%(names)s::text[])
       AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
     LIMIT %(cap)s) AS s) AS stale;
