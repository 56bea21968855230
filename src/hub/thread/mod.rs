//! The thread actor: the only writer of its thread.
//!
//! It caches membership (loaded once when the actor starts, then kept in step with each
//! committed change) so that permission checks need no database read, and it handles one
//! command at a time: each handler returns an `AtomicResponse`, which holds the mailbox until
//! the write has committed and the cache is updated. Sends are the exception that makes a busy
//! thread fast: they change no cached state, so they are group-committed — those arriving
//! while a commit is in flight go together in the next one, in arrival order, each checked
//! against membership again when its commit starts.
//!
//! Cluster mode (contract §9.2): every node may have an actor for the same thread, and
//! PostgreSQL serializes them. Each write first locks the thread's row and compares its
//! `members_version` with the version this actor's cache was loaded at; every add, removal and
//! deletion moves it on. On a mismatch the job fails with `membership_moved`, the actor reloads
//! the thread and runs the command again. A refusal the cache alone would give (403, 404) is
//! checked the same way, after a reload, so no node answers from a cache that another node has
//! made stale: positive answers are checked under the lock, negative ones against the database.
//!
//! This file holds the actor, its membership cache and the commit every command goes
//! through (`ThreadActor::serve` and `ThreadActor::commit`); the commands are handled in
//! `lifecycle` (create, update, delete the thread), `messaging` (send, edit, delete),
//! `members` (add, remove) and `receipts` (read receipts, typing), with the helpers they
//! share inside the transaction in `tx`.

mod effects;
mod lifecycle;
mod members;
mod messaging;
mod receipts;
mod tx;

use messaging::PendingSend;
use tx::Sequencer;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::commands::{
    AddParticipants, CreateThread, DeleteMessage, DeleteThread, EditMessage, RemoveParticipant,
    Replay, SendReceipt, Typing, UpdateThread,
};
use super::registry::{HubCtx, Reaped, Registry};
use crate::error::ApiError;
use crate::ids::{ThreadId, UserId};
use crate::model::Metadata;
use crate::model::{EventParticipant, InvalidParticipant};
use crate::store::appends::Appends;
use crate::store::models::Participant;
use crate::store::{parse_metadata, participants, threads, DbConn};
pub use effects::Effects;

/// A participant as the actor remembers it (enough for permission checks and events).
#[derive(Debug, Clone)]
struct Member {
    display_name: Option<String>,
    metadata: Metadata,
    share_history_time: i64,
    removed_at: Option<i64>,
}

impl Member {
    fn is_current(&self) -> bool {
        self.removed_at.is_none()
    }

    fn p(&self, raw: &str) -> EventParticipant {
        EventParticipant {
            raw_id: raw.to_string(),
            display_name: self.display_name.clone(),
            share_history_time: Some(self.share_history_time),
            metadata: self.metadata.clone(),
        }
    }

    fn of(p: &Participant) -> Member {
        Member {
            display_name: p.display_name.clone(),
            metadata: parse_metadata(&p.metadata),
            share_history_time: p.share_history_time,
            removed_at: p.removed_at,
        }
    }
}

enum State {
    /// Not loaded yet (only before `started` finished).
    Loading,
    /// No such thread (yet): only `CreateThread` is accepted.
    Missing,
    Deleted,
    Live {
        members: HashMap<UserId, Member>,
        current: usize,
    },
}

pub struct ThreadActor {
    id: ThreadId,
    hub: Arc<HubCtx>,
    registry: Addr<Registry>,
    state: State,
    last_active: Instant,
    /// Sends waiting for the group commit in flight (see `Handler<SendMessage>`).
    pending_sends: Vec<PendingSend>,
    /// A group commit of sends is in flight.
    sending: bool,
    /// Where the thread's messages stood after the last commit of sends (or at load), if no
    /// other command has started since: the next sends trust it (see `store::appends`).
    last_message: Option<Sequencer>,
    /// Counts the commands other than sends, so that a send's commit does not leave a hint
    /// that a command started meanwhile may have made stale.
    epoch: u64,
    /// The thread row's `members_version` the membership cache is as of.
    members_version: i64,
    /// Cluster mode: until when sends lock the thread's row instead of trusting the hint,
    /// because another node wrote the thread since this actor's last commit (its sends would
    /// mostly find the hint stale and make their batches run twice).
    contended_until: Option<Instant>,
    /// Where this thread's events go once it has had more than [`FANOUT_INLINE`] recipients
    /// (see [`ThreadActor::deliver`]).
    fanout: Option<tokio::sync::mpsc::UnboundedSender<Delivery>>,
}

