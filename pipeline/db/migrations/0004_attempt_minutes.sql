-- The delivery log: attempts per minute by outcome, per endpoint, kept by the sink as it writes
-- attempts (only attempts new to the table count), so GET /v1/stats/deliveries reads at most
-- one row per endpoint, minute and outcome instead of every attempt of the window. The attempts
-- indexes that served the stats go: the hottest table keeps only its primary key.

CREATE TABLE attempt_minutes (
    account_id  text        NOT NULL,
    endpoint_id text        NOT NULL,
    minute      timestamptz NOT NULL,
    outcome     text        NOT NULL,
    attempts    bigint      NOT NULL,
    PRIMARY KEY (account_id, minute, endpoint_id, outcome)
);
CREATE INDEX attempt_minutes_by_endpoint ON attempt_minutes (endpoint_id, minute);

INSERT INTO attempt_minutes (account_id, endpoint_id, minute, outcome, attempts)
SELECT account_id, endpoint_id, date_trunc('minute', at), outcome, count(*)
FROM attempts GROUP BY 1, 2, 3, 4;

DROP INDEX attempts_by_account;
DROP INDEX attempts_by_endpoint;
