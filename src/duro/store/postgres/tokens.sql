-- API tokens (store/_tokens.py): the hash of each secret, never the secret.

-- name: insert_token
INSERT INTO api_tokens (token_id, name, namespace, scope, secret_hash, created_at,
                        expires_at)
VALUES (%(token_id)s, %(name)s, %(namespace)s, %(scope)s, %(secret_hash)s, %(created_at)s,
        %(expires_at)s)
ON CONFLICT DO NOTHING;

-- name: token_by_id
SELECT * FROM api_tokens WHERE token_id = %(token_id)s;

-- name: list_tokens
SELECT * FROM api_tokens WHERE %(namespace)s::text IS NULL OR namespace = %(namespace)s
ORDER BY created_at, token_id;

-- name: revoke_token
UPDATE api_tokens SET revoked_at = %(now)s
WHERE token_id = %(token_id)s AND revoked_at IS NULL;
