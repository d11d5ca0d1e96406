-- Named queries of the SQLite store. Each starts with a "-- name:" line.

-- name: latest_run_by_workflow_id
SELECT * FROM runs WHERE workflow_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1;

-- name: run_by_id
SELECT * FROM runs WHERE run_id = ?;

-- name: insert_run
INSERT INTO runs (run_id, workflow_id, workflow_name, status, input, created_at, updated_at,
                  wake_at, owner, epoch, history_len)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1);

-- name: insert_event
INSERT INTO events (run_id, seq, kind, op, name, ts, data, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: fence_append
-- Fenced by epoch and by the history's length: the events must continue the stored
-- history (when an earlier write of the run failed, a later one must not commit past it).
UPDATE runs SET history_len = ?, updated_at = ?, recoveries = 0
WHERE run_id = ? AND epoch = ? AND status = 'running' AND history_len = ?;

-- name: history
-- Without run_id: the caller has it, and a copy per event is wasted work on a long history.
SELECT seq, kind, ts, op, name, data, meta FROM events WHERE run_id = ? ORDER BY seq;

-- name: runs_history
-- The histories of a batch of claimed runs (Store.load_runs), grouped by run; the ids
-- come as one JSON array.
SELECT run_id, seq, kind, ts, op, name, data, meta FROM events
WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, seq;

-- name: runs_heartbeats
SELECT run_id, op, details FROM heartbeats WHERE run_id IN (SELECT value FROM json_each(?));

-- name: runs_with_messages
SELECT DISTINCT run_id FROM inbox WHERE run_id IN (SELECT value FROM json_each(?));

-- name: next_wake
SELECT MIN(wake_at) FROM runs WHERE status IN ('pending', 'suspended') AND wake_at IS NOT NULL;

-- name: expired_workers
SELECT worker_id FROM workers WHERE lease_until < ?;

-- name: take_over
-- A recovery, counted until the run writes something (a run whose code kills its worker
-- would otherwise crash every worker in turn, forever): always for the first two in a
-- row, then only if the run died on trial (taken up alone: see worker/_recovery.py).
UPDATE runs SET owner = ?, epoch = epoch + 1, updated_at = ?,
    recoveries = CASE WHEN recoveries < 2 OR on_trial = 1 THEN recoveries + 1
                      ELSE recoveries END,
    on_trial = 0
WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'running' AND owner = ? LIMIT ?)
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue, recoveries;

-- name: mark_trial
UPDATE runs SET on_trial = 1 WHERE run_id = ? AND epoch = ? AND status = 'running';

-- name: delete_worker_if_idle
DELETE FROM workers WHERE worker_id = ?
  AND NOT EXISTS (SELECT 1 FROM runs WHERE status = 'running' AND owner = ?);

-- name: register_worker
INSERT OR REPLACE INTO workers (worker_id, host, pid, started_at, lease_until) VALUES (?, ?, ?, ?, ?);

-- name: renew_worker
UPDATE workers SET lease_until = ? WHERE worker_id = ?;

-- name: worker_pids
SELECT pid FROM workers WHERE host = ?;

-- name: expire_worker_pid
UPDATE workers SET lease_until = 0 WHERE host = ? AND pid = ?;

-- name: release_owned
UPDATE runs SET status = 'pending', owner = NULL, wake_at = ?, updated_at = ?
WHERE status = 'running' AND owner = ?;

-- name: delete_worker
DELETE FROM workers WHERE worker_id = ?;

-- name: release_run
UPDATE runs SET status = 'pending', owner = NULL, wake_at = ?, updated_at = ?
WHERE run_id = ? AND epoch = ? AND status = 'running';

-- name: park_run
UPDATE runs SET status = 'parked', owner = NULL, wake_at = NULL, error = ?, code_hash = ?,
                updated_at = ?
WHERE run_id = ? AND epoch = ? AND status = 'running';

