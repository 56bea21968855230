-- A cluster_events row lives for a relay round or two: compressing its body (pglz, on every
-- row over 2 kB) cost more CPU than the bytes it saved.
ALTER TABLE cluster_events ALTER COLUMN body SET STORAGE EXTERNAL;
