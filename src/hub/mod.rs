//! Actors. One [`thread::ThreadActor`] per live thread serializes every change to that thread;
//! the [`registry::Registry`] spawns them on demand (on the event loop of the HTTP worker that
//! asked, see [`registry::WorkerLoops`]) and forgets them when they stop after being idle.
//!
//! ```text
//!  handler ── directory (live actors) or Lookup ──► Registry ──► Addr<ThreadActor>
//!  handler ── command ─► ThreadActor ── job ──► Writer (group commit) ── commit ──► reply
//! ```
//!
//! Invariants enforced here:
//! 1. One writer per thread: only a thread's actor changes its rows, one command at a time
//!    (`AtomicResponse` holds the mailbox until the commit has answered). Sends, which change
//!    no cached state, are group-committed instead: those arriving during a commit go together,
//!    in order, in the next one (see `thread.rs`).
//! 2. Ack after durable commit: a command answers only after the writer's batch committed.
//! 3. Sequence numbers come from the transaction: the job reads where its thread stands inside
//!    it (`store::threads::get`: the thread row, or on SQLite its last message if later).

pub mod activity;
pub mod commands;
pub mod frame_guard;
pub mod queue;
pub mod realtime;
pub mod registry;
pub mod session;
pub mod thread;
pub mod users;

use actix::{Addr, Handler, Message};

use crate::error::ApiError;
use crate::ids::ThreadId;
use registry::{Lookup, Registry};
use thread::ThreadActor;

/// The way to the thread actors: the registry, and its directory of live ones.
#[derive(Clone)]
pub struct Hub {
    pub registry: Addr<Registry>,
    pub directory: std::sync::Arc<registry::Directory>,
    /// The HTTP workers' event loops, where thread actors are started.
    pub workers: std::sync::Arc<registry::WorkerLoops>,
}

impl Hub {
    /// Sends `cmd` to the actor of `thread`. A live actor is found in the directory; otherwise
    /// the registry spawns one. If the actor stopped in between (idle reaping), asks the registry
    /// once more.
    pub async fn send<M, R>(&self, thread: &ThreadId, cmd: M) -> Result<R, ApiError>
    where
        M: Message<Result = Result<R, ApiError>> + Clone + Send + 'static,
        R: Send + 'static,
        ThreadActor: Handler<M>,
    {
        for attempt in 0..3 {
            let live = (attempt == 0)
                .then(|| {
                    self.directory
                        .read()
                        .get(thread)
                        .filter(|a| a.connected())
                        .cloned()
                })
                .flatten();
            let addr = match live {
                Some(addr) => addr,
                None => self
                    .registry
                    .send(Lookup(thread.clone(), std::thread::current().id()))
                    .await
                    .map_err(|e| ApiError::unavailable(format!("registry: {e}")))?,
            };
            match addr.send(cmd.clone()).await {
                Ok(result) => return result,
                Err(actix::MailboxError::Closed) => continue,
                Err(e) => return Err(ApiError::unavailable(format!("thread actor: {e}"))),
            }
        }
        Err(ApiError::unavailable("thread actor kept stopping"))
    }
}
