-- What the build stage records on a deployment: the image reference it
-- pushed (repository@digest), the plan it followed, and the build key (a
-- hash of the source revision and everything else that shapes the image),
-- so a later deployment with the same key reuses the image without building.
ALTER TABLE deployments ADD COLUMN image_ref text;
ALTER TABLE deployments ADD COLUMN build_plan jsonb;
ALTER TABLE deployments ADD COLUMN build_key text;
CREATE INDEX deployments_app_build_key ON deployments (app_id, build_key, created_at DESC)
    WHERE image_digest IS NOT NULL;
