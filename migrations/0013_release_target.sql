-- The target a release runs on (NULL: the embedded local target), recorded
-- when its deploy starts it. The deploy worker's reconciler, health monitor
-- and log collector reach a release there, also after its app was moved to
-- another target (the move takes effect with the app's next deploy). No
-- foreign key: a target may be deleted once no app uses it, while a release
-- an app left behind there is still recorded; such releases are skipped.
ALTER TABLE releases ADD COLUMN target_id uuid;
-- Releases from before: on their app's target.
UPDATE releases r SET target_id = a.target_id FROM apps a WHERE a.id = r.app_id;
