//! One integration test binary: each module drives a real confab over HTTP.

mod auth;
mod binary;
mod cluster;
mod common;
mod dashboard;
mod errors;
mod extensions;
mod faults;
mod fuzzed;
mod hardening;
mod identity;
mod messages;
mod participants;
mod process;
mod realtime;
mod receipts;
mod standins;
mod storage;
mod threads;
mod tls;
mod webhooks;
