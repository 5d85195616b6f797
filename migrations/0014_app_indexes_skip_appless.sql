-- Deployments of no app (probes, target checks) never match a query on
-- app_id, yet every version of their rows (a deployment's row is rewritten
-- at each state change) added an entry with a NULL key to both app indexes.
-- Partial indexes skip them; every query on these indexes has
-- `app_id = $1`, which implies `app_id IS NOT NULL`, so the planner keeps
-- using them.
DROP INDEX deployments_app_created;
CREATE INDEX deployments_app_created ON deployments (app_id, created_at DESC)
    WHERE app_id IS NOT NULL;
DROP INDEX deployments_app_active;
CREATE INDEX deployments_app_active ON deployments (app_id)
    WHERE app_id IS NOT NULL AND state NOT IN ('live', 'failed', 'cancelled', 'superseded');
