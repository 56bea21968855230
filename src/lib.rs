//! confab: a self-hosted chat hub that speaks the Azure Communication Services Chat and
//! Identity REST APIs.
//!
//! ```text
//!  HTTP (actix-web)
//!   │ prelude middleware: request id, original target, trailing slash
//!   ▼
//!  api/  one file per resource ── reads ──► store/ (r2d2 pool, diesel, SQLite | PostgreSQL)
//!   │ commands                                  ▲
//!   ▼                                           │ one transaction per batch (group commit)
//!  hub::Registry ── thread id → Addr<ThreadActor>
//!   │                                           │
//!   ▼                                           │
//!  ThreadActor (one per live thread) ── job ──► store::Writer: change + last_seq, atomically;
//!     serializes membership, messages, receipts for its thread; answers only after commit
//! ```
//!
//! Module map: [`config`] (every flag), [`error`] (the wire error), [`ids`] (id and time
//! formats), [`api`] (URL table and handlers), [`auth`] (HMAC, tokens), [`hub`] (actors),
//! [`store`] (database), [`ratelimit`], [`metrics`].

pub mod api;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod housekeeping;
pub mod hub;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod ratelimit;
pub mod request_log;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;

pub use server::{banner, open, start, Opened, Running};
