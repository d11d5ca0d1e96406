-- Named queries of the SQLite store. Each starts with a "-- name:" line; parameters are
-- named (:name), as the shared store (store/_base) passes them to every dialect. A list
-- parameter arrives as a JSON array: read it with json_each. A query may be several
-- statements (run in order with the same parameters; the result is the last one that
-- returns rows): where PostgreSQL's query is one statement with CTEs, SQLite's does the
-- same steps one by one, each guarded by the same condition, the one that changes the
-- condition last. The writer holds the file's write lock, so nothing comes in between.

-- name: latest_run_by_workflow_id
-- In :namespace (NULL: in any namespace).
SELECT * FROM runs WHERE workflow_id = :workflow_id
  AND (:namespace IS NULL OR namespace = :namespace)
ORDER BY created_at DESC, rowid DESC LIMIT 1;

-- name: run_by_id
SELECT * FROM runs WHERE run_id = :run_id;

-- name: live_run_by_workflow_id
SELECT * FROM runs WHERE workflow_id = :workflow_id
  AND status IN ('pending', 'running', 'suspended', 'parked');

-- name: insert_run
-- The run and (unless started_event is false) its run_started event, unless a run with
-- this id, or a live one with this workflow id or deduplication key, exists (or, with
-- :fresh, any run with this workflow id: the first try of a start, which then needs no
-- lookup first): then nothing is written and no row returned. changes() is the run
-- insert's count. (The WHERE also tells SQLite's parser that ON CONFLICT is the upsert's.)
INSERT INTO runs (run_id, workflow_id, workflow_name, status, input, created_at, updated_at,
                  wake_at, owner, epoch, history_len, parent_run_id, parent_op, parent_close,
                  deadline_at, origin_run_id, queue, priority, concurrency_key, dedup_key,
                  debounce_key, started_at, depth, headers, namespace)
SELECT :run_id, :workflow_id, :workflow_name, :status, :input, :now, :now, :wake_at, :owner,
       :epoch, 1, :parent_run_id, :parent_op, :parent_close, :deadline_at, :origin_run_id,
       :queue, :priority, :concurrency_key, :dedup_key, :debounce_key, :started_at, :depth,
       :headers, :namespace
WHERE NOT (:fresh AND EXISTS (SELECT 1 FROM runs WHERE workflow_id = :workflow_id))
ON CONFLICT DO NOTHING
RETURNING run_id;
INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
SELECT :run_id, 0, :kind, NULL, :workflow_name, :now, :input, :meta
WHERE :started_event AND changes() = 1;

-- name: insert_event
-- Positional, for executemany: the hot path's own statement (sqlite/_tx.py).
INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: fence_append
-- Positional (sqlite/_tx.py). Fenced by epoch and by the history's length: the events
-- must continue the stored history (when an earlier write of the run failed, a later
-- one must not commit past it).
UPDATE runs SET history_len = ?, updated_at = ?, recoveries = 0
WHERE run_id = ? AND epoch = ? AND status = 'running' AND history_len = ?;

-- name: fence_transition
-- Positional (sqlite/_tx.py): fence_append that also changes the status.
UPDATE runs SET history_len = ?, updated_at = ?, recoveries = 0, status = ?, result = ?,
    error = ?, wake_at = ?, owner = CASE WHEN ? THEN NULL ELSE owner END, closed_at = ?
WHERE run_id = ? AND epoch = ? AND status = 'running' AND history_len = ?;

-- name: history
-- Without run_id: the caller has it, and a copy per event is wasted work on a long history.
SELECT seq, kind, ts, op, name, data, meta FROM events WHERE run_id = :run_id ORDER BY seq;

-- name: runs_history
-- The histories of a batch of claimed runs (Store.load_runs), grouped by run.
SELECT run_id, seq, kind, ts, op, name, data, meta FROM events
WHERE run_id IN (SELECT value FROM json_each(:ids)) ORDER BY run_id, seq;

-- name: runs_heartbeats
SELECT run_id, op, details FROM heartbeats WHERE run_id IN (SELECT value FROM json_each(:ids));

-- name: runs_with_messages
SELECT DISTINCT run_id FROM inbox WHERE run_id IN (SELECT value FROM json_each(:ids));

-- name: take_over
-- Running runs of these workflows whose owner's lease expired, up to the room left. A
-- recovery, counted until the run writes something (a run whose code kills its worker
-- would otherwise crash every worker in turn, forever): always for the first two in a
-- row, then only if the run died on trial (taken up alone: see worker/_recovery.py).
UPDATE runs SET owner = :worker, epoch = epoch + 1, updated_at = :real_now,
    recoveries = CASE WHEN recoveries < 2 OR on_trial = 1 THEN recoveries + 1
                      ELSE recoveries END,
    on_trial = 0
WHERE run_id IN (
    SELECT run_id FROM runs
    WHERE status = 'running' AND workflow_name IN (SELECT value FROM json_each(:names))
      AND owner IN (SELECT worker_id FROM workers
                    WHERE lease_until < :real_now AND worker_id <> :worker)
    LIMIT :limit)
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue, recoveries;

