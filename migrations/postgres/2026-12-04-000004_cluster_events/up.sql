-- Cluster mode: the real-time events of each commit, written in its transaction; the relay
-- publishes them to JetStream in id order and deletes them (see src/cluster/events.rs).
CREATE TABLE cluster_events (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    -- JSON array of user ids
    recipients TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
