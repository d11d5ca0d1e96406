CREATE TABLE api_tokens (
    token_id text NOT NULL,
    name text NOT NULL,
    namespace text NOT NULL,
    scope text NOT NULL,
    secret_hash text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision,
    revoked_at double precision
);
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (token_id);
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_check CHECK ((scope = ANY (ARRAY['read'::text, 'write'::text, 'admin'::text])));

CREATE TABLE approvals (
    approval_id text NOT NULL,
    run_id text NOT NULL,
    op bigint NOT NULL,
    workflow_id text NOT NULL,
    workflow_name text NOT NULL,
    namespace text NOT NULL,
    name text NOT NULL,
    context bytea,
    requested_at double precision NOT NULL,
    deadline_at double precision,
    status text NOT NULL,
    decided_by text,
    comment text,
    decided_at double precision
);
ALTER TABLE approvals ADD CONSTRAINT approvals_pkey PRIMARY KEY (approval_id);
ALTER TABLE approvals ADD CONSTRAINT approvals_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'approved'::text, 'rejected'::text, 'timed_out'::text, 'run_ended'::text])));
CREATE INDEX approvals_pending ON approvals USING btree (requested_at, approval_id COLLATE "C") WHERE (status = 'pending'::text);
CREATE INDEX approvals_requested ON approvals USING btree (requested_at, approval_id COLLATE "C");
CREATE INDEX approvals_run ON approvals USING btree (run_id);

CREATE TABLE budget_reservations (
    namespace text NOT NULL,
    key text NOT NULL,
    window_start double precision NOT NULL,
    run_id text NOT NULL,
    op bigint NOT NULL,
    epoch bigint NOT NULL,
    usd double precision NOT NULL,
    tokens bigint NOT NULL,
    created_at double precision NOT NULL
);
ALTER TABLE budget_reservations ADD CONSTRAINT budget_reservations_pkey PRIMARY KEY (namespace, key, window_start, run_id, op);

CREATE TABLE budget_spend (
    namespace text NOT NULL,
    key text NOT NULL,
    window_start double precision NOT NULL,
    period double precision,
    spent_usd double precision DEFAULT 0 NOT NULL,
    spent_tokens bigint DEFAULT 0 NOT NULL,
    settled bigint DEFAULT 0 NOT NULL,
    max_step_usd double precision DEFAULT 0 NOT NULL,
    max_step_tokens bigint DEFAULT 0 NOT NULL,
    limit_usd double precision,
    limit_tokens bigint,
    override_usd double precision,
    override_tokens bigint,
    updated_at double precision NOT NULL
);
ALTER TABLE budget_spend ADD CONSTRAINT budget_spend_pkey PRIMARY KEY (namespace, key, window_start);

CREATE TABLE duro_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at double precision NOT NULL
);
ALTER TABLE duro_migrations ADD CONSTRAINT duro_migrations_pkey PRIMARY KEY (version);

CREATE TABLE events (
    run_id text NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    op bigint,
    name text,
    ts double precision NOT NULL,
    data bytea,
    meta bytea
);
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (run_id, seq);
CREATE UNIQUE INDEX events_outcome_once ON events USING btree (run_id, op) WHERE (kind = ANY (ARRAY['step_completed'::text, 'step_failed'::text, 'timer_fired'::text]));

CREATE TABLE heartbeats (
    run_id text NOT NULL,
    op bigint NOT NULL,
    details bytea,
    ts double precision NOT NULL
);
ALTER TABLE heartbeats ADD CONSTRAINT heartbeats_pkey PRIMARY KEY (run_id, op);

CREATE TABLE inbox (
    id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    run_id text NOT NULL,
    kind text NOT NULL,
    name text,
    data bytea,
    ts double precision NOT NULL,
    meta bytea
);
ALTER TABLE inbox ADD CONSTRAINT inbox_pkey PRIMARY KEY (id);
CREATE INDEX inbox_run ON inbox USING btree (run_id, id);

