-- Streams out of running steps (store/_base/_streams.py; migration 0013).

-- name: stream_lock
-- One writer of a run's stream at a time, to its commit: offsets are taken as MAX + 1,
-- so two writers would collide, and a reader must never see an offset committed before
-- a smaller one (it would skip it).
SELECT pg_advisory_xact_lock(%(key)s);

-- name: stream_head
-- The run's next offset, and the execution of the op that streams now (if any).
SELECT (SELECT COALESCE(MAX(seq) + 1, 0) FROM run_streams WHERE run_id = %(run_id)s)
           AS next,
       h.execution, h.attempt, h.first_seq
FROM (SELECT 1) AS one
LEFT JOIN run_stream_ops AS h ON h.run_id = %(run_id)s AND h.op = %(op)s;

-- name: stream_set_head
INSERT INTO run_stream_ops (run_id, op, execution, attempt, first_seq)
VALUES (%(run_id)s, %(op)s, %(execution)s, %(attempt)s, %(first_seq)s)
ON CONFLICT (run_id, op) DO UPDATE SET execution = excluded.execution,
    attempt = excluded.attempt, first_seq = excluded.first_seq;

-- name: stream_supersede
UPDATE run_streams SET superseded = true
WHERE run_id = %(run_id)s AND seq >= %(since)s AND op = %(op)s AND NOT superseded;

-- name: stream_marker
INSERT INTO run_streams (run_id, seq, kind, op, step, attempt, execution, data, ts)
VALUES (%(run_id)s, %(seq)s, %(kind)s, %(op)s, %(step)s, %(attempt)s, %(execution)s, NULL,
        %(ts)s);

-- name: stream_insert
-- %(chunks)s is an array of each chunk's JSON text.
INSERT INTO run_streams (run_id, seq, kind, op, step, attempt, execution, data, ts)
SELECT %(run_id)s, %(first)s + c.n - 1, 'chunk', %(op)s, %(step)s, %(attempt)s,
       %(execution)s, c.data, %(ts)s
FROM unnest(%(chunks)s::text[]) WITH ORDINALITY AS c(data, n);

-- name: stream_read
SELECT * FROM run_streams WHERE run_id = %(run_id)s AND seq >= %(from)s
ORDER BY seq LIMIT %(limit)s;

-- name: stream_put
-- A value (or the closed marker) workflow code wrote, with the event that records it
-- (store/_base/_writes.projection, after stream_lock), fenced: at the run's next offset,
-- as op -1 of no step (the workflow's own).
INSERT INTO run_streams (run_id, seq, kind, op, step, attempt, execution, data, ts)
SELECT %(run_id)s::text,
       (SELECT COALESCE(MAX(seq) + 1, 0) FROM run_streams WHERE run_id = %(run_id)s),
       %(kind)s::text, -1, '', 0, 'workflow', %(data)s::text, %(ts)s::float8
WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = %(run_id)s AND epoch = %(epoch)s
              AND history_len = %(new_len)s);

-- name: stream_copy
-- A workflow's own value (or its closed marker) copied with its history (reset, retry,
-- fork) to the new run's stream, in order: the new run is not claimed yet.
INSERT INTO run_streams (run_id, seq, kind, op, step, attempt, execution, data, ts)
SELECT %(run_id)s::text,
       (SELECT COALESCE(MAX(seq) + 1, 0) FROM run_streams WHERE run_id = %(run_id)s),
       %(kind)s::text, -1, '', 0, 'workflow', %(data)s::text, %(ts)s::float8;
