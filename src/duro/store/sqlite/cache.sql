-- The durable step cache (store/_cache.py): entries by namespace, scope and key.

-- name: cache_get
SELECT * FROM step_cache
WHERE namespace = :namespace AND scope = :scope AND key = :key
  AND (expires_at IS NULL OR expires_at > :now);

-- name: cache_put
INSERT INTO step_cache (namespace, scope, key, step, result, run_id, created_at, expires_at)
VALUES (:namespace, :scope, :key, :step, :result, :run_id, :created_at, :expires_at)
ON CONFLICT (namespace, scope, key) DO UPDATE SET
    step = excluded.step, result = excluded.result, run_id = excluded.run_id,
    created_at = excluded.created_at, expires_at = excluded.expires_at;

-- name: cache_invalidate
DELETE FROM step_cache
WHERE (:namespace IS NULL OR namespace = :namespace)
  AND (:step IS NULL OR step = :step)
  AND (:scope IS NULL OR scope = :scope)
  AND (:expired IS NULL OR (expires_at IS NOT NULL AND expires_at <= :expired));

-- name: cache_list
SELECT namespace, step, scope, count(*) AS entries,
       sum(CASE WHEN expires_at IS NOT NULL AND expires_at <= :now THEN 1 ELSE 0 END)
           AS expired,
       min(created_at) AS oldest, max(created_at) AS newest
FROM step_cache
WHERE (:namespace IS NULL OR namespace = :namespace)
  AND (:step IS NULL OR step = :step)
  AND (:scope IS NULL OR scope = :scope)
GROUP BY namespace, step, scope
ORDER BY namespace, step, scope;

-- name: cache_expire
DELETE FROM step_cache
WHERE (namespace, scope, key) IN (
    SELECT namespace, scope, key FROM step_cache
    WHERE expires_at IS NOT NULL AND expires_at <= :now LIMIT :limit);
