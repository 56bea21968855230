-- The dashboard's Usage page (issue 16): text/html messages sent, threads created and
-- identities created per hour (epoch ms of the hour's start, UTC), counted by triggers in the
-- transaction of the insert itself, so the figures are exactly what was committed, survive
-- restarts and deletions, and cost the Usage page one small range read.
-- One row per hour and per connection (`slot` is the backend's pid, unique among live
-- connections): concurrent writers never wait on each other's counter row. Statement-level
-- triggers: a multi-row insert of a write batch updates its counter once.
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
) AS written GROUP BY hour;

CREATE FUNCTION usage_count_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_hours (hour, slot, messages, threads, identities)
    SELECT created_at - created_at % 3600000, pg_backend_pid(), COUNT(*), 0, 0
      FROM usage_new_rows WHERE kind IN ('text', 'html') GROUP BY 1
    ON CONFLICT (hour, slot) DO UPDATE SET messages = usage_hours.messages + EXCLUDED.messages;
    RETURN NULL;
END $$;

CREATE FUNCTION usage_count_threads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_hours (hour, slot, messages, threads, identities)
    SELECT created_at - created_at % 3600000, pg_backend_pid(), 0, COUNT(*), 0
      FROM usage_new_rows GROUP BY 1
    ON CONFLICT (hour, slot) DO UPDATE SET threads = usage_hours.threads + EXCLUDED.threads;
    RETURN NULL;
END $$;

CREATE FUNCTION usage_count_identities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_hours (hour, slot, messages, threads, identities)
    SELECT created_at - created_at % 3600000, pg_backend_pid(), 0, 0, COUNT(*)
      FROM usage_new_rows GROUP BY 1
    ON CONFLICT (hour, slot) DO UPDATE SET identities = usage_hours.identities + EXCLUDED.identities;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_messages AFTER INSERT ON messages
    REFERENCING NEW TABLE AS usage_new_rows
    FOR EACH STATEMENT EXECUTE PROCEDURE usage_count_messages();
CREATE TRIGGER usage_threads AFTER INSERT ON threads
    REFERENCING NEW TABLE AS usage_new_rows
    FOR EACH STATEMENT EXECUTE PROCEDURE usage_count_threads();
CREATE TRIGGER usage_identities AFTER INSERT ON identities
    REFERENCING NEW TABLE AS usage_new_rows
    FOR EACH STATEMENT EXECUTE PROCEDURE usage_count_identities();
