-- Named queries of the PostgreSQL store's schedules (see store/_base/_schedules.py). Each starts with
-- a "-- name:" line; parameters are psycopg's %(name)s.

-- name: schedule_by_id
SELECT * FROM schedules WHERE schedule_id = %(schedule_id)s;

-- name: lock_schedule
-- Firing holds the schedule's row until it commits: racing workers take turns, and the
-- later ones see next_fire_at moved (the compare-and-set fails).
SELECT * FROM schedules WHERE schedule_id = %(schedule_id)s FOR UPDATE;

-- name: list_schedules
-- Of %(namespace)s (NULL: of every namespace).
SELECT * FROM schedules
WHERE %(namespace)s::text IS NULL OR namespace = %(namespace)s::text
ORDER BY schedule_id;

-- name: insert_schedule
INSERT INTO schedules (schedule_id, workflow_name, queue, input, cron, every, anchor,
                       timezone, overlap, catch_up, source, paused, note, next_fire_at,
                       created_at, updated_at, namespace)
VALUES (%(schedule_id)s, %(workflow_name)s, %(queue)s, %(input)s, %(cron)s, %(every)s,
        %(anchor)s, %(timezone)s, %(overlap)s, %(catch_up)s, %(source)s, %(paused)s,
        %(note)s, %(next_fire_at)s, %(now)s, %(now)s, %(namespace)s)
ON CONFLICT (schedule_id) DO NOTHING
RETURNING *;

-- name: update_definition
UPDATE schedules SET workflow_name = %(workflow_name)s, queue = %(queue)s, input = %(input)s,
    cron = %(cron)s, every = %(every)s, anchor = %(anchor)s, timezone = %(timezone)s,
    overlap = %(overlap)s, catch_up = %(catch_up)s, source = %(source)s,
    next_fire_at = %(next_fire_at)s, updated_at = %(now)s
WHERE schedule_id = %(schedule_id)s
RETURNING *;

-- name: pause_schedule
UPDATE schedules SET paused = true, note = %(note)s, updated_at = %(now)s
WHERE schedule_id = %(schedule_id)s
RETURNING *;

-- name: resume_schedule
UPDATE schedules SET paused = false, note = %(note)s, next_fire_at = %(next_fire_at)s,
    updated_at = %(now)s
WHERE schedule_id = %(schedule_id)s AND paused;

-- name: delete_schedule
-- Only in %(namespace)s (NULL: in any): one of another namespace is not there for the
-- caller.
DELETE FROM schedules WHERE schedule_id = %(schedule_id)s
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text);

-- name: due_schedules
-- Ticks due, and buffered ticks whose previous run is no longer live.
SELECT * FROM (
    SELECT * FROM schedules WHERE NOT paused AND next_fire_at <= %(now)s
    UNION
    SELECT s.* FROM schedules s WHERE NOT s.paused AND s.buffered_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.workflow_id = s.last_workflow_id
                      AND r.status IN ('pending', 'running', 'suspended', 'parked'))
) d
ORDER BY next_fire_at LIMIT %(limit)s;

-- name: next_schedule_due
SELECT MIN(next_fire_at) AS due FROM schedules WHERE NOT paused;

-- name: schedule_fired
UPDATE schedules SET next_fire_at = %(next_fire_at)s,
    last_fire_at = COALESCE(%(last_tick)s, last_fire_at), last_workflow_id = %(last)s,
    buffered_at = %(buffered)s, fired = fired + %(fired)s, missed = missed + %(missed)s,
    overlap_skipped = overlap_skipped + %(skipped)s, updated_at = %(now)s
WHERE schedule_id = %(schedule_id)s;

-- name: schedule_triggered
UPDATE schedules SET last_workflow_id = %(workflow_id)s, updated_at = %(now)s
WHERE schedule_id = %(schedule_id)s;

-- name: live_run_of
SELECT 1 AS live FROM runs WHERE workflow_id = %(workflow_id)s
  AND status IN ('pending', 'running', 'suspended', 'parked');
