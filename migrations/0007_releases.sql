-- Releases: an image of an app started on its target by a deployment. The
-- deploy stage starts a release, health-checks it, switches the app's route
-- to it and stops the release it replaces; Postgres holds which release
-- should serve each app (the desired state a reconciler brings targets to).
CREATE TABLE releases (
    id              uuid PRIMARY KEY,
    app_id          uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    deployment_id   uuid NOT NULL UNIQUE REFERENCES deployments(id) ON DELETE CASCADE,
    image_ref       text NOT NULL,
    -- Derived from the deployment, so a re-run attempt finds what an
    -- earlier, crashed attempt started.
    container_name  text NOT NULL UNIQUE,
    host_port       integer,
    state           text NOT NULL CHECK (state IN ('starting', 'live', 'stopped', 'failed')),
    -- Where the release answers once live (http://APP.PROJECT.DOMAIN:PORT/).
    url             text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    live_at         timestamptz,
    stopped_at      timestamptz
);
-- At most one release serves an app.
CREATE UNIQUE INDEX releases_one_live_per_app ON releases (app_id) WHERE state = 'live';
CREATE INDEX releases_app_created ON releases (app_id, created_at DESC);
