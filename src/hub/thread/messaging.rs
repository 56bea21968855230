//! Sending (group-committed), editing and deleting messages.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::tx::*;
use super::{cache_refusal, thread_not_found, Commit, ThreadActor};
use crate::error::ApiError;
use crate::events::chat::{self, MessageChange};
use crate::hub::commands::*;
use crate::hub::realtime;
use crate::ids::now_ms;
use crate::model::{self, check_metadata};
use crate::store::appends::Append;
use crate::store::models::Message;
use crate::store::{messages, metadata_json, parse_metadata};

/// Cluster mode: how long a thread's sends lock its row first, instead of trusting the actor's
/// hint, after a commit found that another node had written the thread meanwhile.
const CONTENDED_FOR: Duration = Duration::from_secs(2);

/// A send waiting for the actor's next group commit, and where its answer goes.
pub(super) type PendingSend = (
    SendMessage,
    tokio::sync::oneshot::Sender<Result<Replay, ApiError>>,
);

impl Handler<SendMessage> for ThreadActor {
    type Result = ResponseActFuture<Self, Result<Replay, ApiError>>;

    /// Sends are group-committed per thread: a send arriving while the thread's previous sends
    /// are being committed waits for them and then goes, with every other send that arrived
    /// meanwhile, in one writer job. Order, sequence ids and "ack after commit" are as for one
    /// send at a time; a busy thread just takes one commit per batch instead of one per message.
    fn handle(&mut self, cmd: SendMessage, ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        match self.current_member(&cmd.user) {
            Ok(_) => Box::pin(self.enqueue(cmd, ctx).into_actor(self)),
            // cluster mode: the cache's refusal is checked against the database first
            Err(e) if self.hub.config.cluster && cache_refusal(&e) => {
                Box::pin(self.load().into_actor(self).then(move |res, act, ctx| {
                    let checked = res
                        .map(|l| act.loaded(l))
                        .and_then(|()| act.current_member(&cmd.user));
                    match checked {
                        Ok(_) => Box::pin(act.enqueue(cmd, ctx).into_actor(act)),
                        Err(e) => Box::pin(fut::ready(Err(e))) as ResponseActFuture<Self, _>,
                    }
                }))
            }
            Err(e) => Box::pin(fut::ready(Err(e))),
        }
    }
}

