-- Streams out of running steps (issue 17, item 4; store/_base/_streams.py): a per-run
-- log of the chunks steps give to duro.stream(), kept beside the history (which keeps
-- only each step's result). seq is the chunk's offset: dense from 0 per run, assigned by
-- the one writer in commit order. kind: 'chunk'; 'superseded' (a marker: every earlier
-- chunk of op is superseded, for readers that already had them); 'truncated' (a marker:
-- the run reached its cap, nothing more is kept).
CREATE TABLE run_streams (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    op         INTEGER NOT NULL,
    step       TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    execution  TEXT NOT NULL,
    data       TEXT,
    superseded INTEGER NOT NULL DEFAULT 0,
    ts         REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- The execution of each op that streams now (the last to write a first batch), and the
-- offset of its first row: a new execution supersedes the rows of the op from there.
CREATE TABLE run_stream_ops (
    run_id    TEXT NOT NULL,
    op        INTEGER NOT NULL,
    execution TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    PRIMARY KEY (run_id, op)
) WITHOUT ROWID;
