-- LangGraph checkpoints (store/_base/_langgraph.py, duro.langgraph.DuroSaver).

-- name: lg_put_blob
INSERT INTO langgraph_blobs (namespace, thread_id, checkpoint_ns, channel, version, type, blob)
VALUES (:namespace, :thread_id, :checkpoint_ns, :channel, :version, :type, :blob)
ON CONFLICT DO NOTHING;

-- name: lg_put_checkpoint
INSERT INTO langgraph_checkpoints (namespace, thread_id, checkpoint_ns, checkpoint_id,
                                   parent_id, run_id, type, checkpoint, meta_type, metadata)
VALUES (:namespace, :thread_id, :checkpoint_ns, :checkpoint_id, :parent_id, :run_id, :type,
        :checkpoint, :meta_type, :metadata)
ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_id = excluded.parent_id, run_id = excluded.run_id, type = excluded.type,
    checkpoint = excluded.checkpoint, meta_type = excluded.meta_type,
    metadata = excluded.metadata;

-- name: lg_put_write
INSERT INTO langgraph_writes (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id,
                              idx, channel, type, blob, task_path)
VALUES (:namespace, :thread_id, :checkpoint_ns, :checkpoint_id, :task_id, :idx, :channel,
        :type, :blob, :task_path)
ON CONFLICT DO NOTHING;

-- name: lg_replace_write
INSERT INTO langgraph_writes (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id,
                              idx, channel, type, blob, task_path)
VALUES (:namespace, :thread_id, :checkpoint_ns, :checkpoint_id, :task_id, :idx, :channel,
        :type, :blob, :task_path)
ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = excluded.channel, type = excluded.type, blob = excluded.blob,
    task_path = excluded.task_path;

-- name: lg_list
SELECT * FROM langgraph_checkpoints
WHERE namespace = :namespace
  AND (:thread_id IS NULL OR thread_id = :thread_id)
  AND (:checkpoint_ns IS NULL OR checkpoint_ns = :checkpoint_ns)
  AND (:checkpoint_id IS NULL OR checkpoint_id = :checkpoint_id)
  AND (:before IS NULL OR checkpoint_id < :before)
ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
LIMIT coalesce(:limit, -1);

-- name: lg_blobs
SELECT channel, version, type, blob FROM langgraph_blobs
WHERE namespace = :namespace AND thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns
  AND channel IN (SELECT value FROM json_each(:channels));

-- name: lg_writes
SELECT task_id, idx, channel, type, blob, task_path FROM langgraph_writes
WHERE namespace = :namespace AND thread_id = :thread_id AND checkpoint_ns = :checkpoint_ns
  AND checkpoint_id = :checkpoint_id
ORDER BY task_path, task_id, idx;

-- name: lg_delete_thread_checkpoints
DELETE FROM langgraph_checkpoints WHERE namespace = :namespace AND thread_id = :thread_id;

-- name: lg_delete_thread_blobs
DELETE FROM langgraph_blobs WHERE namespace = :namespace AND thread_id = :thread_id;

-- name: lg_delete_thread_writes
DELETE FROM langgraph_writes WHERE namespace = :namespace AND thread_id = :thread_id;

-- name: lg_delete_run_writes
DELETE FROM langgraph_writes
WHERE namespace = :namespace
  AND (thread_id, checkpoint_ns, checkpoint_id) IN (
      SELECT thread_id, checkpoint_ns, checkpoint_id FROM langgraph_checkpoints
      WHERE namespace = :namespace AND run_id = :run_id);

-- name: lg_delete_run_checkpoints
DELETE FROM langgraph_checkpoints WHERE namespace = :namespace AND run_id = :run_id;

-- name: lg_copy_checkpoints
INSERT INTO langgraph_checkpoints (namespace, thread_id, checkpoint_ns, checkpoint_id,
                                   parent_id, run_id, type, checkpoint, meta_type, metadata)
SELECT namespace, :target, checkpoint_ns, checkpoint_id, parent_id, run_id, type,
       checkpoint, meta_type, metadata
FROM langgraph_checkpoints WHERE namespace = :namespace AND thread_id = :source
ON CONFLICT DO NOTHING;

-- name: lg_copy_blobs
INSERT INTO langgraph_blobs (namespace, thread_id, checkpoint_ns, channel, version, type, blob)
SELECT namespace, :target, checkpoint_ns, channel, version, type, blob
FROM langgraph_blobs WHERE namespace = :namespace AND thread_id = :source
ON CONFLICT DO NOTHING;

-- name: lg_copy_writes
INSERT INTO langgraph_writes (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id,
                              idx, channel, type, blob, task_path)
SELECT namespace, :target, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob,
       task_path
FROM langgraph_writes WHERE namespace = :namespace AND thread_id = :source
ON CONFLICT DO NOTHING;

-- name: lg_prune_writes
DELETE FROM langgraph_writes
WHERE namespace = :namespace AND thread_id = :thread_id
  AND checkpoint_id < (SELECT max(c.checkpoint_id) FROM langgraph_checkpoints c
                       WHERE c.namespace = langgraph_writes.namespace
                         AND c.thread_id = langgraph_writes.thread_id
                         AND c.checkpoint_ns = langgraph_writes.checkpoint_ns);

-- name: lg_prune_checkpoints
DELETE FROM langgraph_checkpoints
WHERE namespace = :namespace AND thread_id = :thread_id
  AND checkpoint_id < (SELECT max(c.checkpoint_id) FROM langgraph_checkpoints c
                       WHERE c.namespace = langgraph_checkpoints.namespace
                         AND c.thread_id = langgraph_checkpoints.thread_id
                         AND c.checkpoint_ns = langgraph_checkpoints.checkpoint_ns);
