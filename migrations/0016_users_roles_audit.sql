-- People, their roles in projects, browser sessions, revocable project
-- tokens with roles, and the audit log.

-- An email is unique whatever its case; the password is an argon2id PHC
-- string (NULL until an invited person sets one).
CREATE TABLE users (
    id                   uuid PRIMARY KEY,
    email                text NOT NULL,
    password_hash        text,
    is_admin             boolean NOT NULL DEFAULT false,
    disabled_at          timestamptz,
    password_changed_at  timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE project_members (
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

-- One-use links: only the SHA-256 of the secret in the link is kept.
CREATE TABLE invitations (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    email         text NOT NULL,
    role          text NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    token_sha256  bytea NOT NULL UNIQUE,
    invited_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    accepted_at   timestamptz,
    revoked_at    timestamptz
);
-- At most one open invitation per person and project.
CREATE UNIQUE INDEX invitations_open ON invitations (project_id, lower(email))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE password_resets (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_sha256  bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

-- A browser session: the cookie holds the secret, the row its SHA-256 and
-- the CSRF token that state-changing requests must echo in a header.
CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_sha256  bytea NOT NULL UNIQUE,
    csrf_token    text NOT NULL,
    address       text,
    user_agent    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Tokens made before roles existed could do everything in their project:
-- they become owners, so nothing that worked stops working. New tokens
-- name their role.
ALTER TABLE api_tokens
    ADD COLUMN role text NOT NULL DEFAULT 'owner' CHECK (role IN ('owner', 'member', 'viewer')),
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN revoked_at timestamptz,
    ADD COLUMN created_by text;
ALTER TABLE api_tokens ALTER COLUMN role DROP DEFAULT;

-- Failed sign-ins per key (`address:IP` or `account:email`) and fixed
-- window: several API processes count in the same rows.
CREATE TABLE signin_failures (
    key           text NOT NULL,
    window_start  timestamptz NOT NULL,
    failures      integer NOT NULL,
    PRIMARY KEY (key, window_start)
);

-- Who did what: one row per state-changing call, allowed or refused.
-- No foreign keys: a row outlives the project, user or token it names.
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_kind      text NOT NULL CHECK (actor_kind IN ('admin_token', 'user', 'token', 'webhook', 'anonymous')),
    actor_id        uuid,
    actor           text NOT NULL,
    project_id      uuid,
    action          text NOT NULL,
    method          text NOT NULL,
    resource        text NOT NULL,
    status          smallint NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'failed')),
    source_address  text
);
CREATE INDEX audit_log_project ON audit_log (project_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only: no update ever; a delete only by the retention pruning,
-- which sets `slipway.audit_prune` in its own transaction.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('slipway.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