-- name: release_dead_tasks
-- Step tasks held by workers whose lease expired go back to their queue.
UPDATE tasks SET status = 'pending', owner = NULL, updated_at = :real_now
WHERE status = 'running'
  AND owner IN (SELECT worker_id FROM workers
                WHERE lease_until < :real_now AND worker_id <> :worker);

-- name: delete_dead_idle_workers
-- Expired workers that own nothing any more.
DELETE FROM workers
WHERE lease_until < :real_now AND worker_id <> :worker
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.status = 'running'
                  AND r.owner = workers.worker_id);

-- name: mark_trial
UPDATE runs SET on_trial = 1 WHERE run_id = :run_id AND epoch = :epoch AND status = 'running';

-- name: register_worker
INSERT OR REPLACE INTO workers (worker_id, host, pid, started_at, lease_until, queues)
VALUES (:worker, :host, :pid, :real_now, :lease_until, :queues);

-- name: renew_worker
UPDATE workers SET lease_until = :lease_until WHERE worker_id = :worker;

-- name: list_workers
-- Every registered worker with the runs it holds (runs_owned: one index probe each).
SELECT w.worker_id, w.host, w.pid, w.started_at, w.lease_until, w.queues,
       (SELECT count(*) FROM runs r
        WHERE r.owner = w.worker_id AND r.status = 'running') AS running
FROM workers w ORDER BY w.started_at, w.worker_id;

-- name: worker_pids
SELECT pid FROM workers WHERE host = :host;

-- name: expire_worker_pids
UPDATE workers SET lease_until = 0
WHERE host = :host AND pid IN (SELECT value FROM json_each(:pids));

-- name: release_owned
UPDATE runs SET status = 'pending', owner = NULL, wake_at = :now, updated_at = :now
WHERE status = 'running' AND owner = :worker;

-- name: delete_worker
DELETE FROM workers WHERE worker_id = :worker;

-- name: release_run
UPDATE runs SET status = 'pending', owner = NULL, wake_at = :now, updated_at = :now
WHERE run_id = :run_id AND epoch = :epoch AND status = 'running';

-- name: park_run
UPDATE runs SET status = 'parked', owner = NULL, wake_at = NULL, error = :error,
    code_hash = :code_hash, updated_at = :now
WHERE run_id = :run_id AND epoch = :epoch AND status = 'running';

-- name: unpark
UPDATE runs SET status = 'pending', wake_at = :now, updated_at = :now, error = NULL,
    code_hash = NULL, recoveries = 0
WHERE status = 'parked' AND workflow_name = :name
  AND (code_hash IS NULL OR code_hash != :code_hash);

-- name: resume_parked
UPDATE runs SET status = 'pending', wake_at = :now, updated_at = :now, error = NULL,
    code_hash = NULL, recoveries = 0
WHERE run_id = :run_id AND status = 'parked'
RETURNING *;

-- name: send_message
-- Store the message (and an update request's row, a signal id's row) and wake the run if
-- it is suspended; nothing at all if the run is not live. A signal id the run already
-- has stores no message (its row goes in after the message, the condition it changes).
-- Returns the run after it.
INSERT INTO inbox (run_id, kind, name, data, meta, ts)
SELECT run_id, :kind, :name, :data, :meta, :now FROM runs
WHERE run_id = :run_id AND status IN ('pending', 'running', 'suspended', 'parked')
  AND (:signal_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM signal_ids WHERE run_id = :run_id AND signal_id = :signal_id));
INSERT OR IGNORE INTO signal_ids (run_id, signal_id, ts)
SELECT run_id, :signal_id, :now FROM runs
WHERE run_id = :run_id AND status IN ('pending', 'running', 'suspended', 'parked')
  AND :signal_id IS NOT NULL;
INSERT INTO updates (run_id, update_id, name, status, ts)
SELECT run_id, :update_id, :name, 'requested', :now FROM runs
WHERE run_id = :run_id AND status IN ('pending', 'running', 'suspended', 'parked')
  AND :update_id IS NOT NULL;
UPDATE runs SET updated_at = :now,
    wake_at = CASE WHEN status = 'suspended' THEN :now ELSE wake_at END,
    status = CASE WHEN status = 'suspended' THEN 'pending' ELSE status END
WHERE run_id = :run_id AND status IN ('pending', 'running', 'suspended', 'parked')
RETURNING *;

-- name: read_inbox
SELECT id, kind, name, data, meta FROM inbox WHERE run_id = :run_id ORDER BY id;

-- name: consume_inbox
DELETE FROM inbox WHERE run_id = :run_id AND id <= :upto;

-- name: runs_with_inbox
SELECT DISTINCT i.run_id FROM inbox i JOIN runs r ON r.run_id = i.run_id
WHERE r.status = 'running' AND r.owner = :worker;

-- name: save_heartbeat
INSERT OR REPLACE INTO heartbeats (run_id, op, details, ts)
VALUES (:run_id, :op, :details, :now);