/// Committed events and their recipients, for the thread's delivery loop.
type Delivery = (Arc<[crate::ids::UserId]>, Arc<crate::hub::realtime::Event>);

/// Recipients up to which the actor delivers its thread's events itself.
const FANOUT_INLINE: usize = 32;

/// The thread row and its participants, as loaded.
type Loaded = (Option<crate::store::models::Thread>, Vec<Participant>);

/// A command's answer: the mailbox is held until it is ready.
type Reply<T> = AtomicResponse<ThreadActor, Result<T, ApiError>>;

/// A command's write in flight: done when committed and the cache and streams are updated.
type Commit<T> = ResponseActFuture<ThreadActor, Result<T, ApiError>>;

fn thread_not_found() -> ApiError {
    ApiError::not_found("Thread")
}

/// A refusal the membership cache gives on its own (no such thread, not a participant): in
/// cluster mode another node may have changed what it says.
fn cache_refusal(e: &ApiError) -> bool {
    matches!(e.status.as_u16(), 403 | 404)
}

impl ThreadActor {
    pub fn new(id: ThreadId, hub: Arc<HubCtx>, registry: Addr<Registry>) -> ThreadActor {
        ThreadActor {
            id,
            hub,
            registry,
            state: State::Loading,
            last_active: Instant::now(),
            pending_sends: Vec::new(),
            sending: false,
            last_message: None,
            epoch: 0,
            members_version: 0,
            contended_until: None,
            fanout: None,
        }
    }

    /// Delivers a committed event to its recipients' streams, in commit order. The actor lives
    /// on an HTTP worker's loop (see `registry::WorkerLoops`), and delivering costs a frame per
    /// recipient: a busy big room left that worker the bottleneck (fan-out to 250 members
    /// measured 20 % fewer deliveries a second). So once its thread has more than
    /// [`FANOUT_INLINE`] recipients, the actor hands its deliveries, in order, to a loop of the
    /// registry's own, and keeps doing so for its lifetime: a later delivery never overtakes
    /// an earlier one. (The queue holds shared pointers; its consumer does only this.)
    fn deliver(&mut self, to: &Arc<[crate::ids::UserId]>, e: &Arc<crate::hub::realtime::Event>) {
        if self.fanout.is_none() && to.len() > FANOUT_INLINE {
            self.fanout = self.start_fanout();
        }
        let rest = match &self.fanout {
            Some(tx) => tx.send((to.clone(), e.clone())).err().map(|e| e.0),
            None => Some((to.clone(), e.clone())),
        };
        // (inline, or the delivery loop is gone: the system is stopping)
        if let Some((to, e)) = rest {
            self.hub.users.publish(&to, &e);
        }
    }

    fn start_fanout(&self) -> Option<tokio::sync::mpsc::UnboundedSender<Delivery>> {
        use std::hash::{Hash, Hasher};
        let loops = &self.hub.own_loops;
        if loops.is_empty() {
            return None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.id.as_str().hash(&mut h);
        let arbiter = &loops[h.finish() as usize % loops.len()];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
        let users = self.hub.users.clone();
        arbiter
            .spawn(async move {
                while let Some((to, e)) = rx.recv().await {
                    users.publish(&to, &e);
                }
            })
            .then_some(tx)
    }

    /// A command that needs no write. In cluster mode the answer still rests on the cache (the
    /// caller is a member, the target is not), so an empty job checks it under the row lock.
    fn done(&mut self) -> Commit<()> {
        if self.hub.config.cluster {
            self.commit(|_, _| Ok(()), |_, _| {}, |()| ())
        } else {
            Box::pin(fut::ready(Ok(())))
        }
    }

    /// Reads the thread and its participants, for [`ThreadActor::loaded`].
    fn load(&self) -> impl std::future::Future<Output = Result<Loaded, ApiError>> + 'static {
        let store = self.hub.store.clone();
        let id = self.id.clone();
        async move {
            store
                .read(move |c| {
                    let t = threads::get(c, &id)?;
                    let ps = match &t {
                        Some(t) if t.deleted_at.is_none() => participants::all(c, &id)?,
                        _ => Vec::new(),
                    };
                    Ok((t, ps))
                })
                .await
        }
    }

