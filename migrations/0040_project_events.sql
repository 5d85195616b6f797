-- Changes the dashboard's event stream (GET /v1/events) shows: deployment
-- state changes, and release state or health changes of an app. Written by
-- triggers in the transaction that makes the change, so no writer needs to
-- know about the stream and no NOTIFY is sent per change (a NOTIFY takes a
-- cluster-wide lock at commit and would serialise every state change).
--
-- `xid` is the writing transaction's id. Readers only hand out rows whose
-- xid is below the xmin of their snapshot: every transaction below it has
-- ended, so no row can later appear below a reader's cursor (a sequence id
-- is allocated before commit, so a later id can commit first: not a cursor).
CREATE TABLE project_events (
    id             bigserial PRIMARY KEY,
    xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    project_id     uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('deployment', 'app')),
    deployment_id  uuid,
    app_id         uuid,
    data           jsonb NOT NULL,
    at             timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX project_events_xid ON project_events (xid, id);
CREATE INDEX project_events_at ON project_events (at);

CREATE FUNCTION project_events_deployment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO project_events (project_id, kind, deployment_id, app_id, data)
    VALUES (NEW.project_id, 'deployment', NEW.id, NEW.app_id, jsonb_build_object(
        'deployment', NEW.id,
        'app', (SELECT name FROM apps WHERE id = NEW.app_id),
        'kind', NEW.kind,
        'state', NEW.state,
        'from', CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END,
        'error_code', NEW.error_code,
        'at', clock_timestamp()));
    RETURN NULL;
END $$;

CREATE TRIGGER deployments_created_event AFTER INSERT ON deployments
    FOR EACH ROW EXECUTE FUNCTION project_events_deployment();
CREATE TRIGGER deployments_state_event AFTER UPDATE OF state ON deployments
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION project_events_deployment();

-- The monitor rewrites `health_checked_at` at every check: only a change of
-- state or of the health result is an event.
CREATE FUNCTION project_events_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO project_events (project_id, kind, deployment_id, app_id, data)
    SELECT a.project_id, 'app', NEW.deployment_id, a.id, jsonb_build_object(
        'app', a.name,
        'release', NEW.id,
        'deployment', NEW.deployment_id,
        'release_state', NEW.state,
        'health', CASE WHEN NEW.health_checked_at IS NULL THEN NULL ELSE jsonb_build_object(
            'ok', NEW.health_ok, 'detail', NEW.health_detail, 'checked_at', NEW.health_checked_at) END,
        'at', clock_timestamp())
    FROM apps a WHERE a.id = NEW.app_id;
    RETURN NULL;
END $$;

CREATE TRIGGER releases_created_event AFTER INSERT ON releases
    FOR EACH ROW EXECUTE FUNCTION project_events_release();
CREATE TRIGGER releases_changed_event AFTER UPDATE OF state, health_ok ON releases
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.health_ok IS DISTINCT FROM NEW.health_ok)
    EXECUTE FUNCTION project_events_release();
