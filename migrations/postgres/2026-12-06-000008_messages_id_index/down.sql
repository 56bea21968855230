DROP INDEX messages_id;
CREATE UNIQUE INDEX messages_thread_id ON messages (thread_id, id);
