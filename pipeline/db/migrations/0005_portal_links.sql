-- Partner portal links (issue 19): short-lived, single-account sign-ins to the dashboard, and
-- the audit log of what was done with them. A link's token is kept only as its SHA-256.

CREATE TABLE portal_links (
    link_id      text PRIMARY KEY,
    account_id   text NOT NULL,
    token_sha256 bytea NOT NULL UNIQUE,
    scope        text NOT NULL CHECK (scope IN ('read', 'full')),
    label        text NOT NULL DEFAULT '',         -- who it is for, as its creator put it
    created_by   text NOT NULL,                    -- 'admin' or 'key:<prefix>'
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE INDEX portal_links_by_account ON portal_links (account_id, created_at DESC);

CREATE TABLE audit_log (
    entry_id   bigserial PRIMARY KEY,
    account_id text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,                      -- 'admin', 'key:<prefix>', 'portal:<link id>'
    action     text NOT NULL,                      -- portal_link.created, .opened, .revoked, request
    detail     jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_by_account ON audit_log (account_id, entry_id DESC);
