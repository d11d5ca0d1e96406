-- Shared budgets (store/_budgets.py, store/_base/_budgets.py).

-- name: budget_row
-- An admission's row of the key's window, made if new, with the run's limits; the
-- upsert locks the row until the transaction ends, so admissions of one key (from any
-- process) decide one after the other.
INSERT INTO budget_spend (namespace, key, window_start, period, limit_usd, limit_tokens,
                          updated_at)
VALUES (%(namespace)s, %(key)s, %(window)s, %(period)s, %(usd)s, %(tokens)s, %(now)s)
ON CONFLICT (namespace, key, window_start) DO UPDATE
SET limit_usd = EXCLUDED.limit_usd, limit_tokens = EXCLUDED.limit_tokens,
    period = EXCLUDED.period
RETURNING *;

-- name: budget_drop_dead
-- Reservations whose run is no longer running at their epoch (its worker was lost and
-- another recovered it, or it ended): they hold nothing.
DELETE FROM budget_reservations b
WHERE b.namespace = %(namespace)s AND b.key = %(key)s AND b.window_start = %(window)s
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = b.run_id AND r.epoch = b.epoch
                  AND r.status = 'running');

-- name: budget_reserved
-- The other attempts in flight on the key's window, and what they reserved.
SELECT count(*) AS others, coalesce(sum(usd), 0) AS usd, coalesce(sum(tokens), 0) AS tokens
FROM budget_reservations
WHERE namespace = %(namespace)s AND key = %(key)s AND window_start = %(window)s
  AND NOT (run_id = %(run_id)s AND op = %(op)s);

-- name: budget_reserve
INSERT INTO budget_reservations (namespace, key, window_start, run_id, op, epoch, usd,
                                 tokens, created_at)
VALUES (%(namespace)s, %(key)s, %(window)s, %(run_id)s, %(op)s, %(epoch)s, %(usd)s,
        %(tokens)s, %(now)s)
ON CONFLICT (namespace, key, window_start, run_id, op) DO UPDATE
SET epoch = EXCLUDED.epoch, usd = EXCLUDED.usd, tokens = EXCLUDED.tokens,
    created_at = EXCLUDED.created_at;

-- name: budget_settle
-- A step outcome's spend, written with it: only if the append's fence passed.
UPDATE budget_spend
SET spent_usd = spent_usd + %(usd)s, spent_tokens = spent_tokens + %(tokens)s,
    settled = settled + 1, max_step_usd = GREATEST(max_step_usd, %(usd)s),
    max_step_tokens = GREATEST(max_step_tokens, %(tokens)s), updated_at = %(now)s
WHERE namespace = %(namespace)s AND key = %(key)s AND window_start = %(window)s
  AND EXISTS (SELECT 1 FROM runs WHERE run_id = %(run_id)s AND epoch = %(epoch)s
              AND history_len = %(new_len)s);

-- name: budget_release
DELETE FROM budget_reservations
WHERE namespace = %(namespace)s AND key = %(key)s AND window_start = %(window)s
  AND run_id = %(run_id)s AND op = %(op)s AND epoch = %(epoch)s;

-- name: list_budgets
SELECT s.*,
       (SELECT count(*) FROM budget_reservations b JOIN runs r ON r.run_id = b.run_id
        AND r.epoch = b.epoch AND r.status = 'running'
        WHERE b.namespace = s.namespace AND b.key = s.key
          AND b.window_start = s.window_start) AS in_flight,
       (SELECT coalesce(sum(b.usd), 0) FROM budget_reservations b JOIN runs r
        ON r.run_id = b.run_id AND r.epoch = b.epoch AND r.status = 'running'
        WHERE b.namespace = s.namespace AND b.key = s.key
          AND b.window_start = s.window_start) AS reserved_usd
FROM budget_spend s
WHERE (%(namespace)s::text IS NULL OR s.namespace = %(namespace)s::text)
  AND (%(key)s::text IS NULL OR s.key = %(key)s::text)
ORDER BY s.key, s.window_start DESC
LIMIT %(limit)s;

-- name: budget_set_limit
-- An operator's limit for the key's latest window (raising it lets paused runs go on).
UPDATE budget_spend
SET override_usd = %(usd)s, override_tokens = %(tokens)s, updated_at = %(now)s
WHERE namespace = %(namespace)s AND key = %(key)s
  AND window_start = (SELECT max(window_start) FROM budget_spend
                      WHERE namespace = %(namespace)s AND key = %(key)s)
RETURNING *;
