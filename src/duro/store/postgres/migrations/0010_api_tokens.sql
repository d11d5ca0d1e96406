-- API tokens for duro serve (issue 16): each token reaches one namespace with one scope
-- (read < write < admin). secret_hash: SHA-256 of the secret, hex; the secret itself is
-- shown once at creation and never stored. Revoked tokens stay (revoked_at) for audit.
CREATE TABLE api_tokens (
    token_id    text PRIMARY KEY,
    name        text NOT NULL,
    namespace   text NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    secret_hash text NOT NULL,
    created_at  double precision NOT NULL,
    expires_at  double precision,
    revoked_at  double precision
);