-- name: delete_heartbeats
DELETE FROM heartbeats WHERE run_id = :run_id;

-- name: next_wake_for
-- The earliest due time of a ready run of these workflows, or 0 (due now) when a worker
-- that owns running runs of them let its lease expire (by :clock, the caller's): then
-- the survivors claim at their next poll and take those runs over, instead of waiting
-- for their periodic takeover check.
SELECT CASE WHEN EXISTS (
    SELECT 1 FROM workers w
    WHERE w.lease_until < :clock
      AND EXISTS (SELECT 1 FROM runs r WHERE r.owner = w.worker_id AND r.status = 'running'
                  AND r.workflow_name IN (SELECT value FROM json_each(:names))))
  THEN 0
  ELSE (SELECT MIN(wake_at) FROM runs
        WHERE status IN ('pending', 'suspended') AND wake_at IS NOT NULL
          AND workflow_name IN (SELECT value FROM json_each(:names)))
END AS due;

-- Listings: a page of runs, newest first, ties by run id (descending), strictly below
-- the keyset bound (:upper_at, :upper_id) and created at or after :lower_at; the query
-- is picked by store/_rules.list_query after the index its filters allow. Each page is
-- one range of an index read backwards, no sort (EXPLAIN QUERY PLAN: "SEARCH runs USING
-- INDEX runs_created (listed_at>? AND (listed_at,run_id)<(?,?))", and for a status
-- "... INDEX runs_status (status=? AND listed_at>? AND (listed_at,run_id)<(?,?))";
-- tests/integration/test_listing.py checks both, and runs_namespace's for a namespace).
-- The other filters are checked on the rows the range yields; :namespace (NULL: every
-- namespace) is one of them. listed_at is created_at (0 in a damaged row: see
-- migrations/0008_search_attributes.sql).

-- name: list_runs
SELECT * FROM runs
WHERE (listed_at, run_id) < (:upper_at, :upper_id) AND listed_at >= :lower_at
  AND (:status IS NULL OR status = :status) AND (:name IS NULL OR workflow_name = :name)
  AND (:prefix IS NULL OR substr(workflow_id, 1, length(:prefix)) = :prefix)
  AND (:namespace IS NULL OR namespace = :namespace)
ORDER BY listed_at DESC, run_id DESC LIMIT :limit;

-- name: list_runs_by_namespace
-- Not for 'default' (runs_namespace leaves it out: list_runs reads runs_created); the
-- literal term is what lets the planner use the partial index.
SELECT * FROM runs
WHERE namespace = :namespace AND namespace <> 'default'
  AND (listed_at, run_id) < (:upper_at, :upper_id) AND listed_at >= :lower_at
  AND (:status IS NULL OR status = :status) AND (:name IS NULL OR workflow_name = :name)
  AND (:prefix IS NULL OR substr(workflow_id, 1, length(:prefix)) = :prefix)
ORDER BY listed_at DESC, run_id DESC LIMIT :limit;

-- name: list_runs_by_status
SELECT * FROM runs
WHERE status = :status
  AND (listed_at, run_id) < (:upper_at, :upper_id) AND listed_at >= :lower_at
  AND (:name IS NULL OR workflow_name = :name)
  AND (:prefix IS NULL OR substr(workflow_id, 1, length(:prefix)) = :prefix)
  AND (:namespace IS NULL OR namespace = :namespace)
ORDER BY listed_at DESC, run_id DESC LIMIT :limit;

-- name: list_runs_by_name
SELECT * FROM runs
WHERE workflow_name = :name
  AND (listed_at, run_id) < (:upper_at, :upper_id) AND listed_at >= :lower_at
  AND (:status IS NULL OR status = :status)
  AND (:prefix IS NULL OR substr(workflow_id, 1, length(:prefix)) = :prefix)
  AND (:namespace IS NULL OR namespace = :namespace)
ORDER BY listed_at DESC, run_id DESC LIMIT :limit;

-- name: list_runs_by_attribute
-- The range of the first attribute's (key, value) in run_search_attributes_match; the
-- other attributes (:more_keys, :more_values) must all match too.
SELECT r.* FROM run_search_attributes a JOIN runs r ON r.run_id = a.run_id
WHERE a.key = :key AND a.value = :value
  AND (a.created_at, a.run_id) < (:upper_at, :upper_id) AND a.created_at >= :lower_at
  AND (:status IS NULL OR r.status = :status) AND (:name IS NULL OR r.workflow_name = :name)
  AND (:prefix IS NULL OR substr(r.workflow_id, 1, length(:prefix)) = :prefix)
  AND (:namespace IS NULL OR r.namespace = :namespace)
  AND (:n_more = 0 OR (
      SELECT count(*) FROM json_each(:more_keys) k JOIN json_each(:more_values) v
          ON v.key = k.key
      JOIN run_search_attributes m ON m.run_id = r.run_id AND m.key = k.value
          AND m.value = v.value) = :n_more)
ORDER BY a.created_at DESC, a.run_id DESC LIMIT :limit;

-- name: search_attributes_of
-- The attributes of a page of runs, in one read.
SELECT run_id, key, data FROM run_search_attributes
WHERE run_id IN (SELECT value FROM json_each(:ids)) ORDER BY run_id, key;

-- name: record_waits
-- What the run waits for as it suspends (duro/_waits.py), in the suspension's
-- transaction, after its fenced append; fenced too (nothing when the append was not).
UPDATE runs SET waits = :waits
WHERE run_id = :run_id AND epoch = :epoch AND history_len = :new_len;

-- name: wake_if_inbox
UPDATE runs SET status = 'pending', wake_at = :now, updated_at = :now
WHERE run_id = :run_id AND status = 'suspended'
  AND EXISTS (SELECT 1 FROM inbox WHERE run_id = :run_id);

-- name: upsert_state
-- Published state follows the history: written with the state_set event (the writer
-- checked the append's fence first).
INSERT OR REPLACE INTO run_state (run_id, key, value, ts) VALUES (:run_id, :key, :value, :ts);

-- name: put_state
-- Published state copied with a history (reset, retry, fork).
INSERT OR REPLACE INTO run_state (run_id, key, value, ts) VALUES (:run_id, :key, :value, :ts);

-- name: put_search_attributes
-- A new run's search attributes (its start's, or a copy's): not fenced.
INSERT OR REPLACE INTO run_search_attributes (run_id, key, value, data, created_at)
SELECT :run_id, k.value, v.value, d.value, :created_at
FROM json_each(:keys) k JOIN json_each(:values) v ON v.key = k.key
JOIN json_each(:datas) d ON d.key = k.key;

-- name: upsert_search_attributes
-- Search attributes follow the history: written with the search_attributes_upserted
-- event (the writer checked the append's fence first), with the run's creation time.
DELETE FROM run_search_attributes
WHERE run_id = :run_id AND key IN (SELECT value FROM json_each(:deleted));
INSERT OR REPLACE INTO run_search_attributes (run_id, key, value, data, created_at)
SELECT :run_id, k.value, v.value, d.value, r.listed_at
FROM runs r, json_each(:keys) k JOIN json_each(:values) v ON v.key = k.key
JOIN json_each(:datas) d ON d.key = k.key
WHERE r.run_id = :run_id;

-- name: copy_search_attributes
-- Continue-as-new: the successor (created :now) keeps its predecessor's attributes.
INSERT INTO run_search_attributes (run_id, key, value, data, created_at)
SELECT :new_run_id, key, value, data, :now FROM run_search_attributes
WHERE run_id = :run_id;

-- name: get_state
SELECT value FROM run_state WHERE run_id = :run_id AND key = :key;

-- name: copy_state
INSERT INTO run_state (run_id, key, value, ts) SELECT :new_run_id, key, value, ts
FROM run_state WHERE run_id = :run_id;

-- name: get_update
SELECT status, result, error FROM updates WHERE run_id = :run_id AND update_id = :update_id;

-- name: find_update
-- An update id within the workflow id's current chain of runs: those made since its
-- newest fresh start (continue-as-new and reset runs have an origin; a start does not).
SELECT u.run_id, r.namespace, u.status, u.result, u.error
FROM updates u JOIN runs r ON r.run_id = u.run_id
WHERE r.workflow_id = :workflow_id AND u.update_id = :update_id
  AND r.created_at >= COALESCE((SELECT max(created_at) FROM runs
                                WHERE workflow_id = :workflow_id
                                  AND origin_run_id IS NULL), 0)
ORDER BY r.created_at DESC, r.rowid DESC LIMIT 1;

-- name: delete_update
DELETE FROM updates WHERE run_id = :run_id AND update_id = :update_id;

-- name: find_signal
-- The workflow id's latest run, if its current chain of runs (as find_update's) already
-- took this signal id; no row if not.
SELECT * FROM runs WHERE workflow_id = :workflow_id AND EXISTS (
    SELECT 1 FROM signal_ids s JOIN runs r ON r.run_id = s.run_id
    WHERE r.workflow_id = :workflow_id AND s.signal_id = :signal_id
      AND r.created_at >= COALESCE((SELECT max(created_at) FROM runs
                                    WHERE workflow_id = :workflow_id
                                      AND origin_run_id IS NULL), 0))
ORDER BY created_at DESC, rowid DESC LIMIT 1;

-- name: set_update
UPDATE updates SET status = :status, result = :result, error = :error, ts = :ts
WHERE run_id = :run_id AND update_id = :update_id;

-- name: reject_update
UPDATE updates SET status = 'rejected', result = NULL, error = :error, ts = :now
WHERE run_id = :run_id AND update_id = :update_id;
DELETE FROM inbox WHERE id = :message_id;

-- name: run_depth
-- A parent's nesting depth and namespace (its children are one deeper, in the same).
SELECT depth, namespace FROM runs WHERE run_id = :run_id;

-- name: closing_links
-- What a run's end affects: its parent (kind 'parent', if it has one) and its live
-- children (kind 'child'), with whether each child is already being cancelled.
SELECT 'parent' AS kind, r.parent_run_id AS run_id, r.parent_op AS parent_op,
       p.status AS status, NULL AS policy, 0 AS cancelling
FROM runs r JOIN runs p ON p.run_id = r.parent_run_id
WHERE r.run_id = :run_id
UNION ALL
SELECT 'child', c.run_id, NULL, c.status, c.parent_close,
       EXISTS (SELECT 1 FROM inbox i WHERE i.run_id = c.run_id AND i.kind = 'cancel')
       OR EXISTS (SELECT 1 FROM events e WHERE e.run_id = c.run_id
                  AND e.kind = 'cancel_requested')
FROM runs c
WHERE c.parent_run_id = :run_id AND c.status IN ('pending', 'running', 'suspended', 'parked');

-- name: children_of
SELECT * FROM runs WHERE parent_run_id = :run_id ORDER BY created_at, rowid;

-- name: close_run
-- End a live run from outside its worker (terminate; time out, fenced by the caller's
-- epoch): fences out the owner (epoch + 1) and records the closing event at the run's
-- end. Returns the run, or nothing (and nothing was written) if it was not live.
INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta)
SELECT run_id, history_len, :kind, NULL, NULL, :now, :error, NULL FROM runs
WHERE run_id = :run_id AND status IN ('pending', 'running', 'suspended', 'parked')
  AND (:epoch IS NULL OR epoch = :epoch);
DELETE FROM heartbeats WHERE run_id = :run_id AND EXISTS (
    SELECT 1 FROM runs WHERE run_id = :run_id
      AND status IN ('pending', 'running', 'suspended', 'parked')
      AND (:epoch IS NULL OR epoch = :epoch));
DELETE FROM inbox WHERE run_id = :run_id AND EXISTS (
    SELECT 1 FROM runs WHERE run_id = :run_id
      AND status IN ('pending', 'running', 'suspended', 'parked')
      AND (:epoch IS NULL OR epoch = :epoch));
UPDATE runs SET status = :status, owner = NULL, wake_at = NULL, epoch = epoch + 1,
    history_len = history_len + 1, error = :error, updated_at = :now, closed_at = :now
WHERE run_id = :run_id AND status IN ('pending', 'running', 'suspended', 'parked')
  AND (:epoch IS NULL OR epoch = :epoch)
RETURNING *;

-- name: history_prefix
SELECT seq, kind, ts, op, name, data, meta FROM events
WHERE run_id = :run_id AND seq < :upto ORDER BY seq;

-- name: set_history_len
UPDATE runs SET history_len = :len WHERE run_id = :run_id;

-- name: claim_open
-- Due runs of these workflows in queues without limits (or, with :queues, in those of
-- them this worker serves), best priority first.
UPDATE runs SET status = 'running', owner = :worker, epoch = epoch + 1,
    updated_at = :real_now, started_at = COALESCE(started_at, :now)
WHERE run_id IN (
    SELECT run_id FROM runs
    WHERE status IN ('pending', 'suspended') AND wake_at <= :now
      AND workflow_name IN (SELECT value FROM json_each(:names))
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND queue NOT IN (SELECT value FROM json_each(:limited))
    ORDER BY priority DESC, wake_at LIMIT :limit)
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue;

-- name: claim_ahead_open
-- Suspended runs due within the look-ahead window (until :until), earliest first, in
-- queues without limits: loaded before their timers end so that they wake on time.
-- Never a pending run: a delayed start must not begin early.
UPDATE runs SET status = 'running', owner = :worker, epoch = epoch + 1,
    updated_at = :real_now
WHERE run_id IN (
    SELECT run_id FROM runs
    WHERE status = 'suspended' AND wake_at <= :until
      AND workflow_name IN (SELECT value FROM json_each(:names))
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND queue NOT IN (SELECT value FROM json_each(:limited))
    ORDER BY wake_at LIMIT :limit)
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue;

-- name: queue_configs
SELECT name, concurrency, per_worker, rate_limit, rate_period, key_concurrency FROM queues;

-- name: lock_queue
-- The writer holds the file's write lock: claims check a queue's limits one at a time.
SELECT name, concurrency, per_worker, rate_limit, rate_period, key_concurrency
FROM queues WHERE name = :queue;

-- name: queue_candidates
SELECT run_id, concurrency_key, started_at FROM runs
WHERE queue = :queue AND status IN ('pending', 'suspended') AND wake_at <= :now
  AND workflow_name IN (SELECT value FROM json_each(:names))
ORDER BY priority DESC, wake_at LIMIT :page OFFSET :offset;

-- name: queue_running
SELECT COUNT(*) AS n FROM runs WHERE queue = :queue AND status = 'running';

-- name: queue_running_by_key
SELECT concurrency_key, COUNT(*) AS n FROM runs
WHERE queue = :queue AND status = 'running' AND concurrency_key IS NOT NULL
GROUP BY concurrency_key;

-- name: queue_rate_window
-- Under the write lock: the stamp of this claim's first starts (:clock, this process's
-- clock read under the lock), and the starts within the period before it, after
-- forgetting older ones.
DELETE FROM queue_starts WHERE queue = :queue AND ts <= :clock - :period;
SELECT :clock AS stamp, COUNT(*) AS n FROM queue_starts
WHERE queue = :queue AND ts > :clock - :period;

-- name: queue_started_lately
-- Starts within the last period (by :clock, the clock claims stamp them with here).
SELECT COUNT(*) AS n FROM queue_starts WHERE queue = :queue AND ts > :clock - :period;

-- name: queue_record_starts
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < :n)
INSERT INTO queue_starts (queue, ts) SELECT :queue, :stamp FROM k;

