-- Shared budgets (issue 17, docs/agents.md "Budgets"): the spend of each budget key per
-- window, added in the same transaction as the step outcomes that spent it; and the
-- reservations of the budgeted attempts in flight, each tied to its run's claim (a
-- reservation counts only while the run is running at that epoch: a run recovered by
-- another worker releases its lost attempts' reservations).
CREATE TABLE budget_spend (
    namespace       TEXT NOT NULL,
    key             TEXT NOT NULL,
    window_start    REAL NOT NULL,
    period          REAL,
    spent_usd       REAL NOT NULL DEFAULT 0,
    spent_tokens    INTEGER NOT NULL DEFAULT 0,
    settled         INTEGER NOT NULL DEFAULT 0,
    max_step_usd    REAL NOT NULL DEFAULT 0,
    max_step_tokens INTEGER NOT NULL DEFAULT 0,
    limit_usd       REAL,
    limit_tokens    INTEGER,
    override_usd    REAL,
    override_tokens INTEGER,
    updated_at      REAL NOT NULL,
    PRIMARY KEY (namespace, key, window_start)
);
CREATE TABLE budget_reservations (
    namespace    TEXT NOT NULL,
    key          TEXT NOT NULL,
    window_start REAL NOT NULL,
    run_id       TEXT NOT NULL,
    op           INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    usd          REAL NOT NULL,
    tokens       INTEGER NOT NULL,
    created_at   REAL NOT NULL,
    PRIMARY KEY (namespace, key, window_start, run_id, op)
);
