-- Cluster mode: every change of a thread's membership (add, remove, delete) moves this on, so
-- a node whose cached membership is older finds out under the thread row's lock.
ALTER TABLE threads ADD COLUMN members_version BIGINT NOT NULL DEFAULT 0;
