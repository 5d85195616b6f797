-- Server setup as a job: a `target_setup` deployment starts at the provision
-- stage like a target check, installs what the server lacks (the engine,
-- Caddy), makes the deploy user and the data folder, then checks the target
-- as that user. What it was asked for (the deploy user's name, an apt source)
-- is kept with it, so a retried job does the same.
ALTER TABLE deployments DROP CONSTRAINT deployments_kind_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_kind_check
    CHECK (kind IN ('app', 'probe', 'target_check', 'target_setup'));
ALTER TABLE deployments ADD COLUMN setup jsonb;
