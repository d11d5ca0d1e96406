-- The durable step cache (issue 17, item 3): @duro.step(cache=duro.Cache(...)) results
-- across runs, per namespace and scope (GLOBAL: ''), keyed by the SHA-256 of the step's
-- name, cache version and canonical arguments. result: the stored form of the payload
-- (codecs applied, as in the history). run_id: the run that stored it. An expired entry
-- is ignored by lookups and deleted by the workers' sweep.
CREATE TABLE step_cache (
    namespace  text NOT NULL,
    scope      text NOT NULL,
    key        text NOT NULL,
    step       text NOT NULL,
    result     bytea NOT NULL,
    run_id     text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision,
    PRIMARY KEY (namespace, scope, key)
);
CREATE INDEX step_cache_step ON step_cache (namespace, step);
CREATE INDEX step_cache_expires ON step_cache (expires_at) WHERE expires_at IS NOT NULL;
