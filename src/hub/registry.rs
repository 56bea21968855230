//! The registry actor: thread id → address of that thread's actor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::thread::ThreadActor;
use crate::ids::ThreadId;
use crate::store::Store;

/// Thread id → address of its live actor. Only the registry writes it.
pub type Directory = parking_lot::RwLock<HashMap<ThreadId, Addr<ThreadActor>>>;

/// The HTTP workers' event loops, by OS thread. A thread actor is started on the loop of the
/// worker whose request first needed it, so that this worker's commands reach the actor, and
/// its answers come back, without waking another OS thread: measured on two cores, the wake-ups
/// and context switches of the hops between a worker and an actor on a loop of its own were
/// the largest cost of a send after the database's. Commands from other workers reach it as
/// before, through its mailbox.
#[derive(Default)]
pub struct WorkerLoops(parking_lot::Mutex<HashMap<std::thread::ThreadId, ArbiterHandle>>);

impl WorkerLoops {
    /// Called on each HTTP worker's thread as it builds its application.
    pub fn register(&self) {
        if let Some(handle) = Arbiter::try_current() {
            self.0.lock().insert(std::thread::current().id(), handle);
        }
    }

    /// The loop of the worker running on OS thread `t`, if it is still running.
    fn of(&self, t: std::thread::ThreadId) -> Option<ArbiterHandle> {
        let mut loops = self.0.lock();
        let handle = loops.get(&t)?.clone();
        // (a stopped worker's loop refuses work)
        if handle.spawn(async {}) {
            Some(handle)
        } else {
            loops.remove(&t);
            None
        }
    }
}

/// Limits and timings the thread actors need.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub max_participants: usize,
    /// 0 = unlimited.
    pub receipts_max_participants: usize,
    pub idle_timeout: Duration,
    /// `--sentiment`: edits are scored in their job (sends arrive scored).
    pub sentiment: bool,
    /// Cluster mode: other nodes write the same threads, so every write first locks the thread
    /// row and checks the cached membership's version (see `thread`).
    pub cluster: bool,
}

/// What every thread actor shares.
pub struct HubCtx {
    pub store: Store,
    /// Per-user real-time streams that committed changes are published to.
    pub users: Arc<super::users::Users>,
    /// Recent message activity per thread (for the dashboard).
    pub activity: Arc<super::activity::Activity>,
    /// Active webhook subscriptions: write jobs put wanted events in the outbox.
    pub webhooks: Arc<crate::events::Webhooks>,
    pub config: HubConfig,
    pub resource_id: String,
    /// Cluster mode: wakes the relay that takes committed events from `cluster_events` to
    /// every node (see `cluster::events`).
    pub relay_kick: Option<Arc<dyn Fn() + Send + Sync>>,
    /// The registry's own event loops (set by [`Registry::new`]): actors asked for from
    /// outside an HTTP worker live there, and big threads deliver their events there (see
    /// `ThreadActor::deliver`).
    pub own_loops: Vec<ArbiterHandle>,
}

pub struct Registry {
    ctx: Arc<HubCtx>,
    /// Live actors; shared read-only with [`super::Hub`] so that a command to a live thread
    /// needs no round trip through this actor.
    threads: Arc<Directory>,
    next: usize,
    /// The HTTP workers' loops, where actors asked for by a worker start.
    workers: Arc<WorkerLoops>,
}

impl Registry {
    /// Thread actors start on the loop of the HTTP worker that asked for them (`workers`);
    /// those asked for from anywhere else (housekeeping, the admin listener's worker) are spread
    /// over `arbiters` event loops of the registry's own (at least one).
    pub fn new(
        ctx: HubCtx,
        arbiters: usize,
        directory: Arc<Directory>,
        workers: Arc<WorkerLoops>,
    ) -> Registry {
        let mut ctx = ctx;
        ctx.own_loops = (0..arbiters.max(1))
            .map(|_| Arbiter::new().handle())
            .collect();
        Registry {
            ctx: Arc::new(ctx),
            threads: directory,
            next: 0,
            workers,
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        for a in &self.ctx.own_loops {
            a.stop();
        }
    }
}

/// Handler → Registry: the address of a thread's actor, spawned if not live (on the event loop
/// of the HTTP worker on the OS thread named, if any; see [`WorkerLoops`]).
#[derive(Message)]
#[rtype(result = "Addr<ThreadActor>")]
pub struct Lookup(pub ThreadId, pub std::thread::ThreadId);

/// ThreadActor → Registry: this actor is stopping; forget it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reaped {
    pub thread: ThreadId,
    pub addr: Addr<ThreadActor>,
}

/// Anyone → Registry: how many thread actors are live.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LiveCount;

impl Handler<Lookup> for Registry {
    type Result = MessageResult<Lookup>;

    fn handle(&mut self, Lookup(thread, caller): Lookup, ctx: &mut Self::Context) -> Self::Result {
        if let Some(addr) = self.threads.read().get(&thread) {
            if addr.connected() {
                return MessageResult(addr.clone());
            }
        }
        let arbiter = self.workers.of(caller).unwrap_or_else(|| {
            self.next = self.next.wrapping_add(1);
            let loops = &self.ctx.own_loops;
            loops[self.next % loops.len()].clone()
        });
        let hub = self.ctx.clone();
        let me = ctx.address();
        let id = thread.clone();
        let addr = ThreadActor::start_in_arbiter(&arbiter, move |_| ThreadActor::new(id, hub, me));
        let mut threads = self.threads.write();
        threads.insert(thread, addr.clone());
        metrics::gauge!(crate::metrics::THREAD_ACTORS_LIVE).set(threads.len() as f64);
        MessageResult(addr)
    }
}

impl Handler<Reaped> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Reaped, _ctx: &mut Self::Context) {
        let mut threads = self.threads.write();
        if threads.get(&msg.thread).is_some_and(|a| *a == msg.addr) {
            threads.remove(&msg.thread);
            metrics::gauge!(crate::metrics::THREAD_ACTORS_LIVE).set(threads.len() as f64);
        }
    }
}

impl Handler<LiveCount> for Registry {
    type Result = usize;

    fn handle(&mut self, _: LiveCount, _ctx: &mut Self::Context) -> usize {
        self.threads.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker's loop is found by its OS thread while it runs, and forgotten once it stopped
    /// (an actor is then started on the registry's own loops instead).
    #[actix_web::test]
    async fn a_worker_loop_is_used_while_it_runs() {
        let loops = Arc::new(WorkerLoops::default());
        let worker = Arbiter::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let l = loops.clone();
        assert!(worker.spawn(async move {
            l.register();
            let _ = tx.send(std::thread::current().id());
        }));
        let t = rx.await.unwrap();
        assert!(loops.of(t).is_some());
        assert!(loops.of(std::thread::current().id()).is_none());
        worker.stop();
        worker.join().unwrap();
        assert!(loops.of(t).is_none());
        assert!(loops.0.lock().is_empty());
    }
}