-- name: unpark
UPDATE runs SET status = 'pending', wake_at = ?, updated_at = ?, error = NULL, code_hash = NULL,
    recoveries = 0
WHERE status = 'parked' AND workflow_name = ? AND (code_hash IS NULL OR code_hash != ?);

-- name: live_run_by_workflow_id
SELECT * FROM runs WHERE workflow_id = ?
  AND status IN ('pending', 'running', 'suspended', 'parked');

-- name: insert_inbox
INSERT INTO inbox (run_id, kind, name, data, meta, ts) VALUES (?, ?, ?, ?, ?, ?);

-- name: wake_for_inbox
UPDATE runs SET updated_at = ?,
    wake_at = CASE WHEN status = 'suspended' THEN ? ELSE wake_at END,
    status = CASE WHEN status = 'suspended' THEN 'pending' ELSE status END
WHERE run_id = ?;

-- name: read_inbox
SELECT id, kind, name, data, meta FROM inbox WHERE run_id = ? ORDER BY id;

-- name: consume_inbox
DELETE FROM inbox WHERE run_id = ? AND id <= ?;

-- name: runs_with_inbox
SELECT DISTINCT i.run_id FROM inbox i JOIN runs r ON r.run_id = i.run_id
WHERE r.status = 'running' AND r.owner = ?;

-- name: terminate_run
UPDATE runs SET status = 'terminated', owner = NULL, wake_at = NULL, epoch = epoch + 1,
    history_len = history_len + 1, error = ?, updated_at = ?, closed_at = ?
WHERE run_id = ?;

-- name: save_heartbeat
INSERT OR REPLACE INTO heartbeats (run_id, op, details, ts) VALUES (?, ?, ?, ?);

-- name: delete_heartbeats
DELETE FROM heartbeats WHERE run_id = ?;

-- name: fence_transition
UPDATE runs SET history_len = ?, updated_at = ?, recoveries = 0, status = ?, result = ?,
    error = ?, wake_at = ?, owner = CASE WHEN ? THEN NULL ELSE owner END, closed_at = ?
WHERE run_id = ? AND epoch = ? AND status = 'running' AND history_len = ?;

-- name: claim_ready
-- {names} is replaced by the placeholders of the worker's workflow names.
UPDATE runs SET status = 'running', owner = ?, epoch = epoch + 1, updated_at = ?
WHERE run_id IN (
    SELECT run_id FROM runs
    WHERE status IN ('pending', 'suspended') AND wake_at <= ? AND workflow_name IN ({names})
    ORDER BY wake_at LIMIT ?)
RETURNING run_id, workflow_id, workflow_name, epoch, history_len;

-- name: next_wake_for
SELECT MIN(wake_at) FROM runs
WHERE status IN ('pending', 'suspended') AND wake_at IS NOT NULL AND workflow_name IN ({names});

-- name: list_runs
SELECT * FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR workflow_name = ?2)
ORDER BY created_at DESC, rowid DESC LIMIT ?3;

-- name: wake_if_inbox
UPDATE runs SET status = 'pending', wake_at = ?, updated_at = ?
WHERE run_id = ? AND status = 'suspended' AND EXISTS (SELECT 1 FROM inbox WHERE run_id = ?);

-- name: resume_parked
UPDATE runs SET status = 'pending', wake_at = ?, updated_at = ?, error = NULL, code_hash = NULL,
    recoveries = 0
WHERE run_id = ? AND status = 'parked';

-- name: upsert_state
INSERT OR REPLACE INTO run_state (run_id, key, value, ts) VALUES (?, ?, ?, ?);

-- name: get_state
SELECT value FROM run_state WHERE run_id = ? AND key = ?;

-- name: copy_state
INSERT INTO run_state (run_id, key, value, ts) SELECT ?, key, value, ts FROM run_state
WHERE run_id = ?;

-- name: get_update
SELECT status, result, error FROM updates WHERE run_id = ? AND update_id = ?;

