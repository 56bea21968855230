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
        members_version -> BigInt,
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
        sentiment -> Nullable<BigInt>,
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
    event_subscriptions (key) {
        key -> Text,
        name -> Text,
        endpoint_url -> Text,
        event_types -> Text,
        delivery_schema -> Text,
        secret -> Nullable<Text>,
        old_secret -> Nullable<Text>,
        old_secret_until -> Nullable<BigInt>,
        max_attempts -> Integer,
        ttl_minutes -> Integer,
        provisioning_state -> Text,
        status -> Text,
        validation_code -> Nullable<Text>,
        validation_expires -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    webhook_deliveries (seq) {
        seq -> BigInt,
        subscription -> Text,
        event_id -> Text,
        event_type -> Text,
        subject -> Text,
        data -> Text,
        event_time -> BigInt,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<BigInt>,
        last_attempt_at -> Nullable<BigInt>,
        last_status_code -> Nullable<Integer>,
        last_latency_ms -> Nullable<BigInt>,
        dead_letter_reason -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Cluster mode: committed real-time events waiting for the relay.
    cluster_events (id) {
        id -> BigInt,
        kind -> Text,
        body -> Text,
        recipients -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Per hour: text/html messages, threads and identities created (kept by triggers).
    usage_hours (hour, slot) {
        hour -> BigInt,
        slot -> BigInt,
        messages -> BigInt,
        threads -> BigInt,
        identities -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(threads, participants, messages, read_receipts);
