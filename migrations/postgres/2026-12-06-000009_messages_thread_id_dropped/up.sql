-- Replaced by messages_id (see the previous migration); dropped without blocking writers.
DROP INDEX CONCURRENTLY IF EXISTS messages_thread_id;
