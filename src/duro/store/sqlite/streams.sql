-- Streams out of running steps (store/_base/_streams.py; migration 0012).

-- name: stream_lock
-- PostgreSQL serializes a run's stream writers here; SQLite's one writer already does.
SELECT :key AS key;

-- name: stream_head
-- The run's next offset, and the execution of the op that streams now (if any).
SELECT (SELECT COALESCE(MAX(seq) + 1, 0) FROM run_streams WHERE run_id = :run_id) AS next,
       h.execution, h.attempt, h.first_seq
FROM (SELECT 1) AS one
LEFT JOIN run_stream_ops AS h ON h.run_id = :run_id AND h.op = :op;

-- name: stream_set_head
INSERT INTO run_stream_ops (run_id, op, execution, attempt, first_seq)
VALUES (:run_id, :op, :execution, :attempt, :first_seq)
ON CONFLICT (run_id, op) DO UPDATE SET execution = excluded.execution,
    attempt = excluded.attempt, first_seq = excluded.first_seq;

-- name: stream_supersede
UPDATE run_streams SET superseded = 1
WHERE run_id = :run_id AND seq >= :since AND op = :op AND superseded = 0;

-- name: stream_marker
INSERT INTO run_streams (run_id, seq, kind, op, step, attempt, execution, data, ts)
VALUES (:run_id, :seq, :kind, :op, :step, :attempt, :execution, NULL, :ts);

-- name: stream_insert
-- :chunks is a JSON array of strings, each a chunk's JSON text.
INSERT INTO run_streams (run_id, seq, kind, op, step, attempt, execution, data, ts)
SELECT :run_id, :first + c.key, 'chunk', :op, :step, :attempt, :execution, c.value, :ts
FROM json_each(:chunks) AS c;

-- name: stream_read
SELECT * FROM run_streams WHERE run_id = :run_id AND seq >= :from
ORDER BY seq LIMIT :limit;

-- name: stream_put
-- A value (or the closed marker) workflow code wrote, with the event that records it
-- (store/_base/_writes.projection; the writer checked the append's fence first): at the
-- run's next offset, as op -1 of no step (the workflow's own).
INSERT INTO run_streams (run_id, seq, kind, op, step, attempt, execution, data, ts)
SELECT :run_id, (SELECT COALESCE(MAX(seq) + 1, 0) FROM run_streams WHERE run_id = :run_id),
       :kind, -1, '', 0, 'workflow', :data, :ts;

-- name: stream_copy
-- A workflow's own value (or its closed marker) copied with its history (reset, retry,
-- fork) to the new run's stream, in order: the new run is not claimed yet.
INSERT INTO run_streams (run_id, seq, kind, op, step, attempt, execution, data, ts)
SELECT :run_id, (SELECT COALESCE(MAX(seq) + 1, 0) FROM run_streams WHERE run_id = :run_id),
       :kind, -1, '', 0, 'workflow', :data, :ts;