-- name: claim_ids
UPDATE runs SET status = 'running', owner = :worker, epoch = epoch + 1,
    updated_at = :real_now, started_at = COALESCE(started_at, :now)
WHERE run_id IN (SELECT value FROM json_each(:ids)) AND status IN ('pending', 'suspended')
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue;

-- name: upsert_queue
INSERT INTO queues (name, concurrency, per_worker, rate_limit, rate_period, key_concurrency,
                    updated_at)
VALUES (:name, :concurrency, :per_worker, :rate_limit, :rate_period, :key_concurrency, :now)
ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency,
    per_worker = excluded.per_worker, rate_limit = excluded.rate_limit,
    rate_period = excluded.rate_period, key_concurrency = excluded.key_concurrency,
    updated_at = excluded.updated_at;

-- name: queue_counts
-- Of :namespace's runs (NULL: every namespace's).
SELECT queue, status, COUNT(*) AS n FROM runs
WHERE status IN ('pending', 'suspended', 'running')
  AND (:namespace IS NULL OR namespace = :namespace)
GROUP BY queue, status;

-- name: queue_task_counts
-- Step tasks per queue (pending: waiting for a worker of the queue; running: claimed),
-- of :namespace's runs (NULL: every namespace's).
SELECT t.queue, t.status, COUNT(*) AS n FROM tasks t
WHERE t.status IN ('pending', 'running')
  AND (:namespace IS NULL
       OR t.run_id IN (SELECT run_id FROM runs WHERE namespace = :namespace))