impl ThreadActor {
    /// Queues a send for the next group commit; the future is its answer.
    fn enqueue(
        &mut self,
        cmd: SendMessage,
        ctx: &mut Context<Self>,
    ) -> impl std::future::Future<Output = Result<Replay, ApiError>> + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending_sends.push((cmd, tx));
        if !self.sending {
            self.flush_sends(ctx);
        }
        async move {
            rx.await
                .unwrap_or_else(|_| Err(ApiError::unavailable("The thread was unloaded.")))
        }
    }

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
        let cluster = self.hub.config.cluster;
        let contended = self
            .contended_until
            .is_some_and(|until| Instant::now() < until);
        let hint = match contended {
            false => self.last_message.map(Sequencer::position),
            true => None,
        };
        let epoch = self.epoch;
        // cluster mode: kept to run them again if another node moved the membership on
        let again = cluster.then(|| cmds.clone());
        let recipients: std::sync::Arc<[crate::ids::UserId]> = current.clone().into();
        let to = recipients.clone();
        // given the hint, a send runs a statement only to store an idempotency record, or
        // the webhook rows of its events
        let quiet = (hint.is_some() && cmds.iter().all(|c| c.idem.is_none()))
            .then_some(&chat::SEND_EVENT_TYPES[..]);
        let commit = self.commit_with(
            true,
            cluster && hint.is_some(),
            quiet,
            move |c, ob, appends| {
                let now = now_ms();
                let start = appends.claim(c, &id, hint)?.ok_or_else(thread_not_found)?;
                // cluster mode: another node wrote the thread since this actor's last commit
                let stale = cluster && hint.is_some_and(|h| h != start);
                let mut ids = Sequencer::at(start);
                let mut out = Vec::with_capacity(cmds.len());
                let mut rows = Vec::with_capacity(cmds.len());
                for cmd in cmds {
                    let (seq, mid, at) = ids.next(now);
                    let message = Message {
                        thread_id: id.to_string(),
                        seq,
                        id: mid,
                        kind: cmd.kind.as_str().to_string(),
                        content: Some(cmd.content),
                        system: None,
                        sender_id: Some(cmd.user.to_string()),
                        sender_display_name: cmd.display_name,
                        metadata: metadata_json(&cmd.metadata),
                        priority: cmd.priority.as_str().to_string(),
                        created_at: at,
                        version: mid,
                        edited_at: None,
                        deleted_at: None,
                        sentiment: cmd.sentiment,
                    };
                    let replay = Replay {
                        status: 201,
                        body: serde_json::json!({ "id": mid.to_string() }).to_string(),
                        location: Some(format!("{}{mid}", cmd.location_prefix)),
                    };
                    store_idem(c, &cmd.idem, &replay)?;
                    chat::message(ob, MessageChange::Received, &message, &cmd.request_id, &current);
                    // a cluster node's events belong to the transaction; a standalone node
                    // builds them after the commit, on the actor, off the one writer thread
                    if cluster {
                        ob.publish(to.clone(), realtime::message_received(&message));
                    }
                    out.push((replay, message.clone()));
                    rows.push(message);
                }
                appends.push(
                    c,
                    Append {
                        thread: id.clone(),
                        from: start,
                        to: ids.position(),
                        messages: rows,
                        members_version: None,
                    },
                )?;
                Ok((out, ids, stale))
            },
            move |act, (out, ids, stale)| {
                if act.epoch == epoch {
                    act.last_message = Some(*ids);
                }
                if *stale {
                    act.contended_until = Some(Instant::now() + CONTENDED_FOR);
                }
                for (_, m) in out {
                    if !cluster {
                        // in commit order, where `commit_with` publishes the job's own events
                        act.deliver(&recipients, &realtime::message_received(m));
                    }
                    crate::sentiment::count(m.sentiment);
                    if let Some(score) = m.sentiment {
                        act.hub
                            .activity
                            .record_sentiment(&act.id, crate::sentiment::label(score) == "negative");
                    }
                    act.hub.activity.record(&act.id);
                    if let Some(sender) = &m.sender_id {
                        act.hub.activity.record_sender(sender);
                    }
                    metrics::counter!(crate::metrics::MESSAGES_SENT, "type" => m.kind.clone(), "priority" => m.priority.clone())
                        .increment(1);
                }
            },
            |(out, _, _)| out,
        );
        ctx.spawn(commit.then(move |res, act, _| {
            let moved = matches!(&res, Err(e) if e.is_membership_moved());
            match (res, again) {
                // cluster mode: reload, then the same sends go first in the next commit, each
                // checked against the fresh membership
                (Err(_), Some(cmds)) if moved => {
                    let retry: Vec<PendingSend> = cmds.into_iter().zip(answers).collect();
                    return Box::pin(act.load().into_actor(act).map(move |l, act, ctx| {
                        act.sending = false;
                        match l {
                            Ok(l) => {
                                act.loaded(l);
                                let later = std::mem::replace(&mut act.pending_sends, retry);
                                act.pending_sends.extend(later);
                            }
                            Err(e) => {
                                for (_, tx) in retry {
                                    let _ = tx.send(Err(e.clone()));
                                }
                            }
                        }
                        if !act.pending_sends.is_empty() {
                            act.flush_sends(ctx);
                        }
                    }))
                        as std::pin::Pin<Box<dyn ActorFuture<Self, Output = ()>>>;
                }
                (Ok(out), _) => {
                    for ((replay, _), tx) in out.into_iter().zip(answers) {
                        let _ = tx.send(Ok(replay));
                    }
                }
                (Err(e), _) => {
                    for tx in answers {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
            Box::pin(fut::ready(()).map(
                |(), act: &mut ThreadActor, ctx: &mut Context<ThreadActor>| {
                    act.sending = false;
                    if !act.pending_sends.is_empty() {
                        act.flush_sends(ctx);
                    }
                },
            ))
        }));
    }

    /// Edits the caller's own message: content (sanitized if html), metadata, priority.
    pub(super) fn edit_message(&mut self, cmd: EditMessage) -> Result<Commit<()>, ApiError> {
        let member = self.current_member(&cmd.user)?;
        let id = self.id.clone();
        let current = self.current_list();
        let sentiment = self.hub.config.sentiment;
        Ok(self.commit(
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
                // an edit is rescored whatever it changed (edits are rare: scored here)
                if sentiment {
                    let content = m.content.as_deref().unwrap_or_default();
                    m.sentiment = Some(crate::sentiment::score(&m.kind, content));
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
                chat::message(ob, MessageChange::Edited, &m, &cmd.request_id, &current);
                ob.publish(current, realtime::message_edited(&m));
                Ok(Some(m))
            },
            |_, m| {
                if let Some(m) = m {
                    metrics::counter!(crate::metrics::MESSAGES_EDITED).increment(1);
                    crate::sentiment::count(m.sentiment);
                }
            },
            |_| (),
        ))
    }

    /// Leaves a tombstone of the caller's own message.
    pub(super) fn delete_message(&mut self, cmd: DeleteMessage) -> Result<Commit<()>, ApiError> {
        let member = self.current_member(&cmd.user)?;
        let id = self.id.clone();
        let current = self.current_list();
        Ok(self.commit(
            move |c, ob| {
                let now = now_ms();
                live_thread(c, &id)?;
                let mut m = own_message(c, &id, cmd.message_id, &cmd.user, &member)?;
                m.content = None;
                m.metadata = "{}".into();
                m.sentiment = None;
                m.version = now.max(m.version + 1);
                m.deleted_at = Some(now);
                messages::update(c, &m)?;
                chat::message(ob, MessageChange::Deleted, &m, &cmd.request_id, &current);
                ob.publish(current, realtime::message_deleted(&m));
                Ok(())
            },
            |_, ()| {
                metrics::counter!(crate::metrics::MESSAGES_DELETED).increment(1);
            },
            |_| (),
        ))
    }
}
