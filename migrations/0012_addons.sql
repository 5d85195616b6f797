-- Add-ons of an app: a managed PostgreSQL database (a role and a database
-- on the server of SLIPWAY_ADDON_POSTGRES_URL, its password sealed like the
-- app's secrets) or a named engine volume mounted at a path. The API only
-- records them (`pending`); the provision stage of the app's next
-- deployment creates what is missing and marks them `ready`; the deploy
-- stage links `DATABASE_URL` and the mounts into every release. Deleting an
-- add-on detaches it (data kept) or, with purge, marks it `purging`: the
-- provision stage drops the data and the row.
CREATE TABLE addons (
    id            uuid PRIMARY KEY,
    app_id        uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('postgres', 'volume')),
    name          text NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'ready', 'purging')),
    -- postgres: database and role names, the role's password (sealed).
    db_name       text,
    db_role       text,
    password_sealed bytea,
    -- volume: the engine's volume name and where releases mount it.
    volume_name   text,
    mount_path    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    ready_at      timestamptz,
    UNIQUE (app_id, name),
    CHECK (kind <> 'postgres' OR (db_name IS NOT NULL AND db_role IS NOT NULL
                                  AND password_sealed IS NOT NULL)),
    CHECK (kind <> 'volume' OR (volume_name IS NOT NULL AND mount_path IS NOT NULL))
);
CREATE INDEX addons_app ON addons (app_id);
