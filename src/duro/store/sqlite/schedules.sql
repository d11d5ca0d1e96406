-- Named queries of the SQLite store's schedules (see store/_base/_schedules.py). Each
-- starts with a "-- name:" line; parameters as in queries.sql.

-- name: schedule_by_id
SELECT * FROM schedules WHERE schedule_id = :schedule_id;

-- name: lock_schedule
-- The writer holds the file's write lock: racing workers take turns, and the later ones
-- see next_fire_at moved (the compare-and-set fails).
SELECT * FROM schedules WHERE schedule_id = :schedule_id;

-- name: list_schedules
-- Of :namespace (NULL: of every namespace).
SELECT * FROM schedules WHERE :namespace IS NULL OR namespace = :namespace
ORDER BY schedule_id;

-- name: insert_schedule
INSERT INTO schedules (schedule_id, workflow_name, queue, input, cron, every, anchor,
                       timezone, overlap, catch_up, source, paused, note, next_fire_at,
                       created_at, updated_at, namespace)
VALUES (:schedule_id, :workflow_name, :queue, :input, :cron, :every, :anchor, :timezone,
        :overlap, :catch_up, :source, :paused, :note, :next_fire_at, :now, :now, :namespace)
ON CONFLICT (schedule_id) DO NOTHING
RETURNING *;

-- name: update_definition
UPDATE schedules SET workflow_name = :workflow_name, queue = :queue, input = :input,
    cron = :cron, every = :every, anchor = :anchor, timezone = :timezone, overlap = :overlap,
    catch_up = :catch_up, source = :source, next_fire_at = :next_fire_at, updated_at = :now
WHERE schedule_id = :schedule_id
RETURNING *;

-- name: pause_schedule
UPDATE schedules SET paused = 1, note = :note, updated_at = :now
WHERE schedule_id = :schedule_id
RETURNING *;

-- name: resume_schedule
UPDATE schedules SET paused = 0, note = :note, next_fire_at = :next_fire_at, updated_at = :now
WHERE schedule_id = :schedule_id AND paused = 1;

-- name: delete_schedule
-- Only in :namespace (NULL: in any): one of another namespace is not there for the caller.
DELETE FROM schedules WHERE schedule_id = :schedule_id
  AND (:namespace IS NULL OR namespace = :namespace);

-- name: due_schedules
-- Ticks due, and buffered ticks whose previous run is no longer live.
SELECT * FROM schedules WHERE paused = 0 AND next_fire_at <= :now
UNION
SELECT s.* FROM schedules s WHERE s.paused = 0 AND s.buffered_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.workflow_id = s.last_workflow_id
                  AND r.status IN ('pending', 'running', 'suspended', 'parked'))
ORDER BY next_fire_at LIMIT :limit;

-- name: next_schedule_due
SELECT MIN(next_fire_at) AS due FROM schedules WHERE paused = 0;

-- name: schedule_fired
UPDATE schedules SET next_fire_at = :next_fire_at,
    last_fire_at = COALESCE(:last_tick, last_fire_at), last_workflow_id = :last,
    buffered_at = :buffered, fired = fired + :fired, missed = missed + :missed,
    overlap_skipped = overlap_skipped + :skipped, updated_at = :now
WHERE schedule_id = :schedule_id;

-- name: schedule_triggered
UPDATE schedules SET last_workflow_id = :workflow_id, updated_at = :now
WHERE schedule_id = :schedule_id;

-- name: live_run_of
SELECT 1 AS live FROM runs WHERE workflow_id = :workflow_id
  AND status IN ('pending', 'running', 'suspended', 'parked');
