-- Times are epoch milliseconds (BIGINT) on both backends; see src/store/mod.rs.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE identities (
    id                TEXT PRIMARY KEY NOT NULL, -- full raw id: 8:acs:<resourceId>_<uuid>
    created_at        BIGINT NOT NULL,
    deleted_at        BIGINT,
    tokens_revoked_at BIGINT                     -- epoch SECONDS; tokens with iat <= this are refused
);

CREATE TABLE threads (
    id              TEXT PRIMARY KEY NOT NULL,
    topic           TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    deleted_at      BIGINT,
    metadata        TEXT NOT NULL,   -- JSON object of string -> string
    retention       TEXT,            -- JSON ChatRetentionPolicy, NULL until set
    delete_after    BIGINT,          -- when the retention sweeper deletes the thread
    last_seq        BIGINT NOT NULL, -- last sequenceId handed out (allocated in the write transaction)
    last_message_id BIGINT NOT NULL, -- last message id (epoch ms, strictly increasing)
    last_message_at BIGINT NOT NULL  -- lastMessageReceivedOn (system messages included)
);
CREATE INDEX threads_delete_after ON threads (delete_after);

CREATE TABLE participants (
    thread_id          TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    display_name       TEXT,
    metadata           TEXT NOT NULL,
    share_history_time BIGINT NOT NULL,
    added_at           BIGINT NOT NULL,
    added_seq          BIGINT NOT NULL, -- sequenceId of the participantAdded message: "order added"
    add_index          INTEGER NOT NULL, -- position within that add request
    removed_at         BIGINT,          -- NULL while current
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX participants_user ON participants (user_id);

CREATE TABLE messages (
    thread_id           TEXT NOT NULL,
    seq                 BIGINT NOT NULL,
    id                  BIGINT NOT NULL,
    kind                TEXT NOT NULL,  -- text | html | topicUpdated | participantAdded | participantRemoved
    content             TEXT,           -- text/html body; NULL on system messages and tombstones
    system              TEXT,           -- JSON ChatMessageContent of a system message
    sender_id           TEXT,
    sender_display_name TEXT,
    metadata            TEXT NOT NULL,
    priority            TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    version             BIGINT NOT NULL,
    edited_at           BIGINT,
    deleted_at          BIGINT,
    PRIMARY KEY (thread_id, seq)
);
CREATE UNIQUE INDEX messages_thread_id ON messages (thread_id, id);

CREATE TABLE read_receipts (
    thread_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    message_id BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    read_at    BIGINT NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);

CREATE TABLE idempotency (
    user_id    TEXT NOT NULL,
    request_id TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    status     INTEGER NOT NULL,
    response   TEXT NOT NULL,
    location   TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, request_id)
);
CREATE INDEX idempotency_created ON idempotency (created_at);

-- Webhook outbox: one row per event, written in the transaction of the change it describes.
CREATE TABLE outbox (
    id         BIGSERIAL PRIMARY KEY,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    subject    TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
