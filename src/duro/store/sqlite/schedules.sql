-- Named queries of the SQLite store's schedules (see _schedules.py). Each starts with
-- a "-- name:" line.

-- name: schedule_by_id
SELECT * FROM schedules WHERE schedule_id = ?;

-- name: list_schedules
SELECT * FROM schedules ORDER BY schedule_id;

-- name: insert_schedule
INSERT INTO schedules (schedule_id, workflow_name, queue, input, cron, every, anchor,
                       timezone, overlap, catch_up, source, paused, note, next_fire_at,
                       created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: update_definition
UPDATE schedules SET workflow_name = ?, queue = ?, input = ?, cron = ?, every = ?, anchor = ?,
    timezone = ?, overlap = ?, catch_up = ?, source = ?, next_fire_at = ?, updated_at = ?
WHERE schedule_id = ?;

-- name: pause_schedule
UPDATE schedules SET paused = 1, note = ?, updated_at = ? WHERE schedule_id = ?;

-- name: resume_schedule
UPDATE schedules SET paused = 0, note = ?, next_fire_at = ?, updated_at = ?
WHERE schedule_id = ? AND paused = 1;

-- name: delete_schedule
DELETE FROM schedules WHERE schedule_id = ?;

-- name: due_schedules
-- Ticks due, and buffered ticks whose previous run is no longer live.
SELECT * FROM schedules WHERE paused = 0 AND next_fire_at <= ?1
UNION
SELECT s.* FROM schedules s WHERE s.paused = 0 AND s.buffered_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.workflow_id = s.last_workflow_id
                  AND r.status IN ('pending', 'running', 'suspended', 'parked'))
ORDER BY next_fire_at LIMIT ?2;

-- name: next_schedule_due
SELECT MIN(next_fire_at) FROM schedules WHERE paused = 0;

-- name: schedule_fired
UPDATE schedules SET next_fire_at = ?, last_fire_at = COALESCE(?, last_fire_at),
    last_workflow_id = ?, buffered_at = ?, fired = fired + ?, missed = missed + ?,
    overlap_skipped = overlap_skipped + ?, updated_at = ?
WHERE schedule_id = ?;

-- name: schedule_triggered
UPDATE schedules SET last_workflow_id = ?, updated_at = ? WHERE schedule_id = ?;

-- name: live_run_of
SELECT 1 FROM runs WHERE workflow_id = ?
  AND status IN ('pending', 'running', 'suspended', 'parked');
