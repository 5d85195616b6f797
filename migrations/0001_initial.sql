-- Slipway's schema: the system of record for projects, apps, deployments,
-- their jobs, logs, the outbox and dead jobs. Migrations are the only place
-- the schema changes.

CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tokens are stored as SHA-256 of the random secret: a slow password hash
-- would put every request over its latency budget, and the secret has 256
-- bits of entropy so a fast hash is safe.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          text NOT NULL,
    token_sha256  bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE apps (
    id                uuid PRIMARY KEY,
    project_id        uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name              text NOT NULL,
    git_url           text,
    git_ref           text,
    build_settings    jsonb NOT NULL DEFAULT '{}',
    runtime_settings  jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- Env vars per app; secret values are kept only as AEAD ciphertext.
CREATE TABLE app_env_vars (
    app_id        uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key           text NOT NULL,
    secret        boolean NOT NULL DEFAULT false,
    value_plain   text,
    value_sealed  bytea,
    PRIMARY KEY (app_id, key),
    CHECK ((secret AND value_sealed IS NOT NULL AND value_plain IS NULL)
        OR (NOT secret AND value_plain IS NOT NULL AND value_sealed IS NULL))
);

CREATE TABLE deployments (
    id              uuid PRIMARY KEY,
    project_id      uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    app_id          uuid REFERENCES apps(id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('app', 'probe')),
    state           text NOT NULL,
    -- true once its first job is in the outbox; a queued deployment that is
    -- not dispatched is held behind the app's running one.
    dispatched      boolean NOT NULL DEFAULT false,
    source          jsonb NOT NULL DEFAULT '{}',
    probe           jsonb,
    resolved_commit text,
    image_digest    text,
    error_code      text,
    error_message   text,
    trace_id        text NOT NULL,
    log_seq         bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX deployments_app_created ON deployments (app_id, created_at DESC);
CREATE INDEX deployments_project_created ON deployments (project_id, created_at DESC);
CREATE INDEX deployments_app_active ON deployments (app_id)
    WHERE state NOT IN ('live', 'failed', 'cancelled', 'superseded');

CREATE TABLE deployment_events (
    id             bigserial PRIMARY KEY,
    deployment_id  uuid NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    from_state     text,
    to_state       text NOT NULL,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    detail         text
);
CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, id);

-- One row per stage of a deployment. The lease (token, worker, heartbeat)
-- fences every write a worker makes: a stale or duplicate delivery finds a
-- token that no longer matches and changes nothing.
CREATE TABLE jobs (
    id             uuid PRIMARY KEY,
    deployment_id  uuid NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    stage          text NOT NULL,
    kind           text NOT NULL,
    state          text NOT NULL CHECK (state IN ('queued', 'running', 'retry_wait', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts       integer NOT NULL DEFAULT 0,
    max_attempts   integer NOT NULL,
    lease_token    bigint NOT NULL DEFAULT 0,
    lease_worker   text,
    heartbeat_at   timestamptz,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    UNIQUE (deployment_id, stage)
);
CREATE INDEX jobs_running_heartbeat ON jobs (heartbeat_at) WHERE state = 'running';

CREATE TABLE job_attempts (
    job_id        uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    lease_token   bigint NOT NULL,
    worker        text NOT NULL,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    outcome       text,
    error         text,
    PRIMARY KEY (job_id, lease_token)
);

-- Log lines; seq is allocated per deployment from deployments.log_seq under
-- that row's lock, so numbers become visible in order and never fill a gap.
CREATE TABLE deployment_logs (
    deployment_id  uuid NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    seq            bigint NOT NULL,
    at             timestamptz NOT NULL,
    stage          text NOT NULL,
    stream         text NOT NULL,
    attempt        integer NOT NULL,
    line           text NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
CREATE INDEX deployment_logs_at ON deployment_logs (at);

-- Messages to publish, written in the transaction that causes them.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    exchange     text NOT NULL,
    routing_key  text NOT NULL,
    payload      jsonb NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slipway_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Every message that reached a dead-letter queue, with its reason.
CREATE TABLE dead_jobs (
    id             uuid PRIMARY KEY,
    -- The AMQP message id; a message dead-lettered twice is recorded once.
    message_id     text NOT NULL UNIQUE,
    job_id         uuid REFERENCES jobs(id) ON DELETE SET NULL,
    deployment_id  uuid REFERENCES deployments(id) ON DELETE CASCADE,
    project_id     uuid REFERENCES projects(id) ON DELETE CASCADE,
    stage          text NOT NULL,
    queue          text NOT NULL,
    reason         text NOT NULL,
    payload        text NOT NULL,
    dead_at        timestamptz NOT NULL DEFAULT now(),
    redriven_at    timestamptz
);
CREATE INDEX dead_jobs_project ON dead_jobs (project_id, dead_at DESC);

-- The probe job's effect: one row per job and fencing token, so a duplicate
-- effect shows as a second row.
CREATE TABLE probe_effects (
    job_id         uuid NOT NULL,
    lease_token    bigint NOT NULL,
    deployment_id  uuid NOT NULL,
    stage          text NOT NULL,
    worker         text NOT NULL,
    child_pid      integer NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, lease_token)
);
