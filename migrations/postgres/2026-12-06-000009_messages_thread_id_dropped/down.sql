CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS messages_thread_id ON messages (thread_id, id);
