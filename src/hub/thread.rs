//! The thread actor: the only writer of its thread.
//!
//! It caches membership (loaded once when the actor starts, then kept in step with each
//! committed change) so that permission checks need no database read, and it handles one
//! command at a time: each handler returns an `AtomicResponse`, which holds the mailbox until
//! the write has committed and the cache is updated. Sends are the exception that makes a busy
//! thread fast: they change no cached state, so they are group-committed — those arriving
//! while a commit is in flight go together in the next one, in arrival order, each checked
//! against membership again when its commit starts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::commands::*;
use super::events;
use super::registry::{HubCtx, Reaped, Registry};
use crate::error::ApiError;
use crate::events::chat::{self as hooks, Change, MessageChange};
use crate::events::Outbox;
use crate::ids::{is_own_user_id, now_ms};
use crate::model::EventParticipant;
use crate::model::{
    self, check_metadata, participant_out, CimOut, CreateThreadResult, InvalidParticipant,
    MessageContent, Metadata, ThreadProperties, SYSTEM_ACTOR,
};
use crate::store::models::{IdempotencyRecord, Message, Participant, Receipt, Thread};
use crate::store::{
    identities, messages, metadata_json, parse_metadata, participants, threads, DbConn,
};

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
        members: HashMap<String, Member>,
        current: usize,
    },
}

pub struct ThreadActor {
    id: String,
    hub: Arc<HubCtx>,
    registry: Addr<Registry>,
    state: State,
    last_active: Instant,
    /// Sends waiting for the group commit in flight (see `Handler<SendMessage>`).
    pending_sends: Vec<PendingSend>,
    /// A group commit of sends is in flight.
    sending: bool,
}

type Reply<T> = AtomicResponse<ThreadActor, Result<T, ApiError>>;

fn reply<T: 'static>(r: Result<T, ApiError>) -> Reply<T> {
    AtomicResponse::new(Box::pin(fut::ready(r)))
}

/// Holds the mailbox until the future is done.
trait IntoAtomic<T> {
    fn into_atomic(self) -> Reply<T>;
}

impl<T: 'static> IntoAtomic<T> for ResponseActFuture<ThreadActor, Result<T, ApiError>> {
    fn into_atomic(self) -> Reply<T> {
        AtomicResponse::new(self)
    }
}

fn thread_not_found() -> ApiError {
    ApiError::not_found("Thread")
}

