DROP TABLE outbox;
DROP TABLE idempotency;
DROP TABLE read_receipts;
DROP TABLE messages;
DROP TABLE participants;
DROP TABLE threads;
DROP TABLE identities;
DROP TABLE meta;
