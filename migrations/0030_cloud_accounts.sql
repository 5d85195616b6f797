-- Cloud accounts: a project's login at a provider, its secret sealed
-- (the API's SecretBox, never shown), its endpoint checked against the
-- outbound policy when set. Servers made with an account will reference
-- it (`servers.account_id`, issue 15 item 6); deleting an account they use
-- is refused.
CREATE TABLE cloud_accounts (
    id                 uuid PRIMARY KEY,
    project_id         uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    provider           text NOT NULL CHECK (provider IN
                           ('hetzner', 'scaleway', 'openstack', 'exoscale', 'contabo', 'lightsail')),
    name               text NOT NULL,
    endpoint           text,
    credentials_kind   text NOT NULL,
    credentials_sealed bytea NOT NULL,
    region             text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- A project's spending caps; no row means the defaults (3 servers, 50 EUR
-- a month), a NULL column means no cap of that kind. Money is kept in
-- ten-thousandths of a euro, as the price arithmetic counts it.
CREATE TABLE cloud_caps (
    project_id          uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    max_servers         integer CHECK (max_servers >= 0),
    max_monthly_eur_e4  bigint CHECK (max_monthly_eur_e4 >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
