-- Search attributes (issue 15, item 7): a run's indexed key/value pairs, given at its
-- start and changed by upserts recorded in its history (written with those events, in
-- the same transaction). value: the match form (a type tag and a canonical text, so
-- 12 and 12.0 match but "12" and true do not: store/_rules.index_value); data: the value
-- as JSON, type and all, for reading back. created_at: the run's, so that a listing
-- filtered by an attribute is one range of the match index, newest first.
CREATE TABLE run_search_attributes (
    run_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX run_search_attributes_match
    ON run_search_attributes (key, value, created_at, run_id);

-- Listings page by the keyset (created_at, run_id), newest first: each listing index
-- ends with the run id, so that a page is one range scan, ties included, and no sort.
-- listed_at is created_at as listings order by it: created_at itself, except in a
-- damaged row (SQLite keeps any value it is given, a hand-edited text say), where it is
-- 0, as the run's record shows it (store/_rows.run_record): such a row is still listed,
-- at its place in the order, and a cursor after it continues where it should. Virtual:
-- computed when read, and when the indexes below are written (once, at the insert).
ALTER TABLE runs ADD COLUMN listed_at REAL GENERATED ALWAYS AS (
    CASE WHEN typeof(created_at) IN ('real', 'integer') THEN created_at ELSE 0 END) VIRTUAL;
DROP INDEX runs_created;
CREATE INDEX runs_created ON runs (listed_at, run_id);
DROP INDEX runs_status;
CREATE INDEX runs_status ON runs (status, listed_at, run_id);
DROP INDEX runs_name;
CREATE INDEX runs_name ON runs (workflow_name, listed_at, run_id);
