//! Creating, updating and deleting the thread.

use super::tx::*;
use super::{thread_not_found, Commit, State, ThreadActor};
use crate::error::ApiError;
use crate::events::chat::{self, Change};
use crate::hub::commands::*;
use crate::hub::realtime;
use crate::ids::now_ms;
use crate::model::{
    self, check_metadata, CimOut, CreateThreadResult, EventParticipant, MessageContent, Metadata,
    ThreadProperties, SYSTEM_ACTOR,
};
use crate::store::models::Thread;
use crate::store::{messages, metadata_json, parse_metadata, threads};

impl ThreadActor {
    /// Creates the thread with its creator and valid participants, and its two system messages.
    pub(super) fn create_thread(&mut self, cmd: CreateThread) -> Result<Commit<Replay>, ApiError> {
        if !matches!(self.state, State::Missing) {
            return Err(ApiError::internal(format!(
                "thread id collision on {}",
                self.id
            )));
        }
        let id = self.id.clone();
        let resource_id = self.hub.resource_id.clone();
        let max = self.hub.config.max_participants;
        Ok(self.commit(
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
                    id: id.to_string(),
                    topic: cmd.topic.clone(),
                    created_by: cmd.creator.to_string(),
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
                    members_version: 0,
                };
                let mut ids = Sequencer::of(&thread);
                let added_at = ids.next(now);
                let topic_at = ids.next(now);
                thread.last_seq = ids.seq;
                thread.last_message_id = ids.id;
                thread.last_message_at = ids.at;
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
                        id: id.to_string(),
                        topic: cmd.topic,
                        created_on: crate::ids::fmt_ms(now),
                        created_by_communication_identifier: model::Cim::from_raw(&cmd.creator),
                        metadata: (!cmd.metadata.is_empty()).then_some(cmd.metadata),
                        retention_policy: cmd.retention,
                        deleted_on: None,
                        unread_count: None,
                        last_message: None,
                    },
                    invalid_participants: invalid,
                };
                let replay = Replay {
                    status: 201,
                    body: serde_json::to_string(&result).map_err(ApiError::internal)?,
                    location: Some(cmd.location),
                };
                store_idem(c, &cmd.idem, &replay)?;
                let props = realtime::properties(&thread.topic, &cmd_metadata, &cmd_retention);
                let members = added_members(&added, added_at.2);
                let ps: Vec<EventParticipant> = members.iter().map(|(u, m)| m.p(u)).collect();
                let change = Change::of(&thread, &cmd.request_id, now);
                chat::thread_created(ob, &change, &cmd.creator, &thread.topic, &cmd_metadata, &ps);
                let creator = members
                    .iter()
                    .find(|(u, _)| *u == cmd.creator)
                    .map(|(u, m)| m.p(u))
                    .unwrap_or_else(|| EventParticipant::bare(&cmd.creator));
                // every participant of the new thread
                let to: Vec<_> = members.iter().map(|(u, _)| u.clone()).collect();
                ob.publish(to, realtime::thread_created(&id, now, props, &ps, &creator));
                Ok((replay, members))
            },
            |act, (_, members)| {
                act.members_version = 0;
                act.state = State::Live {
                    current: members.len(),
                    members: members.iter().cloned().collect(),
                };
                metrics::counter!(crate::metrics::THREADS_CREATED).increment(1);
            },
            |(replay, ..)| replay,
        ))
    }

    /// Applies a merge-patch of topic, metadata and retention; a topic change adds a system message.
    pub(super) fn update_thread(&mut self, cmd: UpdateThread) -> Result<Commit<()>, ApiError> {
        self.current_member(&cmd.user)?;
        if cmd.is_empty() {
            return Ok(self.done());
        }
        let id = self.id.clone();
        let current = self.current_list();
        let by = self.p(&cmd.user);
        Ok(self.commit(
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
                    let mut ids = Sequencer::of(&t);
                    let at = ids.next(now);
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
                    ids.save(c, &id)?;
                }
                threads::update_properties(c, &t)?;
                let retention = t
                    .retention
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok());
                let props = realtime::properties(&t.topic, &metadata, &retention);
                let change = Change::of(&t, &cmd.request_id, now);
                chat::properties_updated(ob, &change, &cmd.user, &t.topic, &metadata, &current);
                ob.publish(current, realtime::thread_updated(&id, now, props, &by, seq));
                Ok(())
            },
            |_, ()| {},
            |_| (),
        ))
    }

    /// Marks the thread deleted (by a participant, or by the retention sweeper).
    pub(super) fn delete_thread(&mut self, cmd: DeleteThread) -> Result<Commit<()>, ApiError> {
        if cmd.user == SYSTEM_ACTOR {
            if !matches!(self.state, State::Live { .. }) {
                return Err(thread_not_found());
            }
        } else {
            self.current_member(&cmd.user)?;
        }
        let id = self.id.clone();
        let current = self.current_list();
        let by = self.p(&cmd.user);
        Ok(self.commit(
            move |c, ob| {
                let t = live_thread(c, &id)?;
                let now = now_ms();
                threads::mark_deleted(c, &id, now)?;
                let change = Change::of(&t, &cmd.request_id, now);
                chat::thread_deleted(ob, &change, &cmd.user, &current);
                ob.publish(current, realtime::thread_deleted(&id, now, &by));
                Ok(())
            },
            |act, ()| {
                metrics::counter!(crate::metrics::THREADS_DELETED).increment(1);
                act.state = State::Deleted;
                // (`mark_deleted` moved the version on)
                act.members_version += 1;
            },
            |_| (),
        ))
    }
}