-- name: find_update
-- An update id within the workflow id's current chain of runs: those made since its
-- newest fresh start (continue-as-new and reset runs have an origin; a start does not).
SELECT u.run_id, u.status, u.result, u.error FROM updates u JOIN runs r ON r.run_id = u.run_id
WHERE r.workflow_id = ?1 AND u.update_id = ?2
  AND r.created_at >= COALESCE((SELECT max(created_at) FROM runs
                                WHERE workflow_id = ?1 AND origin_run_id IS NULL), 0)
ORDER BY r.created_at DESC, r.rowid DESC LIMIT 1;

-- name: insert_update
INSERT INTO updates (run_id, update_id, name, status, ts) VALUES (?, ?, ?, 'requested', ?);

-- name: delete_update
DELETE FROM updates WHERE run_id = ? AND update_id = ?;

-- name: set_update
UPDATE updates SET status = ?, result = ?, error = ?, ts = ? WHERE run_id = ? AND update_id = ?;

-- name: delete_inbox_message
DELETE FROM inbox WHERE id = ?;

-- name: set_run_links
UPDATE runs SET parent_run_id = ?, parent_op = ?, parent_close = ?, deadline_at = ?,
    origin_run_id = ?, depth = ?
WHERE run_id = ?;

-- name: run_depth
SELECT depth FROM runs WHERE run_id = ?;

-- name: parent_of
SELECT r.parent_run_id, r.parent_op, p.status FROM runs r
LEFT JOIN runs p ON p.run_id = r.parent_run_id WHERE r.run_id = ?;

-- name: live_children
SELECT run_id, workflow_id, parent_close FROM runs
WHERE parent_run_id = ? AND status IN ('pending', 'running', 'suspended', 'parked');

-- name: children_of
SELECT * FROM runs WHERE parent_run_id = ? ORDER BY created_at;

-- name: close_run
UPDATE runs SET status = ?, owner = NULL, wake_at = NULL, epoch = epoch + 1,
    history_len = history_len + 1, error = ?, updated_at = ?, closed_at = ?
WHERE run_id = ?;

-- name: history_prefix
SELECT seq, kind, ts, op, name, data, meta FROM events WHERE run_id = ? AND seq < ? ORDER BY seq;

-- name: cancel_pending
SELECT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?1 AND kind = 'cancel')
    OR EXISTS (SELECT 1 FROM events WHERE run_id = ?1 AND kind = 'cancel_requested');

-- name: claim_ready_open
-- {names}: the worker's workflow names; {queues}: a filter on the queues it may take
-- from this way (those without limits).
UPDATE runs SET status = 'running', owner = ?, epoch = epoch + 1, updated_at = ?,
    started_at = COALESCE(started_at, ?)
WHERE run_id IN (
    SELECT run_id FROM runs
    WHERE status IN ('pending', 'suspended') AND wake_at <= ? AND workflow_name IN ({names})
      AND {queues}
    ORDER BY priority DESC, wake_at LIMIT ?)
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue;

-- name: claim_ahead_open
-- Suspended runs due within the look-ahead window, earliest first ({names}, {queues} as
-- in claim_ready_open): loaded before their timers end so that they wake on time. Never
-- a pending run: a delayed start must not begin early.
UPDATE runs SET status = 'running', owner = ?, epoch = epoch + 1, updated_at = ?
WHERE run_id IN (
    SELECT run_id FROM runs
    WHERE status = 'suspended' AND wake_at <= ? AND workflow_name IN ({names})
      AND {queues}
    ORDER BY wake_at LIMIT ?)
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue;

-- name: queue_candidates
SELECT run_id, concurrency_key, started_at FROM runs
WHERE queue = ? AND status IN ('pending', 'suspended') AND wake_at <= ?
  AND workflow_name IN ({names})
ORDER BY priority DESC, wake_at LIMIT ? OFFSET ?;

-- name: queue_running
SELECT COUNT(*) FROM runs WHERE queue = ? AND status = 'running';

