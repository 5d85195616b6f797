-- The target a release was started on (NULL: the local target), so a deploy
-- after the app moved to another target can remove the release it replaced
-- (containers and route) from the target it left. No foreign key: a release
-- row outlives the target's; a cleanup that finds no target says so.
ALTER TABLE releases ADD COLUMN target_id uuid;
