-- Search attributes (issue 15, item 7): a run's indexed key/value pairs, given at its
-- start and changed by upserts recorded in its history (written with those events, in
-- the same transaction). value: the match form (a type tag and a canonical text, so
-- 12 and 12.0 match but "12" and true do not: store/_rules.index_value); data: the value
-- as JSON, type and all, for reading back. created_at: the run's, so that a listing
-- filtered by an attribute is one range of the match index, newest first.
CREATE TABLE run_search_attributes (
    run_id      text NOT NULL,
    key         text NOT NULL,
    value       text NOT NULL,
    data        text NOT NULL,
    created_at  double precision NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_search_attributes_match
    ON run_search_attributes (key, value, created_at, run_id COLLATE "C");

-- Listings page by the keyset (created_at, run_id), newest first: each listing index
-- ends with the run id, so that a page is one range scan, ties included, and no sort.
-- Run ids compare in the "C" collation (code point order, as SQLite and Python), so the
-- order is the same whatever the database's collation.
DROP INDEX runs_created;
CREATE INDEX runs_created ON runs (created_at, run_id COLLATE "C");
DROP INDEX runs_status;
CREATE INDEX runs_status ON runs (status, created_at, run_id COLLATE "C");
DROP INDEX runs_name;
CREATE INDEX runs_name ON runs (workflow_name, created_at, run_id COLLATE "C");
