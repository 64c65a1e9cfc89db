-- The delivery log: each delivery's status kept on its row (set by the sink from its latest
-- attempt), so GET /v1/deliveries?status=... walks an index instead of every delivery.
-- (0002 is the control plane's; the runner applies whichever versions a database lacks.)

ALTER TABLE deliveries
    ADD COLUMN status text NOT NULL DEFAULT 'pending',  -- pending, retrying, delivered, failed
    ADD COLUMN last_attempt_at timestamptz;              -- the attempt the status comes from

UPDATE deliveries d
SET status = CASE WHEN l.outcome = 'delivered' THEN 'delivered'
                  WHEN l.outcome IN ('dead_lettered', 'endpoint_disabled', 'endpoint_deleted')
                  THEN 'failed' ELSE 'retrying' END,
    last_attempt_at = l.at
FROM (SELECT DISTINCT ON (delivery_id) delivery_id, at, outcome
      FROM attempts ORDER BY delivery_id, at DESC, attempt DESC) l
WHERE l.delivery_id = d.delivery_id;

CREATE INDEX deliveries_by_status ON deliveries (account_id, status, created_at DESC, delivery_id DESC);