GROUP BY t.queue, t.status;

-- name: live_dedup
SELECT * FROM runs WHERE queue = :queue AND dedup_key = :key
  AND status IN ('pending', 'running', 'suspended', 'parked');

-- name: pending_debounce
-- Starts fold into a pending run of their own namespace only (:namespace NULL: any).
SELECT * FROM runs WHERE queue = :queue AND debounce_key = :key AND status = 'pending'
  AND started_at IS NULL AND (:namespace IS NULL OR namespace = :namespace);

-- name: debounce_again
-- Not started yet, so nothing has read its input: the last start's wins, and the quiet
-- period starts over.
UPDATE events SET data = :input, ts = :now WHERE run_id = :run_id AND seq = 0;
UPDATE runs SET input = :input, wake_at = :wake_at, updated_at = :now WHERE run_id = :run_id
RETURNING *;

-- name: enqueue_task
INSERT OR IGNORE INTO tasks (task_id, run_id, op, attempt, step, queue, args, info, status,
                             created_at, updated_at)
VALUES (:task_id, :run_id, :op, :attempt, :step, :queue, :args, :info, 'pending', :now, :now);

-- name: claim_tasks
UPDATE tasks SET status = 'running', owner = :worker, updated_at = :real_now
WHERE task_id IN (
    SELECT task_id FROM tasks WHERE status = 'pending'
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND step IN (SELECT value FROM json_each(:steps))
    ORDER BY created_at LIMIT :limit)
