-- The delivery log: what the log sink (pipeline/deliverylog/) writes from the deliveries and
-- attempts topics, for the API and the dashboard. Both tables are partitioned by day; the sink
-- creates the partitions ahead and drops whole ones past VELOURCITY_HISTORY_RETENTION_DAYS.
-- (0002 is the control plane's.)

CREATE TABLE deliveries (
    delivery_id text        NOT NULL,
    created_at  timestamptz NOT NULL,  -- Kafka timestamp of the first delivery record seen
    account_id  text        NOT NULL,
    endpoint_id text        NOT NULL,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    event_time  bigint      NOT NULL,  -- unix ms
    body        text        NOT NULL,  -- the exact JSON body sent
    PRIMARY KEY (delivery_id, created_at)
) PARTITION BY RANGE (created_at);

-- GET /v1/deliveries: newest first per account, or per endpoint; the cursor is the last
-- (created_at, delivery_id) of the page before.
CREATE INDEX deliveries_by_account ON deliveries (account_id, created_at DESC, delivery_id DESC);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, created_at DESC, delivery_id DESC);

CREATE TABLE attempts (
    delivery_id      text             NOT NULL,
    at               timestamptz      NOT NULL,  -- when the attempt started
    attempt          integer          NOT NULL,
    account_id       text             NOT NULL,
    endpoint_id      text             NOT NULL,
    event_id         text             NOT NULL,
    event_type       text             NOT NULL,
    status           integer,                    -- HTTP status; null when no response came
    error            text,
    latency_ms       double precision NOT NULL,
    response_excerpt text             NOT NULL,
    outcome          text             NOT NULL,
    next_attempt_at  timestamptz,
    PRIMARY KEY (delivery_id, at, attempt)     -- also a delivery's attempts in order
) PARTITION BY RANGE (at);

-- GET /v1/stats/deliveries: attempts per minute by outcome, per account or per endpoint.
CREATE INDEX attempts_by_account ON attempts (account_id, at) INCLUDE (outcome);
CREATE INDEX attempts_by_endpoint ON attempts (endpoint_id, at) INCLUDE (outcome);
