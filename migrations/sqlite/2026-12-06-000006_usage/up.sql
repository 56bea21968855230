-- The dashboard's Usage page (issue 16): text/html messages sent, threads created and
-- identities created per hour (epoch ms of the hour's start, UTC), counted in the transaction
-- of the insert itself, so the figures are exactly what was committed, survive restarts and
-- deletions, and cost the Usage page one small range read.
-- Threads and identities are counted by the triggers below. Messages are counted by the
-- writer, one statement per batch and hour (src/store/appends.rs, where every text/html
-- message is inserted): a per-row trigger here cost 8 % of the send rate.
-- `slot` is 0 here (SQLite has one writer); PostgreSQL keeps one row per connection.
CREATE TABLE usage_hours (
    hour       BIGINT NOT NULL,
    slot       BIGINT NOT NULL,
    messages   BIGINT NOT NULL,
    threads    BIGINT NOT NULL,
    identities BIGINT NOT NULL,
    PRIMARY KEY (hour, slot)
);

-- what was written before this migration
INSERT INTO usage_hours (hour, slot, messages, threads, identities)
SELECT hour, 0, SUM(m), SUM(t), SUM(i) FROM (
    SELECT created_at - created_at % 3600000 AS hour, 1 AS m, 0 AS t, 0 AS i
      FROM messages WHERE kind IN ('text', 'html')
    UNION ALL
    SELECT created_at - created_at % 3600000, 0, 1, 0 FROM threads
    UNION ALL
    SELECT created_at - created_at % 3600000, 0, 0, 1 FROM identities
) GROUP BY hour;

CREATE TRIGGER usage_threads AFTER INSERT ON threads
BEGIN
    INSERT INTO usage_hours (hour, slot, messages, threads, identities)
    VALUES (NEW.created_at - NEW.created_at % 3600000, 0, 0, 1, 0)
    ON CONFLICT (hour, slot) DO UPDATE SET threads = threads + 1;
END;

CREATE TRIGGER usage_identities AFTER INSERT ON identities
BEGIN
    INSERT INTO usage_hours (hour, slot, messages, threads, identities)
    VALUES (NEW.created_at - NEW.created_at % 3600000, 0, 0, 0, 1)
    ON CONFLICT (hour, slot) DO UPDATE SET identities = identities + 1;
END;
