-- LangGraph checkpoints (issue 21, duro.langgraph.DuroSaver), per namespace and thread.
-- langgraph_checkpoints: one row per checkpoint, its body without channel values (the
-- saver's serializer: type + bytes), its metadata (same form) and the metadata's run_id
-- (delete_for_runs). langgraph_blobs: channel values by channel and version, shared by
-- the checkpoints that did not change them. langgraph_writes: pending writes of a
-- checkpoint by task and index (idx < 0: the special channels a task replaces).
CREATE TABLE langgraph_checkpoints (
    namespace     text NOT NULL,
    thread_id     text NOT NULL,
    checkpoint_ns text NOT NULL,
    checkpoint_id text NOT NULL,
    parent_id     text,
    run_id        text,
    type          text NOT NULL,
    checkpoint    bytea NOT NULL,
    meta_type     text NOT NULL,
    metadata      bytea NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX langgraph_checkpoints_run ON langgraph_checkpoints (namespace, run_id)
    WHERE run_id IS NOT NULL;
CREATE TABLE langgraph_blobs (
    namespace     text NOT NULL,
    thread_id     text NOT NULL,
    checkpoint_ns text NOT NULL,
    channel       text NOT NULL,
    version       text NOT NULL,
    type          text NOT NULL,
    blob          bytea NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, channel, version)
);
CREATE TABLE langgraph_writes (
    namespace     text NOT NULL,
    thread_id     text NOT NULL,
    checkpoint_ns text NOT NULL,
    checkpoint_id text NOT NULL,
    task_id       text NOT NULL,
    idx           integer NOT NULL,
    channel       text NOT NULL,
    type          text NOT NULL,
    blob          bytea NOT NULL,
    task_path     text NOT NULL,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
