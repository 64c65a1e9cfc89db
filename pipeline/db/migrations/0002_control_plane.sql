-- The control plane: accounts, their API keys and endpoints, written by the API in transactions
-- (pipeline/controlplane/). Every change inserts its outbox row in the same transaction; the
-- outbox relay produces those rows, in order, to the compacted accounts and endpoints topics the
-- workers read, then marks them sent. Times are unix milliseconds, as on the topics.

CREATE TABLE accounts (
    id         text    PRIMARY KEY,
    name       text    NOT NULL,
    created_at bigint  NOT NULL,
    version    integer NOT NULL DEFAULT 1  -- + 1 with every change (its keys' too)
);

-- One row per key, so two keys created at once are two INSERTs: neither can drop the other.
CREATE TABLE api_keys (
    prefix     text   PRIMARY KEY,               -- vk_ + 8 characters: names the key
    account_id text   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sha256     text   NOT NULL,                  -- hex SHA-256 of the key; never the key itself
    created_at bigint NOT NULL,
    revoked_at bigint
);
CREATE INDEX api_keys_by_account ON api_keys (account_id, created_at);

-- The fields of pipeline.endpoints.model.Endpoint, one column each, and the ETag's version.
CREATE TABLE endpoints (
    id               text             PRIMARY KEY,
    account_id       text             NOT NULL,  -- not a foreign key: older endpoints on the
                                                  -- topic may name accounts made elsewhere
    url              text             NOT NULL,
    event_types      text[],                     -- null: every type
    secret           text             NOT NULL,
    previous_secrets jsonb            NOT NULL DEFAULT '[]',  -- [[secret, expires_at ms], ...]
    enabled          boolean          NOT NULL DEFAULT true,
    disabled_reason  text,
    description      text             NOT NULL DEFAULT '',
    rate_limit       double precision,
    ordered          boolean          NOT NULL DEFAULT false,
    filter           text,
    headers          jsonb            NOT NULL DEFAULT '[]',  -- [[name, value], ...] in order
    listen           boolean          NOT NULL DEFAULT false,
    created_at       bigint           NOT NULL,
    updated_at       bigint           NOT NULL,
    version          integer          NOT NULL DEFAULT 1
);
CREATE INDEX endpoints_by_account ON endpoints (account_id, id);

-- What the relay still has to produce: the record exactly as the compacted topic holds it.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,  -- the pipeline's topic name, without the prefix
    key        text        NOT NULL,
    value      bytea,                 -- null: a tombstone (a deleted endpoint)
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- The one-time import of what the compacted topics held before this table existed.
CREATE TABLE control_plane_import (
    done        boolean     PRIMARY KEY DEFAULT true CHECK (done),  -- one row at most
    accounts    integer     NOT NULL,
    endpoints   integer     NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