RETURNING task_id, run_id, op, attempt, step, queue, args, info;

-- name: finish_task
UPDATE tasks SET status = 'done', updated_at = :now
WHERE task_id = :task_id AND status = 'running' AND owner = :worker
RETURNING task_id;

-- name: cancel_task
DELETE FROM tasks WHERE task_id = :task_id AND status = 'pending';

-- name: release_tasks_of
UPDATE tasks SET status = 'pending', owner = NULL, updated_at = :now
WHERE owner = :worker AND status = 'running';

-- name: delete_tasks_of_run
DELETE FROM tasks WHERE run_id = :run_id;

-- name: waits_of_run
SELECT waits FROM runs WHERE run_id = :run_id;

-- name: open_tasks_of_run
-- The run's step tasks not done yet (pending: no worker of the queue claimed it yet;
-- running: claimed by owner), oldest first (tasks_run index).
SELECT op, attempt, step, queue, status, owner, created_at, updated_at FROM tasks
WHERE run_id = :run_id AND status IN ('pending', 'running')
ORDER BY created_at;

-- name: next_task
SELECT 1 AS found FROM tasks WHERE status = 'pending'
  AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
  AND step IN (SELECT value FROM json_each(:steps))
LIMIT 1;

-- name: purge_candidates
SELECT run_id FROM runs
WHERE status IN ('completed', 'failed', 'cancelled', 'terminated', 'timed_out',
                 'continued_as_new')
  AND closed_at < :before
