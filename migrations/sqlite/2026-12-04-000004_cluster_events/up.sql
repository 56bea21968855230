-- Cluster mode is PostgreSQL only; the table exists here too so that both backends share one
-- schema (src/store/schema.rs).
CREATE TABLE cluster_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    recipients TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
