//! diesel table definitions, identical for SQLite and PostgreSQL (see `migrations/`).

diesel::table! {
    meta (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    identities (id) {
        id -> Text,
        created_at -> BigInt,
        deleted_at -> Nullable<BigInt>,
        tokens_revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    threads (id) {
        id -> Text,
        topic -> Text,
        created_by -> Text,
        created_at -> BigInt,
        deleted_at -> Nullable<BigInt>,
        metadata -> Text,
        retention -> Nullable<Text>,
        delete_after -> Nullable<BigInt>,
        last_seq -> BigInt,
        last_message_id -> BigInt,
        last_message_at -> BigInt,
    }
}

diesel::table! {
    participants (thread_id, user_id) {
        thread_id -> Text,
        user_id -> Text,
        display_name -> Nullable<Text>,
        metadata -> Text,
        share_history_time -> BigInt,
        added_at -> BigInt,
        added_seq -> BigInt,
        add_index -> Integer,
        removed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    messages (thread_id, seq) {
        thread_id -> Text,
        seq -> BigInt,
        id -> BigInt,
        kind -> Text,
        content -> Nullable<Text>,
        system -> Nullable<Text>,
        sender_id -> Nullable<Text>,
        sender_display_name -> Nullable<Text>,
        metadata -> Text,
        priority -> Text,
        created_at -> BigInt,
        version -> BigInt,
        edited_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    read_receipts (thread_id, user_id) {
        thread_id -> Text,
        user_id -> Text,
        message_id -> BigInt,
        seq -> BigInt,
        read_at -> BigInt,
    }
}

diesel::table! {
    idempotency (user_id, request_id) {
        user_id -> Text,
        request_id -> Text,
        body_hash -> Text,
        status -> Integer,
        response -> Text,
        location -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        event_id -> Text,
        event_type -> Text,
        subject -> Text,
        data -> Text,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(threads, participants, messages, read_receipts);