ORDER BY closed_at LIMIT :limit;

-- name: owned_runs
SELECT run_id, epoch FROM runs WHERE status = 'running' AND owner = :worker;

-- name: ask_query
INSERT INTO queries (query_id, run_id, workflow_id, workflow_name, name, args, headers,
                     created_at, expires_at)
VALUES (:query_id, :run_id, :workflow_id, :workflow_name, :name, :args, :headers, :now,
        :expires_at);

-- name: open_queries
-- Questions no live worker is answering, for workflows a worker has the code of.
SELECT query_id, run_id, workflow_id, workflow_name, name, args, headers, created_at,
       expires_at
FROM queries
WHERE answered_at IS NULL AND workflow_name IN (SELECT value FROM json_each(:names))
  AND expires_at > :now AND (claimed_by IS NULL OR claimed_at < :stale)
ORDER BY created_at LIMIT :limit;

-- name: claim_query
UPDATE queries SET claimed_by = :worker, claimed_at = :now
WHERE query_id = :query_id AND answered_at IS NULL
  AND (claimed_by IS NULL OR claimed_at < :stale);

-- name: answer_query
UPDATE queries SET answered_at = :now, answer = :answer, error = :error
WHERE query_id = :query_id AND answered_at IS NULL;

-- name: query_answer
SELECT answered_at, answer, error FROM queries WHERE query_id = :query_id;

-- name: forget_query
DELETE FROM queries WHERE query_id = :query_id;

-- name: expire_queries
-- Questions whose askers stopped waiting (and so never read or deleted them).
DELETE FROM queries WHERE expires_at < :now;

-- Analytics (Client.stats, store/_base/_stats.py) over the rollup of migration 0016
-- (stats_runs, stats_steps: per namespace, workflow and hour of creation) for the whole
-- hours of the window (hour >= :from_hour), and over the facts views for the runs of its
-- partial first hour (listed_at >= :since, hour < :from_hour). Both give rows of the
-- same shape, summed by the read; :namespace NULL = every namespace, :name NULL = all.
-- The rollup's reads group in its primary key's order (namespace first, hour last): one
-- pass over the rows, no sort, whatever the window.

-- name: stats_runs
SELECT workflow_name, status, dbucket, erred, etype, sum(n) AS n FROM stats_runs
WHERE hour >= :from_hour AND (:namespace IS NULL OR namespace = :namespace)
  AND (:name IS NULL OR workflow_name = :name)
GROUP BY namespace, workflow_name, status, dbucket, erred, etype HAVING sum(n) <> 0;

-- name: stats_runs_pending
-- What the rollup does not hold yet of the pending runs (a read-only store never brings
-- them in): their facts now, less their facts as counted. CROSS JOIN: SQLite keeps that
-- order (the pending runs first, few; left to itself it may scan every run).
SELECT workflow_name, status, dbucket, erred, etype, sum(n) AS n FROM (
    SELECT f.namespace, f.workflow_name, f.hour, f.status, f.dbucket, f.erred, f.etype,
           1 AS n
    FROM stats_pending p CROSS JOIN stats_run_facts f ON f.run_id = p.run_id
    UNION ALL
    SELECT c.namespace, c.workflow_name, c.hour, c.status, c.dbucket, c.erred, c.etype, -1
    FROM stats_pending p CROSS JOIN stats_counted c ON c.run_id = p.run_id)
WHERE hour >= :from_hour AND (:namespace IS NULL OR namespace = :namespace)
  AND (:name IS NULL OR workflow_name = :name)
GROUP BY namespace, workflow_name, status, dbucket, erred, etype HAVING sum(n) <> 0;

-- name: stats_steps_pending
-- The step events of the pending runs past what was counted of them.
SELECT f.workflow_name, f.step, f.kind, f.etype, f.dbucket, count(*) AS n,
       sum(f.calls) AS calls, sum(f.input_tokens) AS input_tokens,
       sum(f.output_tokens) AS output_tokens, total(f.cost) AS cost,
       sum(f.unpriced) AS unpriced
FROM stats_step_facts f
LEFT JOIN stats_counted c ON c.run_id = f.run_id
WHERE f.run_id IN (SELECT run_id FROM stats_pending)
  AND f.seq >= coalesce(c.counted_len, 0) AND f.hour >= :from_hour
  AND (:namespace IS NULL OR f.namespace = :namespace)
  AND (:name IS NULL OR f.workflow_name = :name)
GROUP BY f.namespace, f.workflow_name, f.step, f.kind, f.etype, f.dbucket;

-- Bringing up to :limit pending runs into the rollup, in one writer transaction, in this
-- order (store/_base/_stats.py): their counted facts out, their facts now in, their
-- events past the counted length in, the counted state moved on, the runs no longer
-- pending. The same runs each time: nothing else writes in between.

-- name: stats_catch_up_runs_out
INSERT INTO stats_runs
SELECT namespace, workflow_name, hour, status, dbucket, erred, etype, -count(*)
FROM stats_counted WHERE run_id IN (SELECT run_id FROM stats_pending ORDER BY run_id LIMIT :limit)
GROUP BY namespace, workflow_name, hour, status, dbucket, erred, etype
ON CONFLICT DO UPDATE SET n = n + excluded.n;