CREATE TABLE langgraph_blobs (
    namespace text NOT NULL,
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL,
    channel text NOT NULL,
    version text NOT NULL,
    type text NOT NULL,
    blob bytea NOT NULL
);
ALTER TABLE langgraph_blobs ADD CONSTRAINT langgraph_blobs_pkey PRIMARY KEY (namespace, thread_id, checkpoint_ns, channel, version);

CREATE TABLE langgraph_checkpoints (
    namespace text NOT NULL,
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL,
    checkpoint_id text NOT NULL,
    parent_id text,
    run_id text,
    type text NOT NULL,
    checkpoint bytea NOT NULL,
    meta_type text NOT NULL,
    metadata bytea NOT NULL
);
ALTER TABLE langgraph_checkpoints ADD CONSTRAINT langgraph_checkpoints_pkey PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id);
CREATE INDEX langgraph_checkpoints_run ON langgraph_checkpoints USING btree (namespace, run_id) WHERE (run_id IS NOT NULL);

CREATE TABLE langgraph_writes (
    namespace text NOT NULL,
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL,
    checkpoint_id text NOT NULL,
    task_id text NOT NULL,
    idx integer NOT NULL,
    channel text NOT NULL,
    type text NOT NULL,
    blob bytea NOT NULL,
    task_path text NOT NULL
);
ALTER TABLE langgraph_writes ADD CONSTRAINT langgraph_writes_pkey PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx);

CREATE TABLE queries (
    query_id text NOT NULL,
    run_id text NOT NULL,
    workflow_id text NOT NULL,
    workflow_name text NOT NULL,
    name text NOT NULL,
    args bytea,
    headers text,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    claimed_by text,
    claimed_at double precision,
    answered_at double precision,
    answer bytea,
    error bytea
);
ALTER TABLE queries ADD CONSTRAINT queries_pkey PRIMARY KEY (query_id);
CREATE INDEX queries_open ON queries USING btree (workflow_name, created_at) WHERE (answered_at IS NULL);

CREATE TABLE queue_starts (
    queue text NOT NULL,
    ts double precision NOT NULL
);
CREATE INDEX queue_starts_by_queue ON queue_starts USING btree (queue, ts);

CREATE TABLE queues (
    name text NOT NULL,
    concurrency integer,
    per_worker integer,
    rate_limit integer,
    rate_period double precision,
    key_concurrency integer,
    updated_at double precision NOT NULL
);
ALTER TABLE queues ADD CONSTRAINT queues_pkey PRIMARY KEY (name);

CREATE TABLE run_search_attributes (
    run_id text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    data text NOT NULL,
    created_at double precision NOT NULL
);
ALTER TABLE run_search_attributes ADD CONSTRAINT run_search_attributes_pkey PRIMARY KEY (run_id, key);
CREATE INDEX run_search_attributes_match ON run_search_attributes USING btree (key, value, created_at, run_id COLLATE "C");

CREATE TABLE run_state (
    run_id text NOT NULL,
    key text NOT NULL,
    value bytea,
    ts double precision NOT NULL
);
ALTER TABLE run_state ADD CONSTRAINT run_state_pkey PRIMARY KEY (run_id, key);

CREATE TABLE run_stream_ops (
    run_id text NOT NULL,
    op bigint NOT NULL,
    execution text NOT NULL,
    attempt integer NOT NULL,
    first_seq bigint NOT NULL
);
ALTER TABLE run_stream_ops ADD CONSTRAINT run_stream_ops_pkey PRIMARY KEY (run_id, op);

CREATE TABLE run_streams (
    run_id text NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    op bigint NOT NULL,
    step text NOT NULL,
    attempt integer NOT NULL,
    execution text NOT NULL,
    data text,
    superseded boolean DEFAULT false NOT NULL,
    ts double precision NOT NULL
);
ALTER TABLE run_streams ADD CONSTRAINT run_streams_pkey PRIMARY KEY (run_id, seq);

