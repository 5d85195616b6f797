-- Server images: a snapshot, at the provider, of a server Slipway has just
-- set up (packages, deploy user, data folder; nothing of any app), saved
-- once per account, region, size, base image and setup recipe when the
-- account asks for it, so its later servers start set up. An image bills
-- (storage at the provider) until it is deleted: it is listed, deletable,
-- found by its labels, and an account holding one cannot be deleted.
ALTER TABLE cloud_accounts ADD COLUMN server_images boolean NOT NULL DEFAULT false;

CREATE TABLE server_images (
    id                   uuid PRIMARY KEY,
    project_id           uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    account_id           uuid NOT NULL REFERENCES cloud_accounts (id) ON DELETE CASCADE,
    region               text NOT NULL,
    size                 text NOT NULL,
    -- The provider image the source server was created from.
    base_image           text NOT NULL,
    -- Setup's recipe when it was saved: one made by another recipe is not used.
    recipe               text NOT NULL,
    source_server_id     uuid REFERENCES servers (id) ON DELETE SET NULL,
    -- The key Slipway used on the source server (authorized in the image):
    -- a server made from it removes it, keeping only its own.
    source_public_key    text NOT NULL,
    state                text NOT NULL CHECK (state IN ('saving', 'available', 'failed', 'deleted')),
    provider_id          text,
    size_gb              double precision,
    monthly_cost_eur_e4  bigint CHECK (monthly_cost_eur_e4 >= 0),
    error                text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- One image in the making or in use per kind of server.
CREATE UNIQUE INDEX server_images_one ON server_images (account_id, region, size, base_image, recipe)
    WHERE state IN ('saving', 'available');
CREATE INDEX server_images_project ON server_images (project_id) WHERE state <> 'deleted';

ALTER TABLE servers ADD COLUMN server_image_id uuid REFERENCES server_images (id) ON DELETE SET NULL;
