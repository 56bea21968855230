-- A message is found by id within its thread (`GET .../messages/{id}`). Message ids are epoch
-- milliseconds, so an index on the id alone takes each batch's new messages at its right edge
-- (a page or two per commit), where the index on (thread_id, id) took each new message on its
-- thread's own page: one more page written per message, in every write transaction. Lookups
-- read the few rows with that id and check the thread. Ids stay unique within a thread by
-- construction (each thread's ids strictly increase; its sequenceIds are the primary key).
DROP INDEX messages_thread_id;
CREATE INDEX messages_id ON messages (id);