CREATE TABLE runs (
    run_id text NOT NULL,
    workflow_id text NOT NULL,
    workflow_name text NOT NULL,
    status text NOT NULL,
    input bytea,
    result bytea,
    error bytea,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    closed_at double precision,
    wake_at double precision,
    owner text,
    epoch bigint DEFAULT 0 NOT NULL,
    history_len bigint DEFAULT 0 NOT NULL,
    code_hash text,
    created_seq bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    parent_run_id text,
    parent_op bigint,
    parent_close text,
    deadline_at double precision,
    origin_run_id text,
    queue text DEFAULT 'default'::text NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    concurrency_key text,
    dedup_key text,
    debounce_key text,
    started_at double precision,
    recoveries integer DEFAULT 0 NOT NULL,
    on_trial integer DEFAULT 0 NOT NULL,
    depth integer DEFAULT 0 NOT NULL,
    headers text,
    namespace text DEFAULT 'default'::text NOT NULL,
    waits text
) WITH (fillfactor=70);
ALTER TABLE runs ADD CONSTRAINT runs_pkey PRIMARY KEY (run_id);
CREATE INDEX runs_closed ON runs USING btree (closed_at) WHERE (closed_at IS NOT NULL);
CREATE INDEX runs_created ON runs USING btree (created_at, run_id COLLATE "C");
CREATE INDEX runs_debounce ON runs USING btree (queue, debounce_key) WHERE ((debounce_key IS NOT NULL) AND (status = 'pending'::text));
CREATE UNIQUE INDEX runs_live_dedup ON runs USING btree (queue, dedup_key) WHERE ((dedup_key IS NOT NULL) AND (status = ANY (ARRAY['pending'::text, 'running'::text, 'suspended'::text, 'parked'::text])));
CREATE UNIQUE INDEX runs_live_workflow_id ON runs USING btree (workflow_id) WHERE (status = ANY (ARRAY['pending'::text, 'running'::text, 'suspended'::text, 'parked'::text]));
CREATE INDEX runs_name ON runs USING btree (workflow_name, created_at, run_id COLLATE "C");
CREATE INDEX runs_namespace ON runs USING btree (namespace, created_at, run_id COLLATE "C") WHERE (namespace <> 'default'::text);
CREATE INDEX runs_owned ON runs USING btree (owner) WHERE (status = 'running'::text);
CREATE INDEX runs_parent ON runs USING btree (parent_run_id) WHERE (parent_run_id IS NOT NULL);
CREATE INDEX runs_queue_ready ON runs USING btree (queue, priority DESC, wake_at) WHERE (status = ANY (ARRAY['pending'::text, 'suspended'::text]));
CREATE INDEX runs_queue_running ON runs USING btree (queue, concurrency_key) WHERE (status = 'running'::text);
CREATE INDEX runs_ready ON runs USING btree (wake_at) WHERE (status = ANY (ARRAY['pending'::text, 'suspended'::text]));
CREATE INDEX runs_status ON runs USING btree (status, created_at, run_id COLLATE "C");
CREATE INDEX runs_workflow_id ON runs USING btree (workflow_id, created_at);

CREATE TABLE schedules (
    schedule_id text NOT NULL,
    workflow_name text NOT NULL,
    queue text DEFAULT 'default'::text NOT NULL,
    input bytea NOT NULL,
    cron text,
    every double precision,
    anchor double precision DEFAULT 0 NOT NULL,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    overlap text DEFAULT 'skip'::text NOT NULL,
    catch_up double precision DEFAULT 60 NOT NULL,
    source text DEFAULT 'api'::text NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    note text,
    next_fire_at double precision,
    last_fire_at double precision,
    last_workflow_id text,
    buffered_at double precision,
    fired bigint DEFAULT 0 NOT NULL,
    missed bigint DEFAULT 0 NOT NULL,
    overlap_skipped bigint DEFAULT 0 NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    namespace text DEFAULT 'default'::text NOT NULL
);
ALTER TABLE schedules ADD CONSTRAINT schedules_check CHECK (((cron IS NULL) <> (every IS NULL)));
ALTER TABLE schedules ADD CONSTRAINT schedules_pkey PRIMARY KEY (schedule_id);
CREATE INDEX schedules_buffered ON schedules USING btree (last_workflow_id) WHERE ((buffered_at IS NOT NULL) AND (NOT paused));
CREATE INDEX schedules_due ON schedules USING btree (next_fire_at) WHERE (NOT paused);