    /// Replaces the cache with what [`ThreadActor::load`] read.
    fn loaded(&mut self, (t, ps): Loaded) {
        // a send committing meanwhile must not restore a hint from before
        self.epoch += 1;
        self.last_message = None;
        match t {
            None => self.state = State::Missing,
            Some(t) if t.deleted_at.is_some() => {
                self.members_version = t.members_version;
                self.state = State::Deleted;
            }
            Some(t) => {
                let current = ps.iter().filter(|p| p.is_current()).count();
                let members = ps
                    .iter()
                    .map(|p| (UserId::new(p.user_id.as_str()), Member::of(p)))
                    .collect();
                self.state = State::Live { members, current };
                self.members_version = t.members_version;
                // (in cluster mode too: a send that trusts it checks it, see `flush_sends`)
                self.last_message = Some(Sequencer::of(&t));
            }
        }
    }

    /// Cluster mode: reloads the cache from the database, then runs `then` on the actor.
    fn reload_then<R: 'static>(
        &mut self,
        then: impl FnOnce(&mut ThreadActor) -> Commit<R> + 'static,
    ) -> Commit<R> {
        Box::pin(
            self.load()
                .into_actor(self)
                .then(move |res, act, _| match res {
                    Ok(l) => {
                        act.loaded(l);
                        then(act)
                    }
                    Err(e) => Box::pin(fut::ready(Err(e))) as Commit<R>,
                }),
        )
    }

    /// What a job must find under the thread row's lock (cluster mode only): the version this
    /// cache is as of, or no row at all for a thread this actor believes missing.
    fn expected_version(&self) -> Option<Option<i64>> {
        if !self.hub.config.cluster {
            return None;
        }
        Some(match self.state {
            State::Missing => None,
            _ => Some(self.members_version),
        })
    }

    /// The caller's membership if current; 404 for a missing or deleted thread, else 403.
    fn current_member(&self, user: &str) -> Result<Member, ApiError> {
        match &self.state {
            State::Live { members, .. } => members
                .get(user)
                .filter(|m| m.is_current())
                .cloned()
                .ok_or_else(ApiError::forbidden),
            _ => Err(thread_not_found()),
        }
    }

    fn current_ids(&self) -> HashSet<UserId> {
        self.current_list().into_iter().collect()
    }

    /// Current participants: the recipients of most events (membership as of commit).
    fn current_list(&self) -> Vec<UserId> {
        match &self.state {
            State::Live { members, .. } => members
                .iter()
                .filter(|(_, m)| m.is_current())
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The event form of a participant (or of the sweeper's `system` identity).
    fn p(&self, user: &str) -> EventParticipant {
        match &self.state {
            State::Live { members, .. } => members
                .get(user)
                .map(|m| m.p(user))
                .unwrap_or_else(|| EventParticipant::bare(user)),
            _ => EventParticipant::bare(user),
        }
    }

    fn current_count(&self) -> usize {
        match &self.state {
            State::Live { current, .. } => *current,
            _ => 0,
        }
    }

    /// Whether receipts and typing are suppressed (more current participants than the limit).
    fn receipts_suppressed(&self) -> bool {
        let limit = self.hub.config.receipts_max_participants;
        limit != 0 && self.current_count() > limit
    }

    fn set_member(&mut self, user: UserId, member: Member) {
        if let State::Live { members, current } = &mut self.state {
            let was = members.get(&user).is_some_and(Member::is_current);
            let is = member.is_current();
            members.insert(user, member);
            match (was, is) {
                (false, true) => *current += 1,
                (true, false) => *current -= 1,
                _ => {}
            }
        }
    }

    /// The epilogue every command shares: runs `job` in the writer, then `after` on the actor
    /// with the committed result (cache update, publish, metrics), then answers with `answer`
    /// of it; the mailbox is held until all are done. The job adds its webhook events to the
    /// outbox it is given; they are written in the same transaction, and the dispatcher is
    /// woken after commit.
    fn commit<T, R, J, A, N>(&mut self, job: J, after: A, answer: N) -> Commit<R>
    where
        T: Send + 'static,
        J: FnOnce(&mut DbConn, &mut Effects) -> Result<T, ApiError> + Clone + Send + 'static,
        A: FnOnce(&mut ThreadActor, &T) + 'static,
        N: FnOnce(T) -> R + 'static,
    {
        self.commit_with(
            false,
            false,
            None,
            move |c, ob, _| job(c, ob),
            after,
            answer,
        )
    }

    /// The commit itself, as [`ThreadActor::commit`] describes it. An `appending` job (sends)
    /// writes its messages through `Appends`, which then join the writer's group of the batch
    /// (see `store::appends`). Cluster mode: a job that `trusts_hint` (sends with the actor's
    /// hint) does not lock the thread's row first in the batch's first attempt; its group's
    /// move checks the membership version instead (`Appends::trust_version`).
    ///
    /// `quiet`: an appending job that, given its actor's hint, runs no statement of its own
    /// (no idempotency record to store) but the webhook rows of the event types it names. If
    /// no active subscription includes any of those types (so that it writes no webhook row)
    /// and, in cluster mode, it trusts its hint, it is a pure append, which the writer may
    /// commit without a transaction block of its own (see `store::writer`).
    fn commit_with<T, R, J, A, N>(
        &mut self,
        appending: bool,
        trusts_hint: bool,
        quiet: Option<&'static [&'static str]>,
        job: J,
        after: A,
        answer: N,
    ) -> Commit<R>
    where
        T: Send + 'static,
        J: FnOnce(&mut DbConn, &mut Effects, &mut Appends) -> Result<T, ApiError>
            + Clone
            + Send
            + 'static,
        A: FnOnce(&mut ThreadActor, &T) + 'static,
        N: FnOnce(T) -> R + 'static,
    {
        let store = self.hub.store.clone();
        let thread = self.id.clone();
        let mut effects = Effects::new(self.hub.webhooks.outbox());
        let expected = self.expected_version();
        let cluster = self.hub.config.cluster;
        let locked = thread.clone();
        // (the writer may run this twice: see `store::writer`; each run starts from no effects)
        let trusted = match expected {
            Some(Some(version)) if trusts_hint => Some(version),
            _ => None,
        };
        // (decided on the job's own outbox: the subscriptions it writes for)
        let pure = appending
            && quiet.is_some_and(|types| effects.writes_no_webhooks(types))
            && (expected.is_none() || trusted.is_some());
        let write = move |c: &mut DbConn, appends: &mut Appends| {
            if let Some(expected) = expected {
                // cluster mode: the thread's writers on all nodes take turns on its row
                if !trusted.is_some_and(|v| appends.trust_version(v)) {
                    let row = appends.lock_row(c, &locked)?;
                    if row.map(|(version, _)| version) != expected {
                        return Err(ApiError::membership_moved());
                    }
                }
            }
            let v = job(c, &mut effects, appends)?;
            let (outbox, mut realtime) = effects.into_parts();
            // the webhook rows belong to the change's transaction, and in cluster mode so do
            // the real-time events (every node delivers them from there)
            let rows = outbox.flush(c)?;
            let mut relayed = 0;
            if cluster {
                relayed = appends.add_events(c, effects::rows(&realtime))?;
                realtime.clear();
            }
            Ok((v, rows, realtime, relayed))
        };
        let fut = async move {
            store
                .thread_job(
                    &thread,
                    appending,
                    expected.is_some() && trusted.is_none(),
                    pure,
                    write,
                )
                .await
        }
        .into_actor(self)
        .map(move |res, act, _ctx| {
            let (v, rows, realtime, relayed) = res?;
            if rows > 0 {
                metrics::counter!(crate::metrics::WEBHOOK_EVENTS).increment(rows as u64);
                act.hub.webhooks.wake();
            }
            for (to, e) in &realtime {
                act.deliver(to, e);
            }
            if relayed > 0 {
                if let Some(kick) = &act.hub.relay_kick {
                    kick();
                }
            }
            after(act, &v);
            Ok(answer(v))
        });
        Box::pin(fut)
    }

    /// Handles one command: the shared prologue (the actor counts as active) and epilogue (the
    /// mailbox is held until the commit has answered). `start` checks membership and limits
    /// (`?` answers an error at once) and returns the commit, which publishes what it changed.
    /// `writes_messages`: the command may write system messages (moving the thread's row on),
    /// so the next sends read where the thread stands instead of trusting the hint.
    ///
    /// Cluster mode: when the commit finds the membership moved on, or the cache alone refuses
    /// (403, 404), the actor reloads the thread and runs `start` once more on the fresh cache.
    fn serve<C: Clone + 'static, R: 'static>(
        &mut self,
        writes_messages: bool,
        cmd: C,
        start: fn(&mut ThreadActor, C) -> Result<Commit<R>, ApiError>,
    ) -> Reply<R> {
        self.touch();
        if writes_messages {
            self.epoch += 1;
            self.last_message = None;
        }
        let again = self.hub.config.cluster.then(|| cmd.clone());
        let run_again = move |act: &mut ThreadActor, cmd: C| -> Commit<R> {
            act.reload_then(move |act| match start(act, cmd) {
                Ok(commit) => commit,
                Err(e) => Box::pin(fut::ready(Err(e))),
            })
        };
        let commit: Commit<R> = match (start(self, cmd), again) {
            (Ok(commit), None) => commit,
            (Ok(commit), Some(cmd)) => Box::pin(commit.then(move |res, act, _| match res {
                Err(e) if e.is_membership_moved() => run_again(act, cmd),
                res => Box::pin(fut::ready(res)) as Commit<R>,
            })),
            (Err(e), Some(cmd)) if cache_refusal(&e) => run_again(self, cmd),
            (Err(e), _) => Box::pin(fut::ready(Err(e))),
        };
        AtomicResponse::new(commit)
    }

    fn touch(&mut self) {
        self.last_active = Instant::now();
    }

    fn reap(&mut self, ctx: &mut Context<Self>) {
        self.registry.do_send(Reaped {
            thread: self.id.clone(),
            addr: ctx.address(),
        });
        ctx.stop();
    }
}

impl Actor for ThreadActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.wait(self.load().into_actor(self).map(|res, act, ctx| match res {
            Ok(l) => act.loaded(l),
            Err(e) => {
                tracing::warn!(thread = %act.id, error = %e, "cannot load thread; stopping its actor");
                act.reap(ctx);
            }
        }));
        let tick = (self.hub.config.idle_timeout / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(tick, |act, ctx| {
            let idle = act.last_active.elapsed() >= act.hub.config.idle_timeout;
            if idle || matches!(act.state, State::Missing | State::Deleted) {
                act.reap(ctx);
            }
        });
    }
}

/// Routes each command to the method that checks and commits it, through
/// [`ThreadActor::serve`]. Sends are group-committed instead (see `messaging`).
macro_rules! commands {
    ($($cmd:ty => $method:ident -> $answer:ty, writes messages: $writes:expr;)+) => {$(
        impl Handler<$cmd> for ThreadActor {
            type Result = Reply<$answer>;

            fn handle(&mut self, cmd: $cmd, _ctx: &mut Self::Context) -> Self::Result {
                self.serve($writes, cmd, ThreadActor::$method)
            }
        }
    )+};
}

commands! {
    CreateThread => create_thread -> Replay, writes messages: true;
    UpdateThread => update_thread -> (), writes messages: true;
    DeleteThread => delete_thread -> (), writes messages: true;
    EditMessage => edit_message -> (), writes messages: false;
    DeleteMessage => delete_message -> (), writes messages: false;
    AddParticipants => add_participants -> Vec<InvalidParticipant>, writes messages: true;
    RemoveParticipant => remove_participant -> (), writes messages: true;
    SendReceipt => send_receipt -> (), writes messages: false;
    Typing => typing -> (), writes messages: false;
}
