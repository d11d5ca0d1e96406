-- Commit markers of the stores' writer connections (PostgreSQL only; see _writer.py).
-- Every write transaction first inserts its writer's id and its own number here, so a
-- batch is one round trip. After a lost connection the writer inserts the lost batch's
-- key itself, marked fenced: that waits for a transaction of the old connection still
-- holding the key, and the outcome says whether the lost batch committed (the key was
-- taken) or not (the insert went through; a late transaction of the old connection then
-- fails on the key before it writes anything). Insert-only on purpose: one row updated
-- per commit would pile up versions whenever a long read holds back cleanup.
CREATE TABLE writer_commits (
    writer_id  TEXT NOT NULL,
    batch      BIGINT NOT NULL,
    fenced     BOOLEAN NOT NULL DEFAULT false,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (writer_id, batch)
);