CREATE TABLE signal_ids (
    run_id text NOT NULL,
    signal_id text NOT NULL,
    ts double precision NOT NULL
);
ALTER TABLE signal_ids ADD CONSTRAINT signal_ids_pkey PRIMARY KEY (run_id, signal_id);

CREATE TABLE stats_counted (
    run_id text NOT NULL,
    counted_len bigint NOT NULL,
    namespace text NOT NULL,
    workflow_name text NOT NULL,
    status text NOT NULL,
    dbucket bigint NOT NULL,
    erred integer NOT NULL,
    etype text NOT NULL,
    hour bigint NOT NULL
);
ALTER TABLE stats_counted ADD CONSTRAINT stats_counted_pkey PRIMARY KEY (run_id);

CREATE TABLE stats_pending (
    run_id text NOT NULL
);
ALTER TABLE stats_pending ADD CONSTRAINT stats_pending_pkey PRIMARY KEY (run_id);

CREATE TABLE stats_runs (
    namespace text NOT NULL,
    workflow_name text NOT NULL,
    status text NOT NULL,
    dbucket bigint NOT NULL,
    erred integer NOT NULL,
    etype text NOT NULL,
    hour bigint NOT NULL,
    n bigint NOT NULL
);
ALTER TABLE stats_runs ADD CONSTRAINT stats_runs_pkey PRIMARY KEY (namespace, workflow_name, status, dbucket, erred, etype, hour);

CREATE TABLE stats_steps (
    namespace text NOT NULL,
    workflow_name text NOT NULL,
    step text NOT NULL,
    kind text NOT NULL,
    etype text NOT NULL,
    dbucket bigint NOT NULL,
    hour bigint NOT NULL,
    n bigint NOT NULL,
    calls bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost double precision NOT NULL,
    unpriced bigint NOT NULL
);
ALTER TABLE stats_steps ADD CONSTRAINT stats_steps_pkey PRIMARY KEY (namespace, workflow_name, step, kind, etype, dbucket, hour);

CREATE TABLE step_cache (
    namespace text NOT NULL,
    scope text NOT NULL,
    key text NOT NULL,
    step text NOT NULL,
    result bytea NOT NULL,
    run_id text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision
);
ALTER TABLE step_cache ADD CONSTRAINT step_cache_pkey PRIMARY KEY (namespace, scope, key);
CREATE INDEX step_cache_expires ON step_cache USING btree (expires_at) WHERE (expires_at IS NOT NULL);
CREATE INDEX step_cache_step ON step_cache USING btree (namespace, step);

CREATE TABLE tasks (
    task_id text NOT NULL,
    run_id text NOT NULL,
    op bigint NOT NULL,
    attempt bigint NOT NULL,
    step text NOT NULL,
    queue text NOT NULL,
    args bytea,
    info bytea,
    status text NOT NULL,
    owner text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
ALTER TABLE tasks ADD CONSTRAINT tasks_pkey PRIMARY KEY (task_id);
CREATE INDEX tasks_owned ON tasks USING btree (owner) WHERE (status = 'running'::text);
CREATE INDEX tasks_ready ON tasks USING btree (queue, created_at) WHERE (status = 'pending'::text);
CREATE INDEX tasks_run ON tasks USING btree (run_id);

CREATE TABLE updates (
    run_id text NOT NULL,
    update_id text NOT NULL,
    name text NOT NULL,
    status text NOT NULL,
    result bytea,
    error bytea,
    ts double precision NOT NULL
);
ALTER TABLE updates ADD CONSTRAINT updates_pkey PRIMARY KEY (run_id, update_id);

CREATE TABLE workers (
    worker_id text NOT NULL,
    host text NOT NULL,
    pid bigint NOT NULL,
    started_at double precision NOT NULL,
    lease_until double precision NOT NULL,
    queues text
);
ALTER TABLE workers ADD CONSTRAINT workers_pkey PRIMARY KEY (worker_id);

CREATE TABLE writer_commits (
    writer_id text NOT NULL,
    batch bigint NOT NULL,
    fenced boolean DEFAULT false NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL
);
ALTER TABLE writer_commits ADD CONSTRAINT writer_commits_pkey PRIMARY KEY (writer_id, batch);
