DROP TABLE webhook_deliveries;
DROP TABLE event_subscriptions;
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    subject    TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