-- name: stats_catch_up_runs_in
INSERT INTO stats_runs
SELECT namespace, workflow_name, hour, status, dbucket, erred, etype, count(*)
FROM stats_run_facts WHERE run_id IN (SELECT run_id FROM stats_pending ORDER BY run_id LIMIT :limit)
GROUP BY namespace, workflow_name, hour, status, dbucket, erred, etype
ON CONFLICT DO UPDATE SET n = n + excluded.n;

-- name: stats_catch_up_steps
INSERT INTO stats_steps
SELECT f.namespace, f.workflow_name, f.hour, f.step, f.kind, f.etype, f.dbucket, count(*),
       sum(f.calls), sum(f.input_tokens), sum(f.output_tokens), total(f.cost),
       sum(f.unpriced)
FROM stats_step_facts f
LEFT JOIN stats_counted c ON c.run_id = f.run_id
WHERE f.run_id IN (SELECT run_id FROM stats_pending ORDER BY run_id LIMIT :limit)
  AND f.seq >= coalesce(c.counted_len, 0)
GROUP BY f.namespace, f.workflow_name, f.hour, f.step, f.kind, f.etype, f.dbucket
ON CONFLICT DO UPDATE SET n = n + excluded.n, calls = calls + excluded.calls,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cost = cost + excluded.cost, unpriced = unpriced + excluded.unpriced;

-- name: stats_catch_up_counted
INSERT INTO stats_counted
SELECT f.run_id,
       coalesce((SELECT max(e.seq) + 1 FROM events e WHERE e.run_id = f.run_id), 0),
       f.namespace, f.workflow_name, f.hour, f.status, f.dbucket, f.erred, f.etype
FROM stats_run_facts f
WHERE f.run_id IN (SELECT run_id FROM stats_pending ORDER BY run_id LIMIT :limit)
ON CONFLICT (run_id) DO UPDATE SET counted_len = excluded.counted_len,
    status = excluded.status, dbucket = excluded.dbucket, erred = excluded.erred,
    etype = excluded.etype;

-- name: stats_catch_up_done
DELETE FROM stats_pending WHERE run_id IN (SELECT run_id FROM stats_pending ORDER BY run_id LIMIT :limit);

-- name: stats_runs_partial
SELECT workflow_name, status, dbucket, erred, etype, count(*) AS n FROM stats_run_facts
WHERE listed_at >= :since AND hour < :from_hour
  AND (:namespace IS NULL OR namespace = :namespace)
  AND (:name IS NULL OR workflow_name = :name)
GROUP BY workflow_name, status, dbucket, erred, etype;

-- name: stats_steps
SELECT workflow_name, step, kind, etype, dbucket, sum(n) AS n, sum(calls) AS calls,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       total(cost) AS cost, sum(unpriced) AS unpriced
FROM stats_steps
WHERE hour >= :from_hour AND (:namespace IS NULL OR namespace = :namespace)
  AND (:name IS NULL OR workflow_name = :name)
GROUP BY namespace, workflow_name, step, kind, etype, dbucket HAVING sum(n) <> 0;

-- name: stats_steps_partial
SELECT workflow_name, step, kind, etype, dbucket, count(*) AS n, sum(calls) AS calls,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       total(cost) AS cost, sum(unpriced) AS unpriced
FROM stats_step_facts
WHERE listed_at >= :since AND hour < :from_hour
  AND (:namespace IS NULL OR namespace = :namespace)
  AND (:name IS NULL OR workflow_name = :name)
GROUP BY workflow_name, step, kind, etype, dbucket;

-- name: live_peers
-- Other workers whose lease is current (fair claims: alone, a worker takes what it can).
SELECT count(*) AS n FROM workers WHERE lease_until >= :real_now AND worker_id <> :worker;

-- name: claim_census
-- How the ready work is to be shared: the runs held by live workers (all of them, and
-- this one's), and the due runs of these workflows in open queues, counted up to :cap,
-- of which those unchanged since :stale_before (stale: any worker takes them).
SELECT
  (SELECT count(*) FROM runs WHERE status = 'running'
     AND owner IN (SELECT worker_id FROM workers WHERE lease_until >= :real_now)) AS held,
  (SELECT count(*) FROM runs WHERE status = 'running' AND owner = :worker) AS mine,
  (SELECT count(*) FROM (SELECT updated_at FROM runs
     WHERE status IN ('pending', 'suspended') AND wake_at <= :now
       AND workflow_name IN (SELECT value FROM json_each(:names))
       AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
     LIMIT :cap)) AS ready,
  (SELECT count(*) FROM (SELECT updated_at FROM runs
     WHERE status IN ('pending', 'suspended') AND wake_at <= :now
       AND updated_at <= :stale_before
       AND workflow_name IN (SELECT value FROM json_each(:names))
       AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
     LIMIT :cap)) AS stale;
