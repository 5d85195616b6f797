-- Sources beyond a public git URL: private-repository credentials, push
-- webhook secrets, and uploaded archives ("versions").

-- One git credential per app (a token or a deploy key). `sealed` is AEAD
-- ciphertext of a JSON document; only the kind is readable.
CREATE TABLE app_git_credentials (
    app_id      uuid PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('token', 'ssh_key')),
    sealed      bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The secret push webhooks of an app are verified with, sealed.
CREATE TABLE app_webhook_secrets (
    app_id      uuid PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Deliveries that created a deployment, so a provider's redelivery of the
-- same event does not deploy twice.
CREATE TABLE webhook_deliveries (
    app_id         uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    provider       text NOT NULL,
    delivery_id    text NOT NULL,
    deployment_id  uuid NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, provider, delivery_id)
);

-- Uploaded archives, content-addressed: the same bytes are stored once,
-- however many versions name them. Kept in Postgres because build workers
-- may run on other hosts than the API.
CREATE TABLE source_blobs (
    sha256      text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size        bigint NOT NULL,
    bytes       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The bytes are already compressed: skip TOAST's compression attempt.
ALTER TABLE source_blobs ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE TABLE app_versions (
    id              uuid PRIMARY KEY,
    app_id          uuid NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    sha256          text NOT NULL REFERENCES source_blobs(sha256),
    format          text NOT NULL CHECK (format IN ('tar.gz', 'zip')),
    size            bigint NOT NULL,
    entries         bigint NOT NULL,
    files           bigint NOT NULL,
    unpacked_bytes  bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_versions_app ON app_versions (app_id, id DESC);
CREATE INDEX app_versions_sha256 ON app_versions (sha256);
