-- The fleet metrics (`shared/src/metrics/fleet.rs`) count the waiting jobs
-- per stage and find the oldest on every scrape: through this index they
-- read only the waiting jobs, not every job the table ever held.
CREATE INDEX jobs_waiting ON jobs (stage, state) WHERE state IN ('queued', 'retry_wait');
