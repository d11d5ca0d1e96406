-- The durable step cache (store/_cache.py): entries by namespace, scope and key.

-- name: cache_get
SELECT * FROM step_cache
WHERE namespace = %(namespace)s AND scope = %(scope)s AND key = %(key)s
  AND (expires_at IS NULL OR expires_at > %(now)s);

-- name: cache_put
INSERT INTO step_cache (namespace, scope, key, step, result, run_id, created_at, expires_at)
VALUES (%(namespace)s, %(scope)s, %(key)s, %(step)s, %(result)s, %(run_id)s,
        %(created_at)s, %(expires_at)s)
ON CONFLICT (namespace, scope, key) DO UPDATE SET
    step = excluded.step, result = excluded.result, run_id = excluded.run_id,
    created_at = excluded.created_at, expires_at = excluded.expires_at;

-- name: cache_invalidate
DELETE FROM step_cache
WHERE (%(namespace)s::text IS NULL OR namespace = %(namespace)s)
  AND (%(step)s::text IS NULL OR step = %(step)s)
  AND (%(scope)s::text IS NULL OR scope = %(scope)s)
  AND (%(expired)s::double precision IS NULL
       OR (expires_at IS NOT NULL AND expires_at <= %(expired)s));

-- name: cache_list
SELECT namespace, step, scope, count(*) AS entries,
       count(*) FILTER (WHERE expires_at IS NOT NULL AND expires_at <= %(now)s) AS expired,
       min(created_at) AS oldest, max(created_at) AS newest
FROM step_cache
WHERE (%(namespace)s::text IS NULL OR namespace = %(namespace)s)
  AND (%(step)s::text IS NULL OR step = %(step)s)
  AND (%(scope)s::text IS NULL OR scope = %(scope)s)
GROUP BY namespace, step, scope
ORDER BY namespace, step, scope;

-- name: cache_expire
DELETE FROM step_cache
WHERE (namespace, scope, key) IN (
    SELECT namespace, scope, key FROM step_cache
    WHERE expires_at IS NOT NULL AND expires_at <= %(now)s LIMIT %(limit)s);
