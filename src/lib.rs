//! confab: a self-hosted chat hub that speaks the Azure Communication Services Chat and
//! Identity REST APIs.
//!
//! ```text
//!  public listeners (HTTP, HTTPS)                 admin listener (loopback)
//!   │ api::middleware: request id, metrics, CORS   │ dashboard (own state) + api::admin (/metrics)
//!   ▼                                              ▼
//!  api/  URL table, one file per resource ── reads ──► store/ (r2d2 pool, diesel, SQLite | PostgreSQL)
//!   │ auth::Auth (keys, tokens, identity cache)         ▲
//!   │ commands (hub::Hub::send)                        │ one transaction per batch (group commit)
//!   ▼                                                  │
//!  hub::registry ── ThreadId → Addr<ThreadActor>       │
//!   ▼                                                  │
//!  hub::thread::ThreadActor (one per live thread) ─ job ─► store::writer: change + last_seq
//!     serializes membership, messages, receipts;         + webhook outbox rows, atomically
//!     answers only after commit, then publishes
//!   │                                                          │
//!   ▼                                                          ▼
//!  hub::users (per-user streams, rings, cursors)      events::dispatcher → webhook endpoints
//!   → hub::queue (bounded) → hub::session (WebSocket) · api::realtime (long-poll, SSE)
//! ```
//!
//! Layers, each arrow pointing down: [`api`] and [`dashboard`] are siblings that never import
//! each other ([`server`] composes them); below them [`hub`], [`events`] and [`auth`]; then
//! [`store`]; [`model`], [`ids`], [`error`], [`config`], [`text`] and [`sentiment`] are used by all and
//! import none of the layers. Nothing below the API takes [`state::AppState`].
//!
//! Modules, one line each:
//! - [`api`]: the public URL table and one file per resource (identities, threads, messages,
//!   participants, receipts, real-time, subscriptions), with the shared extractors,
//!   responders and middleware.
//! - [`auth`]: [`auth::Auth`] — HMAC access keys, user tokens, the identity-state cache.
//! - [`cognitive`]: the translator and the transcriber confab calls (off unless configured).
//! - [`config`]: every flag, its environment variable, default and doc line.
//! - [`dashboard`]: the admin pages (askama), their login, and the alert rules in-process.
//! - [`error`]: `ApiError`, the one wire error (`{"error":{"code","message"}}`).
//! - [`events`]: webhooks — the event types, the outbox written in the change's
//!   transaction, signing, envelopes, the guarded HTTP client and the dispatcher.
//! - [`housekeeping`]: background tasks (metrics upkeep, WAL checkpoints, retention, purges).
//! - [`hub`]: the actors — registry, thread actors, per-user streams, session queues and the
//!   WebSocket session, the real-time event types.
//! - [`ids`]: `ThreadId`, `UserId`, and the id and time formats of the contract.
//! - [`metrics`]: every metric declared once, the recorder, the RED recording.
//! - [`model`]: the wire and domain types (identifiers, participants, threads, messages,
//!   subscription states) and their limits.
//! - [`ratelimit`]: per-user, per-operation request rates.
//! - [`request_log`]: the ring of recent error responses.
//! - [`sentiment`]: the built-in sentiment score of messages (VADER).
//! - [`server`]: composition — open the store, start the hub, build each layer's state, bind
//!   the listeners, print the banner.
//! - [`state`]: `AppState`, the API layer's bag of handles.
//! - [`store`]: connections (SQLite | PostgreSQL), schema, one query module per table, the
//!   group-commit writer.
//! - [`text`]: plain text of message content (previews, sentiment).
//! - [`tls`]: the development CA and certificate, or the operator's.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod cognitive;
pub mod config;
pub mod dashboard;
pub mod datadir;
pub mod error;
pub mod events;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod housekeeping;
pub mod hub;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod ratelimit;
pub mod request_log;
pub mod sentiment;
pub mod server;
pub mod state;
pub mod store;
pub mod text;
pub mod tls;

pub use server::{banner, open, start, Opened, Running};
