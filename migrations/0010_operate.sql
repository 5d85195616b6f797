-- Operating apps: stop/start (a release can be paused), destroy (an app is
-- marked while its containers and route are removed, and its deployments'
-- history outlives it), custom domains, and the health the deploy worker
-- last saw.

-- `paused`: the app was stopped by request; its container is stopped and its
-- route answers 503. It is still the app's current release: `start` runs its
-- image again.
ALTER TABLE releases DROP CONSTRAINT releases_state_check;
ALTER TABLE releases ADD CONSTRAINT releases_state_check
    CHECK (state IN ('starting', 'live', 'paused', 'stopped', 'failed'));
-- At most one current (live or paused) release per app.
CREATE UNIQUE INDEX releases_one_current_per_app ON releases (app_id)
    WHERE state IN ('live', 'paused');
-- Every replica's port (`host_port` is the first's).
ALTER TABLE releases ADD COLUMN host_ports integer[];
-- The HTTPS address of a live release, when the target serves HTTPS.
ALTER TABLE releases ADD COLUMN https_url text;
-- The last health check of the release (at deploy, start and by the
-- deploy worker's monitor).
ALTER TABLE releases ADD COLUMN health_ok boolean;
ALTER TABLE releases ADD COLUMN health_detail text;
ALTER TABLE releases ADD COLUMN health_checked_at timestamptz;

-- Set by DELETE /v1/apps/{app}: no new deployments; the destroy deployment
-- removes what runs on the target, then the row.
ALTER TABLE apps ADD COLUMN destroying_at timestamptz;

-- A destroyed app's deployments (the destroy itself included) stay readable.
ALTER TABLE deployments DROP CONSTRAINT deployments_app_id_fkey;
ALTER TABLE deployments ADD CONSTRAINT deployments_app_id_fkey
    FOREIGN KEY (app_id) REFERENCES apps(id) ON DELETE SET NULL;

-- Custom domains: each host name belongs to one app on the whole platform.
CREATE TABLE app_domains (
    host        text PRIMARY KEY,
    app_id      uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_domains_app ON app_domains (app_id);

-- Runtime logs: what the app's containers print, collected by the deploy
-- worker (`podman logs --timestamps --since CURSOR`), numbered per app so
-- that `?after=SEQ` never skips a line that commits later.
ALTER TABLE apps ADD COLUMN log_seq bigint NOT NULL DEFAULT 0;
CREATE TABLE app_logs (
    app_id     uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    -- When the container printed the line (podman's timestamp).
    at         timestamptz NOT NULL,
    container  text NOT NULL,
    stream     text NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    line       text NOT NULL,
    PRIMARY KEY (app_id, seq)
);
CREATE INDEX app_logs_at ON app_logs (at);
-- How far each container's output was collected.
CREATE TABLE app_log_cursors (
    container  text PRIMARY KEY,
    app_id     uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    last_at    timestamptz NOT NULL
);
