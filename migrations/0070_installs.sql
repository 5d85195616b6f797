-- One-click installs (issue 15 item 7): a server bought from a cloud
-- account and an app placed on it, deployed from git and checked over
-- HTTP, as one request. The install records what it made and its phase;
-- its status as shown is the phase, or the server's state while the
-- server is being made. Each step is an operation of its own (the server's
-- create, the app's first deployment, a verify deployment, the destroys)
-- and the install moves on in the transaction that ends that operation
-- (`slipway_shared::db::installs::follow`), so no step is lost.
CREATE TABLE installs (
    id                  uuid PRIMARY KEY,
    project_id          uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    server_id           uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    -- NULL once the app is gone (destroyed).
    app_id              uuid REFERENCES apps (id) ON DELETE SET NULL,
    app_name            text NOT NULL,
    environment         text NOT NULL,
    domain              text,
    phase               text NOT NULL CHECK (phase IN ('server', 'deploying', 'verifying', 'completed',
                            'failed', 'destroying', 'destroyed')),
    -- The step that failed, with its operation's code and message.
    failed_step         text CHECK (failed_step IN ('provision', 'configure', 'deploy', 'verify', 'destroy')),
    error_code          text,
    error_message       text,
    server_operation_id uuid REFERENCES deployments (id) ON DELETE SET NULL,
    deploy_id           uuid REFERENCES deployments (id) ON DELETE SET NULL,
    verify_id           uuid REFERENCES deployments (id) ON DELETE SET NULL,
    app_destroy_id      uuid REFERENCES deployments (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    destroyed_at        timestamptz
);
CREATE INDEX installs_project ON installs (project_id, created_at DESC);
-- Each operation's end looks its install up by one of these.
CREATE INDEX installs_server ON installs (server_id);
CREATE INDEX installs_server_operation ON installs (server_operation_id) WHERE server_operation_id IS NOT NULL;
CREATE INDEX installs_app ON installs (app_id) WHERE app_id IS NOT NULL;
CREATE INDEX installs_deploy ON installs (deploy_id) WHERE deploy_id IS NOT NULL;
CREATE INDEX installs_verify ON installs (verify_id) WHERE verify_id IS NOT NULL;
CREATE INDEX installs_app_destroy ON installs (app_destroy_id) WHERE app_destroy_id IS NOT NULL;

-- The verify step: a deployment of its own kind (timeline, logs, attempts).
ALTER TABLE deployments DROP CONSTRAINT deployments_kind_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_kind_check
    CHECK (kind IN ('app', 'probe', 'target_check', 'target_setup', 'server_create', 'server_destroy',
                    'install_verify'));

-- Followers of an install (its SSE stream) hear of every change to it or
-- to its server, on one channel the API listens to once per process.
CREATE FUNCTION installs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slipway_installs', NEW.id::text);
    RETURN NEW;
END $$;
CREATE TRIGGER installs_notify AFTER INSERT OR UPDATE ON installs
    FOR EACH ROW EXECUTE FUNCTION installs_notify();

CREATE FUNCTION installs_follow_servers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state OR NEW.ipv4 IS DISTINCT FROM OLD.ipv4 THEN
        PERFORM pg_notify('slipway_installs', i.id::text) FROM installs i WHERE i.server_id = NEW.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER installs_follow_servers AFTER UPDATE OF state, ipv4 ON servers
    FOR EACH ROW EXECUTE FUNCTION installs_follow_servers();
