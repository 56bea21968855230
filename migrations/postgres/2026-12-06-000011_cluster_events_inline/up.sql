-- A cluster_events row carries a batch's real-time events (8-16 kB of JSON for a batch of
-- sends) and lives for a relay round or two. Stored out of line (TOAST, since 000007 without
-- compression), each row cost 4-8 chunk rows and their index entries written, then deleted
-- by the relay: 1.6 kB of WAL per message sent in a cluster. Compressed with lz4 (fast enough
-- to cost less than the chunks, unlike pglz) and kept in the row itself up to 8160 bytes, a
-- typical row needs no TOAST at all: 0.9 kB of WAL per message, which is what a replica
-- receives and an archive keeps.
-- PostgreSQL built without lz4 (or older than 14) keeps 000007's uncompressed storage; rows up
-- to 8160 bytes then stay in line all the same (from 11 on; older servers keep all of 000007).
DO $$
BEGIN
    EXECUTE 'ALTER TABLE cluster_events SET (toast_tuple_target = 8160)';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'cluster_events keeps the default TOAST threshold: %', SQLERRM;
END
$$;
DO $$
BEGIN
    EXECUTE 'ALTER TABLE cluster_events ALTER COLUMN body SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE cluster_events ALTER COLUMN body SET STORAGE MAIN';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'cluster_events.body stays uncompressed: %', SQLERRM;
END
$$;
