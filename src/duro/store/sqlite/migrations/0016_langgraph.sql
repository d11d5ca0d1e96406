-- LangGraph checkpoints (issue 21, duro.langgraph.DuroSaver), per namespace and thread.
-- langgraph_checkpoints: one row per checkpoint, its body without channel values (the
-- saver's serializer: type + bytes), its metadata (same form) and the metadata's run_id
-- (delete_for_runs). langgraph_blobs: channel values by channel and version, shared by
-- the checkpoints that did not change them. langgraph_writes: pending writes of a
-- checkpoint by task and index (idx < 0: the special channels a task replaces).
CREATE TABLE langgraph_checkpoints (
    namespace     TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    parent_id     TEXT,
    run_id        TEXT,
    type          TEXT NOT NULL,
    checkpoint    BLOB NOT NULL,
    meta_type     TEXT NOT NULL,
    metadata      BLOB NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX langgraph_checkpoints_run ON langgraph_checkpoints (namespace, run_id)
    WHERE run_id IS NOT NULL;
CREATE TABLE langgraph_blobs (
    namespace     TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    channel       TEXT NOT NULL,
    version       TEXT NOT NULL,
    type          TEXT NOT NULL,
    blob          BLOB NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, channel, version)
);
CREATE TABLE langgraph_writes (
    namespace     TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    channel       TEXT NOT NULL,
    type          TEXT NOT NULL,
    blob          BLOB NOT NULL,
    task_path     TEXT NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
