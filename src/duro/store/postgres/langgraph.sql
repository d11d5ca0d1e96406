-- LangGraph checkpoints (store/_base/_langgraph.py, duro.langgraph.DuroSaver).

-- name: lg_put_blob
INSERT INTO langgraph_blobs (namespace, thread_id, checkpoint_ns, channel, version, type, blob)
VALUES (%(namespace)s, %(thread_id)s, %(checkpoint_ns)s, %(channel)s, %(version)s, %(type)s, %(blob)s)
ON CONFLICT DO NOTHING;

-- name: lg_put_checkpoint
INSERT INTO langgraph_checkpoints (namespace, thread_id, checkpoint_ns, checkpoint_id,
                                   parent_id, run_id, type, checkpoint, meta_type, metadata)
VALUES (%(namespace)s, %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_id)s, %(run_id)s, %(type)s,
        %(checkpoint)s, %(meta_type)s, %(metadata)s)
ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_id = excluded.parent_id, run_id = excluded.run_id, type = excluded.type,
    checkpoint = excluded.checkpoint, meta_type = excluded.meta_type,
    metadata = excluded.metadata;

-- name: lg_put_write
INSERT INTO langgraph_writes (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id,
                              idx, channel, type, blob, task_path)
VALUES (%(namespace)s, %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, %(idx)s, %(channel)s,
        %(type)s, %(blob)s, %(task_path)s)
ON CONFLICT DO NOTHING;

-- name: lg_replace_write
INSERT INTO langgraph_writes (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id,
                              idx, channel, type, blob, task_path)
VALUES (%(namespace)s, %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, %(idx)s, %(channel)s,
        %(type)s, %(blob)s, %(task_path)s)
ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = excluded.channel, type = excluded.type, blob = excluded.blob,
    task_path = excluded.task_path;

-- name: lg_list
SELECT * FROM langgraph_checkpoints
WHERE namespace = %(namespace)s
  AND (%(thread_id)s::text IS NULL OR thread_id = %(thread_id)s)
  AND (%(checkpoint_ns)s::text IS NULL OR checkpoint_ns = %(checkpoint_ns)s)
  AND (%(checkpoint_id)s::text IS NULL OR checkpoint_id = %(checkpoint_id)s)
  AND (%(before)s::text IS NULL OR checkpoint_id < %(before)s)
ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
LIMIT %(limit)s;

-- name: lg_blobs
SELECT channel, version, type, blob FROM langgraph_blobs
WHERE namespace = %(namespace)s AND thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
  AND channel = ANY(%(channels)s);

-- name: lg_writes
SELECT task_id, idx, channel, type, blob, task_path FROM langgraph_writes
WHERE namespace = %(namespace)s AND thread_id = %(thread_id)s AND checkpoint_ns = %(checkpoint_ns)s
  AND checkpoint_id = %(checkpoint_id)s
ORDER BY task_path, task_id, idx;

-- name: lg_delete_thread_checkpoints
DELETE FROM langgraph_checkpoints WHERE namespace = %(namespace)s AND thread_id = %(thread_id)s;

-- name: lg_delete_thread_blobs
DELETE FROM langgraph_blobs WHERE namespace = %(namespace)s AND thread_id = %(thread_id)s;

-- name: lg_delete_thread_writes
DELETE FROM langgraph_writes WHERE namespace = %(namespace)s AND thread_id = %(thread_id)s;

-- name: lg_delete_run_writes
DELETE FROM langgraph_writes
WHERE namespace = %(namespace)s
  AND (thread_id, checkpoint_ns, checkpoint_id) IN (
      SELECT thread_id, checkpoint_ns, checkpoint_id FROM langgraph_checkpoints
      WHERE namespace = %(namespace)s AND run_id = %(run_id)s);

-- name: lg_delete_run_checkpoints
DELETE FROM langgraph_checkpoints WHERE namespace = %(namespace)s AND run_id = %(run_id)s;

-- name: lg_copy_checkpoints
INSERT INTO langgraph_checkpoints (namespace, thread_id, checkpoint_ns, checkpoint_id,
                                   parent_id, run_id, type, checkpoint, meta_type, metadata)
SELECT namespace, %(target)s, checkpoint_ns, checkpoint_id, parent_id, run_id, type,
       checkpoint, meta_type, metadata
FROM langgraph_checkpoints WHERE namespace = %(namespace)s AND thread_id = %(source)s
ON CONFLICT DO NOTHING;

-- name: lg_copy_blobs
INSERT INTO langgraph_blobs (namespace, thread_id, checkpoint_ns, channel, version, type, blob)
SELECT namespace, %(target)s, checkpoint_ns, channel, version, type, blob
FROM langgraph_blobs WHERE namespace = %(namespace)s AND thread_id = %(source)s
ON CONFLICT DO NOTHING;

-- name: lg_copy_writes
INSERT INTO langgraph_writes (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id,
                              idx, channel, type, blob, task_path)
SELECT namespace, %(target)s, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob,
       task_path
FROM langgraph_writes WHERE namespace = %(namespace)s AND thread_id = %(source)s
ON CONFLICT DO NOTHING;

-- name: lg_prune_writes
DELETE FROM langgraph_writes
WHERE namespace = %(namespace)s AND thread_id = %(thread_id)s
  AND checkpoint_id < (SELECT max(c.checkpoint_id) FROM langgraph_checkpoints c
                       WHERE c.namespace = langgraph_writes.namespace
                         AND c.thread_id = langgraph_writes.thread_id
                         AND c.checkpoint_ns = langgraph_writes.checkpoint_ns);

-- name: lg_prune_checkpoints
DELETE FROM langgraph_checkpoints
WHERE namespace = %(namespace)s AND thread_id = %(thread_id)s
  AND checkpoint_id < (SELECT max(c.checkpoint_id) FROM langgraph_checkpoints c
                       WHERE c.namespace = langgraph_checkpoints.namespace
                         AND c.thread_id = langgraph_checkpoints.thread_id
                         AND c.checkpoint_ns = langgraph_checkpoints.checkpoint_ns);
