-- The container engine provisioning found on an ssh target (`podman` or
-- `docker`; NULL until a provision stage ran there). The deploy worker
-- drives that one unless the target's settings ask for one by name.
ALTER TABLE targets ADD COLUMN engine text CHECK (engine IN ('podman', 'docker'));
