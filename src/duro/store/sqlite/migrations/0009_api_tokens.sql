-- API tokens for duro serve (issue 16): each token reaches one namespace with one scope
-- (read < write < admin). secret_hash: SHA-256 of the secret, hex; the secret itself is
-- shown once at creation and never stored. Revoked tokens stay (revoked_at) for audit.
CREATE TABLE api_tokens (
    token_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    secret_hash TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL,
    revoked_at  REAL
);
