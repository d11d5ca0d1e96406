-- Shared budgets (issue 17, docs/agents.md "Budgets"): the spend of each budget key per
-- window, added in the same transaction as the step outcomes that spent it; and the
-- reservations of the budgeted attempts in flight, each tied to its run's claim (a
-- reservation counts only while the run is running at that epoch: a run recovered by
-- another worker releases its lost attempts' reservations).
CREATE TABLE budget_spend (
    namespace       text NOT NULL,
    key             text NOT NULL,
    window_start    double precision NOT NULL,
    period          double precision,
    spent_usd       double precision NOT NULL DEFAULT 0,
    spent_tokens    bigint NOT NULL DEFAULT 0,
    settled         bigint NOT NULL DEFAULT 0,
    max_step_usd    double precision NOT NULL DEFAULT 0,
    max_step_tokens bigint NOT NULL DEFAULT 0,
    limit_usd       double precision,
    limit_tokens    bigint,
    override_usd    double precision,
    override_tokens bigint,
    updated_at      double precision NOT NULL,
    PRIMARY KEY (namespace, key, window_start)
);
CREATE TABLE budget_reservations (
    namespace    text NOT NULL,
    key          text NOT NULL,
    window_start double precision NOT NULL,
    run_id       text NOT NULL,
    op           bigint NOT NULL,
    epoch        bigint NOT NULL,
    usd          double precision NOT NULL,
    tokens       bigint NOT NULL,
    created_at   double precision NOT NULL,
    PRIMARY KEY (namespace, key, window_start, run_id, op)
);
