-- Servers Slipway buys from a cloud account (issue 15 item 6). A server's
-- create and destroy are deployments of their own kinds (`server_create`,
-- `server_destroy`) that start at the provision stage, so they have a
-- timeline, logs, attempts and cancel like any deployment. The provider's
-- id is written in a transaction of its own as soon as the provider
-- answers, so a re-run adopts the server rather than buying another.
CREATE TABLE servers (
    id                   uuid PRIMARY KEY,
    project_id           uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- The API refuses to delete an account while its servers are not
    -- destroyed (409 account_in_use); destroyed ones go with it.
    account_id           uuid NOT NULL REFERENCES cloud_accounts (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    provider             text NOT NULL,
    region               text NOT NULL,
    size                 text NOT NULL,
    image                text NOT NULL,
    environment          text,
    state                text NOT NULL CHECK (state IN ('pending', 'provisioning', 'configuring',
                             'ready', 'failed', 'destroying', 'destroyed')),
    monthly_cost_eur_e4  bigint NOT NULL CHECK (monthly_cost_eur_e4 >= 0),
    provider_id          text,
    key_provider_id      text,
    firewall_provider_id text,
    ipv4                 text,
    ipv6                 text,
    -- The server's SSH host key (its public half is pinned) and Slipway's
    -- client key, sealed; both made by the create job before it buys anything.
    host_key_sealed      bytea,
    host_public_key      text,
    client_key_sealed    bytea,
    target_id            uuid REFERENCES targets (id) ON DELETE SET NULL,
    error                text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    destroyed_at         timestamptz
);
-- A name is the project's while its server exists.
CREATE UNIQUE INDEX servers_live_name ON servers (project_id, name) WHERE state <> 'destroyed';
CREATE INDEX servers_account ON servers (account_id) WHERE state <> 'destroyed';

ALTER TABLE deployments DROP CONSTRAINT deployments_kind_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_kind_check
    CHECK (kind IN ('app', 'probe', 'target_check', 'target_setup', 'server_create', 'server_destroy'));
ALTER TABLE deployments ADD COLUMN server_id uuid REFERENCES servers (id) ON DELETE CASCADE;
CREATE INDEX deployments_server ON deployments (server_id) WHERE server_id IS NOT NULL;

-- A server's end states follow its operation's, in the transaction that
-- ends the operation: a create that goes live makes the server ready, one
-- that fails or is cancelled makes it failed (unless a destroy has taken
-- over); a destroy that goes live makes it destroyed.
CREATE FUNCTION servers_follow_operations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The error may be written by a later statement than the state.
    IF NEW.server_id IS NULL OR (NEW.state = OLD.state
                                 AND NEW.error_message IS NOT DISTINCT FROM OLD.error_message) THEN
        RETURN NEW;
    END IF;
    IF NEW.kind = 'server_create' AND NEW.state = 'live' THEN
        UPDATE servers SET state = 'ready', error = NULL, updated_at = now()
        WHERE id = NEW.server_id AND state IN ('pending', 'provisioning', 'configuring');
    ELSIF NEW.kind = 'server_create' AND NEW.state IN ('failed', 'cancelled') THEN
        UPDATE servers SET state = 'failed', updated_at = now(),
               error = COALESCE(NEW.error_code || ': ' || NEW.error_message, 'the create was ' || NEW.state)
        WHERE id = NEW.server_id AND state IN ('pending', 'provisioning', 'configuring', 'ready', 'failed');
    ELSIF NEW.kind = 'server_destroy' AND NEW.state = 'live' THEN
        UPDATE servers SET state = 'destroyed', destroyed_at = now(), updated_at = now()
        WHERE id = NEW.server_id;
    ELSIF NEW.kind = 'server_destroy' AND NEW.state IN ('failed', 'cancelled') THEN
        UPDATE servers SET state = 'failed', updated_at = now(),
               error = COALESCE(NEW.error_code || ': ' || NEW.error_message, 'the destroy was ' || NEW.state)
        WHERE id = NEW.server_id AND state IN ('destroying', 'failed');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER servers_follow_operations AFTER UPDATE OF state, error_message ON deployments
    FOR EACH ROW EXECUTE FUNCTION servers_follow_operations();
