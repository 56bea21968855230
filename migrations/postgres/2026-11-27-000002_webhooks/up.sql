-- Webhooks (contract §7): subscriptions, and the outbox of deliveries. The unused one-row-per-
-- event outbox of the first migration is replaced by one row per (event, subscription), written
-- in the transaction of the change it describes and then updated by the dispatcher.
DROP TABLE outbox;

CREATE TABLE event_subscriptions (
    key                TEXT PRIMARY KEY,     -- the name in lower case
    name               TEXT NOT NULL,        -- as first given
    endpoint_url       TEXT NOT NULL,
    event_types        TEXT NOT NULL,        -- JSON array; [] means all
    delivery_schema    TEXT NOT NULL,
    secret             TEXT,
    old_secret         TEXT,
    old_secret_until   BIGINT,
    max_attempts       INTEGER NOT NULL,
    ttl_minutes        INTEGER NOT NULL,
    provisioning_state TEXT NOT NULL,
    status             TEXT NOT NULL,
    validation_code    TEXT,
    validation_expires BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    seq BIGSERIAL PRIMARY KEY,
    subscription       TEXT NOT NULL,
    event_id           TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    subject            TEXT NOT NULL,
    data               TEXT NOT NULL,
    event_time         BIGINT NOT NULL,
    status             TEXT NOT NULL,
    attempts           INTEGER NOT NULL,
    next_attempt_at    BIGINT,
    last_attempt_at    BIGINT,
    last_status_code   INTEGER,
    last_latency_ms    BIGINT,
    dead_letter_reason TEXT,
    created_at         BIGINT NOT NULL,
    UNIQUE (subscription, event_id)
);
-- The dispatcher's scan: a subscription's due rows in time order.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (subscription, next_attempt_at);
-- The backlog gauges: every waiting row.
CREATE INDEX webhook_deliveries_waiting ON webhook_deliveries (next_attempt_at);
-- The delivery log: a subscription's rows, newest first.
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription, seq);
