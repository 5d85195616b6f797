-- Targets: where an app's releases run. `local` is the Slipway host itself
-- (its settings come from the workers' environment); `ssh` is a server with
-- podman reached over SSH with a key stored sealed (AEAD ciphertext, never
-- returned) and the server's host key pinned. An app without a target runs
-- on the embedded local target.
CREATE TABLE targets (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('local', 'ssh')),
    host          text,
    port          integer CHECK (port BETWEEN 1 AND 65535),
    ssh_user      text,
    -- The private key, sealed; its public fingerprint is what the API shows.
    key_sealed    bytea,
    key_fingerprint text,
    known_hosts   text,
    -- Caddy admin address on the target, the apps' listen address there,
    -- the engine's containers.conf and the data folder provisioning makes.
    settings      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name),
    CHECK (kind = 'local' OR (host IS NOT NULL AND port IS NOT NULL AND ssh_user IS NOT NULL
                              AND key_sealed IS NOT NULL AND known_hosts IS NOT NULL))
);

-- NULL: the embedded local target. A target in use cannot be deleted (NO
-- ACTION, not RESTRICT: checked at the end of the statement, so deleting a
-- project, which cascades to its apps and its targets alike, still works).
ALTER TABLE apps ADD COLUMN target_id uuid REFERENCES targets(id);
CREATE INDEX apps_target ON apps (target_id) WHERE target_id IS NOT NULL;

-- A target check is a deployment of its own kind that starts at the
-- provision stage (no build): the provision worker checks and prepares the
-- host, the deploy worker checks the tunnels a deploy uses. Its result and
-- time are that deployment's state, error and finished_at.
ALTER TABLE deployments DROP CONSTRAINT deployments_kind_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_kind_check
    CHECK (kind IN ('app', 'probe', 'target_check'));
ALTER TABLE deployments ADD COLUMN target_id uuid REFERENCES targets(id) ON DELETE CASCADE;
CREATE INDEX deployments_target_checks ON deployments (target_id, created_at DESC)
    WHERE target_id IS NOT NULL;
