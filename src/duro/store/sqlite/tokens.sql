-- API tokens (store/_tokens.py): the hash of each secret, never the secret.

-- name: insert_token
INSERT INTO api_tokens (token_id, name, namespace, scope, secret_hash, created_at,
                        expires_at)
VALUES (:token_id, :name, :namespace, :scope, :secret_hash, :created_at, :expires_at)
ON CONFLICT DO NOTHING;

-- name: token_by_id
SELECT * FROM api_tokens WHERE token_id = :token_id;

-- name: list_tokens
SELECT * FROM api_tokens WHERE :namespace IS NULL OR namespace = :namespace
ORDER BY created_at, token_id;

-- name: revoke_token
UPDATE api_tokens SET revoked_at = :now WHERE token_id = :token_id AND revoked_at IS NULL;
