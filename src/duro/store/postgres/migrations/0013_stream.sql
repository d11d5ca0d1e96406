-- Streams out of running steps (issue 17, item 4; store/_base/_streams.py): a per-run
-- log of the chunks steps give to duro.stream(), kept beside the history (which keeps
-- only each step's result). seq is the chunk's offset: dense from 0 per run, assigned in
-- commit order (writers of one run serialize on an advisory lock, so a reader never sees
-- a later offset before an earlier one). kind: 'chunk'; 'superseded' (a marker: every
-- earlier chunk of op is superseded, for readers that already had them); 'truncated' (a
-- marker: the run reached its cap, nothing more is kept).
CREATE TABLE run_streams (
    run_id     text NOT NULL,
    seq        bigint NOT NULL,
    kind       text NOT NULL,
    op         bigint NOT NULL,
    step       text NOT NULL,
    attempt    integer NOT NULL,
    execution  text NOT NULL,
    data       text,
    superseded boolean NOT NULL DEFAULT false,
    ts         double precision NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- The execution of each op that streams now (the last to write a first batch), and the
-- offset of its first row: a new execution supersedes the rows of the op from there.
CREATE TABLE run_stream_ops (
    run_id    text NOT NULL,
    op        bigint NOT NULL,
    execution text NOT NULL,
    attempt   integer NOT NULL,
    first_seq bigint NOT NULL,
    PRIMARY KEY (run_id, op)
);