impl ThreadActor {
    pub fn new(id: String, hub: Arc<HubCtx>, registry: Addr<Registry>) -> ThreadActor {
        ThreadActor {
            id,
            hub,
            registry,
            state: State::Loading,
            last_active: Instant::now(),
            pending_sends: Vec::new(),
            sending: false,
        }
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

    fn current_ids(&self) -> HashSet<String> {
        self.current_list().into_iter().collect()
    }

    /// Current participants: the recipients of most events (membership as of commit).
    fn current_list(&self) -> Vec<String> {
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

    /// Publishes to the current participants.
    fn publish_current(&self, event: &Arc<super::users::Event>) {
        self.hub.users.publish(&self.current_list(), event);
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

    fn set_member(&mut self, user: String, member: Member) {
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

    /// Runs `job` in the writer, then `after` on the actor with the committed result; the
    /// mailbox is held until both are done. The job adds its webhook events to the outbox it is
    /// given; they are written in the same transaction, and the dispatcher is woken after commit.
    fn commit<T, J, A>(
        &mut self,
        job: J,
        after: A,
    ) -> ResponseActFuture<ThreadActor, Result<T, ApiError>>
    where
        T: Send + 'static,
        J: FnOnce(&mut DbConn, &mut Outbox) -> Result<T, ApiError> + Send + 'static,
        A: FnOnce(&mut ThreadActor, &T) + 'static,
    {
        let store = self.hub.store.clone();
        let mut outbox = self.hub.webhooks.outbox();
        let write = move |c: &mut DbConn| {
            let v = job(c, &mut outbox)?;
            // the webhook rows belong to the change's transaction
            let rows = outbox.flush(c)?;
            Ok((v, rows))
        };
        let fut = async move { store.write(write).await }
            .into_actor(self)
            .map(move |res, act, _ctx| {
                let (v, rows) = res?;
                if rows > 0 {
                    metrics::counter!(crate::metrics::WEBHOOK_EVENTS).increment(rows as u64);
                    act.hub.webhooks.wake();
                }
                after(act, &v);
                Ok(v)
            });
        Box::pin(fut)
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
        let store = self.hub.store.clone();
        let id = self.id.clone();
        let load = async move {
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
        };
        ctx.wait(load.into_actor(self).map(|res, act, ctx| match res {
            Ok((None, _)) => act.state = State::Missing,
            Ok((Some(t), _)) if t.deleted_at.is_some() => act.state = State::Deleted,
            Ok((Some(_), ps)) => {
                let current = ps.iter().filter(|p| p.is_current()).count();
                                let members = ps.iter().map(|p| (p.user_id.clone(), Member::of(p))).collect();
                act.state = State::Live { members, current };
            }
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

/// The next (sequenceId, message id, createdOn) of a thread, advanced inside the transaction.
struct Cursor {
    seq: i64,
    id: i64,
    at: i64,
}

impl Cursor {
    fn of(t: &Thread) -> Cursor {
        Cursor {
            seq: t.last_seq,
            id: t.last_message_id,
            at: t.last_message_at,
        }
    }

    /// Sequence ids have no gaps; ids increase strictly; createdOn never decreases.
    fn next(&mut self, now: i64) -> (i64, i64, i64) {
        self.seq += 1;
        self.id = now.max(self.id + 1);
        self.at = now.max(self.at);
        (self.seq, self.id, self.at)
    }

    fn save(&self, c: &mut DbConn, thread: &str) -> Result<(), ApiError> {
        Ok(threads::set_last_message(
            c, thread, self.seq, self.id, self.at,
        )?)
    }
}

/// Loads a live thread inside the transaction (404 if missing or deleted).
fn live_thread(c: &mut DbConn, id: &str) -> Result<Thread, ApiError> {
    threads::get(c, id)?
        .filter(|t| t.deleted_at.is_none())
        .ok_or_else(thread_not_found)
}

fn system_message(
    thread: &str,
    (seq, id, at): (i64, i64, i64),
    kind: &str,
    content: &MessageContent,
) -> Message {
    Message {
        thread_id: thread.to_string(),
        seq,
        id,
        kind: kind.to_string(),
        content: None,
        system: Some(serde_json::to_string(content).unwrap_or_default()),
        sender_id: None,
        sender_display_name: None,
        metadata: "{}".into(),
        priority: model::Priority::Normal.as_str().into(),
        created_at: at,
        version: id,
        edited_at: None,
        deleted_at: None,
    }
}

fn store_idem(c: &mut DbConn, slot: &Option<IdemSlot>, replay: &Replay) -> Result<(), ApiError> {
    if let Some(s) = slot {
        messages::idempotency_put(
            c,
            &IdempotencyRecord {
                user_id: s.user.clone(),
                request_id: s.request_id.clone(),
                body_hash: s.body_hash.clone(),
                status: i32::from(replay.status),
                response: replay.body.clone(),
                location: replay.location.clone(),
                created_at: now_ms(),
            },
        )?;
    }
    Ok(())
}

/// Splits requested participants into those that may join and `invalidParticipants`.
/// Duplicates merge by raw id; the first wins.
fn validate_participants(
    c: &mut DbConn,
    resource_id: &str,
    requested: Vec<NewParticipant>,
) -> Result<(Vec<NewParticipant>, Vec<InvalidParticipant>), ApiError> {
    let mut seen = HashSet::new();
    let requested: Vec<NewParticipant> = requested
        .into_iter()
        .filter(|p| seen.insert(p.raw_id.clone()))
        .collect();
    let own: Vec<String> = requested
        .iter()
        .filter(|p| p.is_communication_user && is_own_user_id(&p.raw_id, resource_id))
        .map(|p| p.raw_id.clone())
        .collect();
    let live: HashSet<String> = identities::live_among(c, &own)?.into_iter().collect();
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for p in requested {
        if !(p.is_communication_user && is_own_user_id(&p.raw_id, resource_id)) {
            invalid.push(InvalidParticipant::forbidden(&p.raw_id));
        } else if !live.contains(&p.raw_id) {
            invalid.push(InvalidParticipant::not_found(&p.raw_id));
        } else {
            valid.push(p);
        }
    }
    Ok((valid, invalid))
}

fn too_many(n: usize, max: usize) -> ApiError {
    ApiError::bad_request(
        "TooManyParticipants",
        format!("The thread would have {n} participants; the limit is {max}."),
    )
}

/// Writes participant rows for an add at `(seq, _, at)` and returns their wire form.
fn write_added(
    c: &mut DbConn,
    thread: &str,
    added: &[NewParticipant],
    (seq, _, at): (i64, i64, i64),
) -> Result<Vec<model::ParticipantOut>, ApiError> {
    let mut out = Vec::with_capacity(added.len());
    for (index, p) in added.iter().enumerate() {
        // A time later than the add is clamped to it, so everyone sees their own add message.
        let sht = p.share_history_time.unwrap_or(0).min(at);
        participants::upsert(
            c,
            &Participant {
                thread_id: thread.to_string(),
                user_id: p.raw_id.clone(),
                display_name: p.display_name.clone(),
                metadata: metadata_json(&p.metadata),
                share_history_time: sht,
                added_at: at,
                added_seq: seq,
                add_index: i32::try_from(index).unwrap_or(i32::MAX),
                removed_at: None,
            },
        )?;
        out.push(participant_out(
            &p.raw_id,
            p.display_name.clone(),
            sht,
            p.metadata.clone(),
        ));
    }
    Ok(out)
}

fn added_members(added: &[model::ParticipantOut], at: i64) -> Vec<(String, Member)> {
    added
        .iter()
        .map(|p| {
            let sht = crate::ids::parse_time(&p.share_history_time)
                .unwrap_or(0)
                .min(at);
            (
                p.communication_identifier.raw_id.clone(),
                Member {
                    display_name: p.display_name.clone(),
                    metadata: p.metadata.clone().unwrap_or_default(),
                    share_history_time: sht,
                    removed_at: None,
                },
            )
        })
        .collect()
}

impl Handler<CreateThread> for ThreadActor {
    type Result = Reply<Replay>;

    fn handle(&mut self, cmd: CreateThread, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        if !matches!(self.state, State::Missing) {
            return reply(Err(ApiError::internal(format!(
                "thread id collision on {}",
                self.id
            ))));
        }
        let id = self.id.clone();
        let resource_id = self.hub.resource_id.clone();
        let max = self.hub.config.max_participants;
        self.commit(
            move |c, ob| {
                let now = now_ms();
                let (valid, invalid) = validate_participants(c, &resource_id, cmd.participants)?;
                // The creator is always a participant; a listed entry for the creator wins.
                let mut members: Vec<NewParticipant> = Vec::with_capacity(valid.len() + 1);
                let listed_creator = valid.iter().find(|p| p.raw_id == cmd.creator).cloned();
                members.push(listed_creator.unwrap_or(NewParticipant {
                    raw_id: cmd.creator.clone(),
                    is_communication_user: true,
                    display_name: None,
                    metadata: Metadata::new(),
                    share_history_time: None,
                }));
                members.extend(valid.into_iter().filter(|p| p.raw_id != cmd.creator));
                if members.len() > max {
                    return Err(too_many(members.len(), max));
                }
                let mut thread = Thread {
                    id: id.clone(),
                    topic: cmd.topic.clone(),
                    created_by: cmd.creator.clone(),
                    created_at: now,
                    deleted_at: None,
                    metadata: metadata_json(&cmd.metadata),
                    retention: cmd
                        .retention
                        .as_ref()
                        .map(|r| serde_json::to_string(r).unwrap_or_default()),
                    delete_after: cmd.retention.as_ref().and_then(|r| r.delete_after(now)),
                    last_seq: 0,
                    last_message_id: 0,
                    last_message_at: 0,
                };
                let mut cursor = Cursor::of(&thread);
                let added_at = cursor.next(now);
                let topic_at = cursor.next(now);
                thread.last_seq = cursor.seq;
                thread.last_message_id = cursor.id;
                thread.last_message_at = cursor.at;
                threads::insert(c, &thread)?;
                let added = write_added(c, &id, &members, added_at)?;
                let initiator = Some(CimOut::from_raw(&cmd.creator));
                messages::insert(
                    c,
                    &system_message(
                        &id,
                        added_at,
                        model::PARTICIPANT_ADDED,
                        &MessageContent {
                            participants: Some(added.clone()),
                            initiator_communication_identifier: initiator.clone(),
                            ..Default::default()
                        },
                    ),
                )?;
                messages::insert(
                    c,
                    &system_message(
                        &id,
                        topic_at,
                        model::TOPIC_UPDATED,
                        &MessageContent {
                            topic: Some(cmd.topic.clone()),
                            initiator_communication_identifier: initiator,
                            ..Default::default()
                        },
                    ),
                )?;
                let (cmd_metadata, cmd_retention) = (cmd.metadata.clone(), cmd.retention.clone());
                let result = CreateThreadResult {
                    chat_thread: ThreadProperties {
                        id: id.clone(),
                        topic: cmd.topic,
                        created_on: crate::ids::fmt_ms(now),
                        created_by_communication_identifier: model::Cim::from_raw(&cmd.creator),
                        metadata: (!cmd.metadata.is_empty()).then_some(cmd.metadata),
                        retention_policy: cmd.retention,
                        deleted_on: None,
                    },
                    invalid_participants: invalid,
                };
                let replay = Replay {
                    status: 201,
                    body: serde_json::to_string(&result).map_err(ApiError::internal)?,
                    location: Some(cmd.location),
                };
                store_idem(c, &cmd.idem, &replay)?;
                let props = events::properties(&thread.topic, &cmd_metadata, &cmd_retention);
                let members = added_members(&added, added_at.2);
                let ps: Vec<EventParticipant> = members.iter().map(|(u, m)| m.p(u)).collect();
                let change = Change::of(&thread, &cmd.request_id, now);
                hooks::thread_created(ob, &change, &cmd.creator, &thread.topic, &cmd_metadata, &ps);
                Ok((replay, members, now, props, cmd.creator))
            },
            |act, (_, members, at, props, creator)| {
                act.state = State::Live {
                    current: members.len(),
                    members: members.iter().cloned().collect(),
                };
                let ps: Vec<EventParticipant> = members.iter().map(|(u, m)| m.p(u)).collect();
                let e = events::thread_created(&act.id, *at, props.clone(), &ps, &act.p(creator));
                act.publish_current(&e);
                metrics::counter!(crate::metrics::THREADS_CREATED).increment(1);
            },
        )
        .map(|r, _, _| r.map(|(replay, ..)| replay))
        .boxed_local()
        .into_atomic()
    }
}

impl Handler<UpdateThread> for ThreadActor {
    type Result = Reply<()>;

    fn handle(&mut self, cmd: UpdateThread, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        if let Err(e) = self.current_member(&cmd.user) {
            return reply(Err(e));
        }
        if cmd.is_empty() {
            return reply(Ok(()));
        }
        let id = self.id.clone();
        let current = self.current_list();
        self.commit(
            move |c, ob| {
                let now = now_ms();
                let mut t = live_thread(c, &id)?;
                let metadata = cmd.metadata.apply(&parse_metadata(&t.metadata));
                check_metadata(&metadata, model::MAX_THREAD_METADATA_BYTES, "Thread")?;
                t.metadata = metadata_json(&metadata);
                if let Some(r) = &cmd.retention {
                    t.retention = Some(serde_json::to_string(r).map_err(ApiError::internal)?);
                    t.delete_after = r.delete_after(t.created_at);
                }
                let mut seq = None;
                if let Some(topic) = &cmd.topic {
                    t.topic = topic.clone();
                    let mut cursor = Cursor::of(&t);
                    let at = cursor.next(now);
                    seq = Some(at.0);
                    messages::insert(
                        c,
                        &system_message(
                            &id,
                            at,
                            model::TOPIC_UPDATED,
                            &MessageContent {
                                topic: Some(topic.clone()),
                                initiator_communication_identifier: Some(CimOut::from_raw(
                                    &cmd.user,
                                )),
                                ..Default::default()
                            },
                        ),
                    )?;
                    cursor.save(c, &id)?;
                }
                threads::update_properties(c, &t)?;
                let retention = t
                    .retention
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok());
                let props = events::properties(&t.topic, &metadata, &retention);
                let change = Change::of(&t, &cmd.request_id, now);
                hooks::properties_updated(ob, &change, &cmd.user, &t.topic, &metadata, &current);
                Ok((now, props, seq, cmd.user))
            },
            |act, (at, props, seq, user)| {
                let e = events::thread_updated(&act.id, *at, props.clone(), &act.p(user), *seq);
                act.publish_current(&e);
            },
        )
        .map(|r, _, _| r.map(|_| ()))
        .boxed_local()
        .into_atomic()
    }
}

impl Handler<DeleteThread> for ThreadActor {
    type Result = Reply<()>;

    fn handle(&mut self, cmd: DeleteThread, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        if cmd.user == SYSTEM_ACTOR {
            if !matches!(self.state, State::Live { .. }) {
                return reply(Err(thread_not_found()));
            }
        } else if let Err(e) = self.current_member(&cmd.user) {
            return reply(Err(e));
        }
        let id = self.id.clone();
        let current = self.current_list();
        self.commit(
            move |c, ob| {
                let t = live_thread(c, &id)?;
                let now = now_ms();
                threads::mark_deleted(c, &id, now)?;
                let change = Change::of(&t, &cmd.request_id, now);
                hooks::thread_deleted(ob, &change, &cmd.user, &current);
                Ok((now, cmd.user))
            },
            |act, (at, user)| {
                let e = events::thread_deleted(&act.id, *at, &act.p(user));
                act.publish_current(&e);
                metrics::counter!(crate::metrics::THREADS_DELETED).increment(1);
                act.state = State::Deleted;
            },
        )
        .map(|r, _, _| r.map(|_| ()))
        .boxed_local()
        .into_atomic()
    }
}

/// A send waiting for the actor's next group commit, and where its answer goes.
type PendingSend = (
    SendMessage,
    tokio::sync::oneshot::Sender<Result<Replay, ApiError>>,
);

impl Handler<SendMessage> for ThreadActor {
    type Result = ResponseFuture<Result<Replay, ApiError>>;

    /// Sends are group-committed per thread: a send arriving while the thread's previous sends
    /// are being committed waits for them and then goes, with every other send that arrived
    /// meanwhile, in one writer job. Order, sequence ids and "ack after commit" are as for one
    /// send at a time; a busy thread just takes one commit per batch instead of one per message.
    fn handle(&mut self, cmd: SendMessage, ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        if let Err(e) = self.current_member(&cmd.user) {
            return Box::pin(async move { Err(e) });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending_sends.push((cmd, tx));
        if !self.sending {
            self.flush_sends(ctx);
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(ApiError::unavailable("The thread was unloaded.")))
        })
    }
}

impl ThreadActor {
    /// Commits every pending send in one writer job, then publishes them in order and answers.
    fn flush_sends(&mut self, ctx: &mut Context<Self>) {
        let mut cmds = Vec::new();
        let mut answers = Vec::new();
        for (cmd, tx) in std::mem::take(&mut self.pending_sends) {
            // membership may have changed while the send waited
            match self.current_member(&cmd.user) {
                Ok(_) => {
                    cmds.push(cmd);
                    answers.push(tx);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        }
        if cmds.is_empty() {
            return;
        }
        self.sending = true;
        let id = self.id.clone();
        let current = self.current_list();
        let commit = self.commit(
            move |c, ob| {
                let now = now_ms();
                let t = live_thread(c, &id)?;
                let mut cursor = Cursor::of(&t);
                let mut out = Vec::with_capacity(cmds.len());
                for cmd in cmds {
                    let (seq, mid, at) = cursor.next(now);
                    let message = Message {
                        thread_id: id.clone(),
                        seq,
                        id: mid,
                        kind: cmd.kind.as_str().to_string(),
                        content: Some(cmd.content),
                        system: None,
                        sender_id: Some(cmd.user),
                        sender_display_name: cmd.display_name,
                        metadata: metadata_json(&cmd.metadata),
                        priority: cmd.priority.as_str().to_string(),
                        created_at: at,
                        version: mid,
                        edited_at: None,
                        deleted_at: None,
                    };
                    messages::insert(c, &message)?;
                    let replay = Replay {
                        status: 201,
                        body: serde_json::json!({ "id": mid.to_string() }).to_string(),
                        location: Some(format!("{}{mid}", cmd.location_prefix)),
                    };
                    store_idem(c, &cmd.idem, &replay)?;
                    hooks::message(ob, MessageChange::Received, &message, &cmd.request_id, &current);
                    out.push((replay, message));
                }
                cursor.save(c, &id)?;
                Ok(out)
            },
            |act, out| {
                for (_, m) in out {
                    act.publish_current(&events::message_received(m));
                    act.hub.activity.record(&act.id);
                    metrics::counter!(crate::metrics::MESSAGES_SENT, "type" => m.kind.clone(), "priority" => m.priority.clone())
                        .increment(1);
                }
            },
        );
        ctx.spawn(commit.map(move |res, act, ctx| {
            act.sending = false;
            match res {
                Ok(out) => {
                    for ((replay, _), tx) in out.into_iter().zip(answers) {
                        let _ = tx.send(Ok(replay));
                    }
                }
                Err(e) => {
                    for tx in answers {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
            if !act.pending_sends.is_empty() {
                act.flush_sends(ctx);
            }
        }));
    }
}

/// Loads a message the caller may change: visible (else 404), not deleted (404), not a system
/// message (403), sent by the caller (403).
fn own_message(
    c: &mut DbConn,
    thread: &str,
    id: i64,
    user: &str,
    member: &Member,
) -> Result<Message, ApiError> {
    let m = messages::get(c, thread, id)?
        .filter(|m| m.deleted_at.is_none() && m.created_at >= member.share_history_time)
        .ok_or_else(|| ApiError::not_found("Message"))?;
    if m.is_system() || m.sender_id.as_deref() != Some(user) {
        return Err(ApiError::forbidden());
    }
    Ok(m)
}

impl Handler<EditMessage> for ThreadActor {
    type Result = Reply<()>;

    fn handle(&mut self, cmd: EditMessage, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        let member = match self.current_member(&cmd.user) {
            Ok(m) => m,
            Err(e) => return reply(Err(e)),
        };
        let id = self.id.clone();
        let current = self.current_list();
        self.commit(
            move |c, ob| {
                let now = now_ms();
                live_thread(c, &id)?;
                let mut m = own_message(c, &id, cmd.message_id, &cmd.user, &member)?;
                if cmd.is_empty() {
                    return Ok(None);
                }
                if let Some(content) = cmd.content {
                    m.content = Some(if m.kind == model::MessageKind::Html.as_str() {
                        ammonia::clean(&content)
                    } else {
                        content
                    });
                }
                let metadata = cmd.metadata.apply(&parse_metadata(&m.metadata));
                check_metadata(&metadata, model::MAX_MESSAGE_METADATA_BYTES, "Message")?;
                m.metadata = metadata_json(&metadata);
                if let Some(p) = cmd.priority {
                    m.priority = p.as_str().to_string();
                }
                m.version = now.max(m.version + 1);
                m.edited_at = Some(now);
                messages::update(c, &m)?;
                hooks::message(ob, MessageChange::Edited, &m, &cmd.request_id, &current);
                Ok(Some(m))
            },
            |act, m| {
                if let Some(m) = m {
                    act.publish_current(&events::message_edited(m));
                    metrics::counter!(crate::metrics::MESSAGES_EDITED).increment(1);
                }
            },
        )
        .map(|r, _, _| r.map(|_| ()))
        .boxed_local()
        .into_atomic()
    }
}

impl Handler<DeleteMessage> for ThreadActor {
    type Result = Reply<()>;

    fn handle(&mut self, cmd: DeleteMessage, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        let member = match self.current_member(&cmd.user) {
            Ok(m) => m,
            Err(e) => return reply(Err(e)),
        };
        let id = self.id.clone();
        let current = self.current_list();
        self.commit(
            move |c, ob| {
                let now = now_ms();
                live_thread(c, &id)?;
                let mut m = own_message(c, &id, cmd.message_id, &cmd.user, &member)?;
                m.content = None;
                m.metadata = "{}".into();
                m.version = now.max(m.version + 1);
                m.deleted_at = Some(now);
                messages::update(c, &m)?;
                hooks::message(ob, MessageChange::Deleted, &m, &cmd.request_id, &current);
                Ok(m)
            },
            |act, m| {
                act.publish_current(&events::message_deleted(m));
                metrics::counter!(crate::metrics::MESSAGES_DELETED).increment(1);
            },
        )
        .map(|r, _, _| r.map(|_| ()))
        .boxed_local()
        .into_atomic()
    }
}

impl Handler<AddParticipants> for ThreadActor {
    type Result = Reply<Vec<InvalidParticipant>>;

    fn handle(&mut self, cmd: AddParticipants, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        if let Err(e) = self.current_member(&cmd.user) {
            return reply(Err(e));
        }
        let id = self.id.clone();
        let resource_id = self.hub.resource_id.clone();
        let max = self.hub.config.max_participants;
        let current = self.current_ids();
        self.commit(
            move |c, ob| {
                let now = now_ms();
                let t = live_thread(c, &id)?;
                let (valid, invalid) = validate_participants(c, &resource_id, cmd.participants)?;
                // Adding a current participant does nothing (its display name is not updated).
                let new: Vec<NewParticipant> = valid
                    .into_iter()
                    .filter(|p| !current.contains(&p.raw_id))
                    .collect();
                if current.len() + new.len() > max {
                    return Err(too_many(current.len() + new.len(), max));
                }
                if new.is_empty() {
                    return Ok((invalid, Vec::new(), None, cmd.user));
                }
                let mut cursor = Cursor::of(&t);
                let at = cursor.next(now);
                let added = write_added(c, &id, &new, at)?;
                messages::insert(
                    c,
                    &system_message(
                        &id,
                        at,
                        model::PARTICIPANT_ADDED,
                        &MessageContent {
                            participants: Some(added.clone()),
                            initiator_communication_identifier: Some(CimOut::from_raw(&cmd.user)),
                            ..Default::default()
                        },
                    ),
                )?;
                cursor.save(c, &id)?;
                let members = added_members(&added, at.2);
                let ps: Vec<EventParticipant> = members.iter().map(|(u, m)| m.p(u)).collect();
                // every participant after the add
                let after: Vec<String> = current
                    .iter()
                    .cloned()
                    .chain(members.iter().map(|(u, _)| u.clone()))
                    .collect();
                let change = Change::of(&t, &cmd.request_id, at.2);
                hooks::participants_added(ob, &change, &cmd.user, &ps, &after);
                Ok((invalid, members, Some((at.0, at.2)), cmd.user))
            },
            |act, (_, added, at, user)| {
                for (u, m) in added {
                    act.set_member(u.clone(), m.clone());
                }
                if let Some((seq, at)) = at {
                    let ps: Vec<EventParticipant> = added.iter().map(|(u, m)| m.p(u)).collect();
                    let e = events::participants_added(&act.id, *at, &ps, &act.p(user), *seq);
                    // every participant after the add, the new ones included
                    act.publish_current(&e);
                    metrics::counter!(crate::metrics::PARTICIPANTS_ADDED)
                        .increment(ps.len() as u64);
                }
            },
        )
        .map(|r, _, _| r.map(|(invalid, ..)| invalid))
        .boxed_local()
        .into_atomic()
    }
}

impl Handler<RemoveParticipant> for ThreadActor {
    type Result = Reply<()>;

    fn handle(&mut self, cmd: RemoveParticipant, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        if let Err(e) = self.current_member(&cmd.user) {
            return reply(Err(e));
        }
        let Ok(target) = self.current_member(&cmd.target) else {
            // Removing someone who is not current is a no-op.
            return reply(Ok(()));
        };
        let id = self.id.clone();
        let before = self.current_list();
        let removed_p = target.p(&cmd.target);
        self.commit(
            move |c, ob| {
                let now = now_ms();
                let t = live_thread(c, &id)?;
                let row = participants::get(c, &id, &cmd.target)?
                    .ok_or_else(|| ApiError::not_found("Participant"))?;
                let mut cursor = Cursor::of(&t);
                let at = cursor.next(now);
                let removed = participant_out(
                    &row.user_id,
                    row.display_name.clone(),
                    row.share_history_time,
                    parse_metadata(&row.metadata),
                );
                messages::insert(
                    c,
                    &system_message(
                        &id,
                        at,
                        model::PARTICIPANT_REMOVED,
                        &MessageContent {
                            participants: Some(vec![removed]),
                            initiator_communication_identifier: Some(CimOut::from_raw(&cmd.user)),
                            ..Default::default()
                        },
                    ),
                )?;
                participants::mark_removed(c, &id, &cmd.target, at.2)?;
                cursor.save(c, &id)?;
                let change = Change::of(&t, &cmd.request_id, at.2);
                // every participant before the removal, the removed one included
                hooks::participant_removed(ob, &change, &cmd.user, &removed_p, &before);
                Ok((cmd.target, at, cmd.user))
            },
            move |act, (removed, (seq, _, at), by)| {
                // every participant before the removal, the removed one included; nothing after
                let e = events::participants_removed(
                    &act.id,
                    *at,
                    &[target.p(removed)],
                    &act.p(by),
                    *seq,
                );
                act.publish_current(&e);
                metrics::counter!(crate::metrics::PARTICIPANTS_REMOVED).increment(1);
                act.set_member(
                    removed.clone(),
                    Member {
                        removed_at: Some(*at),
                        ..target.clone()
                    },
                );
            },
        )
        .map(|r, _, _| r.map(|_| ()))
        .boxed_local()
        .into_atomic()
    }
}

impl Handler<SendReceipt> for ThreadActor {
    type Result = Reply<()>;

    fn handle(&mut self, cmd: SendReceipt, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        let member = match self.current_member(&cmd.user) {
            Ok(m) => m,
            Err(e) => return reply(Err(e)),
        };
        let id = self.id.clone();
        let suppressed = self.receipts_suppressed();
        self.commit(
            move |c, _ob| {
                live_thread(c, &id)?;
                // Tombstones and system messages count; messages the caller can't see don't.
                let m = messages::get(c, &id, cmd.message_id)?
                    .filter(|m| m.created_at >= member.share_history_time)
                    .ok_or_else(|| ApiError::not_found("Message"))?;
                if suppressed {
                    metrics::counter!(crate::metrics::RECEIPTS_SUPPRESSED).increment(1);
                    return Ok(None);
                }
                let existing = participants::receipt(c, &id, &cmd.user)?;
                if existing.is_some_and(|r| r.seq >= m.seq) {
                    return Ok(None);
                }
                let read_at = now_ms();
                participants::upsert_receipt(
                    c,
                    &Receipt {
                        thread_id: id.clone(),
                        user_id: cmd.user.clone(),
                        message_id: m.id,
                        seq: m.seq,
                        read_at,
                    },
                )?;
                Ok(Some((cmd.user, m.id, read_at)))
            },
            |act, moved| {
                if let Some((reader, message_id, at)) = moved {
                    let name = act.p(reader).display_name.unwrap_or_default();
                    act.publish_current(&events::read_receipt(
                        &act.id,
                        reader,
                        &name,
                        *message_id,
                        *at,
                    ));
                    metrics::counter!(crate::metrics::READ_RECEIPTS).increment(1);
                }
            },
        )
        .map(|r, _, _| r.map(|_| ()))
        .boxed_local()
        .into_atomic()
    }
}

impl Handler<Typing> for ThreadActor {
    type Result = Reply<()>;

    fn handle(&mut self, cmd: Typing, _ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        if let Err(e) = self.current_member(&cmd.user) {
            return reply(Err(e));
        }
        if self.receipts_suppressed() {
            metrics::counter!(crate::metrics::TYPING_SUPPRESSED).increment(1);
            return reply(Ok(()));
        }
        // Typing is never stored: the actor publishes and answers at once.
        let name = cmd
            .display_name
            .or_else(|| self.p(&cmd.user).display_name)
            .unwrap_or_default();
        let e = events::typing(&self.id, &cmd.user, &name, now_ms());
        let others: Vec<String> = self
            .current_list()
            .into_iter()
            .filter(|u| *u != cmd.user)
            .collect();
        self.hub.users.publish(&others, &e);
        metrics::counter!(crate::metrics::TYPING_SENT).increment(1);
        // Typing is stored only as webhook outbox rows, when a subscription wants it.
        if !self.hub.webhooks.wants(hooks::TYPING) {
            return reply(Ok(()));
        }
        let id = self.id.clone();
        let at = now_ms();
        self.commit(
            move |_c, ob| {
                let change = Change {
                    thread: &id,
                    transaction_id: &cmd.request_id,
                    create_time: 0,
                    at,
                };
                hooks::typing(ob, &change, &cmd.user, &name);
                Ok(())
            },
            |_, _| {},
        )
        .into_atomic()
    }
}
