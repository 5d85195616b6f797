-- A follower's resume point is a second plus how many lines of that second
-- are stored: podman's API stamps log lines to the second (its CLI, which
-- the ssh targets' collector still uses, to the nanosecond; there the
-- count stays 0).
ALTER TABLE app_log_cursors ADD COLUMN lines_at_last integer NOT NULL DEFAULT 0;