-- name: queue_running_by_key
SELECT concurrency_key, COUNT(*) FROM runs
WHERE queue = ? AND status = 'running' AND concurrency_key IS NOT NULL
GROUP BY concurrency_key;

-- name: queue_started_since
SELECT COUNT(*) FROM queue_starts WHERE queue = ? AND ts > ?;

-- name: queue_forget_starts
DELETE FROM queue_starts WHERE queue = ? AND ts <= ?;

-- name: queue_record_start
INSERT INTO queue_starts (queue, ts) VALUES (?, ?);

-- name: claim_one
UPDATE runs SET status = 'running', owner = ?, epoch = epoch + 1, updated_at = ?,
    started_at = COALESCE(started_at, ?)
WHERE run_id = ? AND status IN ('pending', 'suspended')
RETURNING run_id, workflow_id, workflow_name, epoch, history_len, queue;

-- name: queue_configs
SELECT name, concurrency, per_worker, rate_limit, rate_period, key_concurrency FROM queues;

-- name: upsert_queue
INSERT INTO queues (name, concurrency, per_worker, rate_limit, rate_period, key_concurrency,
                    updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency,
    per_worker = excluded.per_worker, rate_limit = excluded.rate_limit,
    rate_period = excluded.rate_period, key_concurrency = excluded.key_concurrency,
    updated_at = excluded.updated_at;

-- name: queue_counts
SELECT queue, status, COUNT(*) FROM runs
WHERE status IN ('pending', 'suspended', 'running') GROUP BY queue, status;

-- name: set_placement
UPDATE runs SET queue = ?, priority = ?, concurrency_key = ?, dedup_key = ?, debounce_key = ?
WHERE run_id = ?;

-- name: live_dedup
SELECT * FROM runs WHERE queue = ? AND dedup_key = ?
  AND status IN ('pending', 'running', 'suspended', 'parked');

-- name: pending_debounce
SELECT * FROM runs WHERE queue = ? AND debounce_key = ? AND status = 'pending'
  AND started_at IS NULL;

-- name: debounce_again
UPDATE runs SET input = ?, wake_at = ?, updated_at = ? WHERE run_id = ?;

-- name: debounce_input
UPDATE events SET data = ?, ts = ? WHERE run_id = ? AND seq = 0;

-- name: enqueue_task
INSERT OR IGNORE INTO tasks (task_id, run_id, op, attempt, step, queue, args, info, status,
                             created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?);

-- name: claim_tasks
-- {queues}: a filter on the queues; {steps}: the step names this worker has.
UPDATE tasks SET status = 'running', owner = ?, updated_at = ?
WHERE task_id IN (
    SELECT task_id FROM tasks WHERE status = 'pending' AND {queues} AND step IN ({steps})
    ORDER BY created_at LIMIT ?)
RETURNING task_id, run_id, op, attempt, step, queue, args, info;

-- name: finish_task
UPDATE tasks SET status = 'done', updated_at = ? WHERE task_id = ? AND status = 'running'
  AND owner = ?;

-- name: cancel_task
DELETE FROM tasks WHERE task_id = ? AND status = 'pending';

-- name: release_tasks_of
UPDATE tasks SET status = 'pending', owner = NULL, updated_at = ?
WHERE owner = ? AND status = 'running';

-- name: delete_tasks_of_run
DELETE FROM tasks WHERE run_id = ?;

-- name: next_task
SELECT 1 FROM tasks WHERE status = 'pending' AND {queues} AND step IN ({steps}) LIMIT 1;

-- name: purge_candidates
SELECT run_id FROM runs
WHERE status IN ('completed', 'failed', 'cancelled', 'terminated', 'timed_out',
                 'continued_as_new')
  AND closed_at < ?
ORDER BY closed_at LIMIT ?;

-- name: owned_runs
SELECT run_id, epoch FROM runs WHERE status = 'running' AND owner = ?;
