-- What the stats read takes of each run and step event (issue 18, docs/observability.md
-- "How it scales"): the same facts, keys and duration buckets as SQLite's migration 0016,
-- read raw here (PostgreSQL keeps no rollup yet: see store/_base/_stats.py).
--
-- Durations are counted in log-scale buckets: bucket b holds [1.05^b, 1.05^(b+1)); the
-- read reports 1.05^(b+0.5), within 2.5% of the value measured. dbucket -1000000 = no
-- duration (a run not closed, an event without one), -999999 = zero or negative.
CREATE VIEW stats_run_facts AS
SELECT run_id, namespace, workflow_name, created_at AS listed_at,
       floor(created_at / 3600)::bigint AS hour, status,
       CASE WHEN closed_at IS NULL THEN -1000000
            WHEN closed_at - created_at <= 0 THEN -999999
            ELSE floor(ln(closed_at - created_at) / ln(1.05::float8))::bigint END AS dbucket,
       (error IS NOT NULL AND status IN ('failed', 'timed_out', 'terminated', 'cancelled'))
           ::int AS erred,
       CASE WHEN error IS NOT NULL AND status IN ('failed', 'timed_out', 'terminated',
                                                   'cancelled')
            THEN coalesce(convert_from(error, 'UTF8')::jsonb ->> 'type', '')
            ELSE '' END AS etype
FROM runs;

CREATE VIEW stats_step_facts AS
SELECT e.run_id, e.seq, r.namespace, r.workflow_name, r.created_at AS listed_at,
       floor(r.created_at / 3600)::bigint AS hour, coalesce(e.name, '') AS step, e.kind,
       CASE WHEN e.kind <> 'step_completed'
            THEN coalesce(convert_from(e.data, 'UTF8')::jsonb ->> 'type', '')
            ELSE '' END AS etype,
       CASE WHEN jsonb_typeof(m.j -> 'duration') IS DISTINCT FROM 'number' THEN -1000000
            WHEN (m.j ->> 'duration')::float8 <= 0 THEN -999999
            ELSE floor(ln((m.j ->> 'duration')::float8) / ln(1.05::float8))::bigint
       END AS dbucket,
       u.calls, u.input_tokens, u.output_tokens, u.cost, u.unpriced
FROM events e
JOIN runs r ON r.run_id = e.run_id
CROSS JOIN LATERAL (SELECT convert_from(e.meta, 'UTF8')::jsonb AS j) m
CROSS JOIN LATERAL (
    SELECT count(*) AS calls,
           coalesce(sum(CASE WHEN jsonb_typeof(x -> 'input_tokens') = 'number'
                             THEN (x ->> 'input_tokens')::numeric END), 0) AS input_tokens,
           coalesce(sum(CASE WHEN jsonb_typeof(x -> 'output_tokens') = 'number'
                             THEN (x ->> 'output_tokens')::numeric END), 0) AS output_tokens,
           coalesce(sum(CASE WHEN jsonb_typeof(x -> 'cost') = 'number'
                             THEN (x ->> 'cost')::float8 END), 0.0) AS cost,
           count(*) FILTER (WHERE jsonb_typeof(x -> 'cost') IS DISTINCT FROM 'number')
               AS unpriced
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(m.j -> 'usage') = 'array'
                                   THEN m.j -> 'usage' ELSE '[]'::jsonb END) x
    WHERE jsonb_typeof(x) = 'object') u
WHERE e.kind IN ('step_completed', 'step_retrying', 'step_failed');
