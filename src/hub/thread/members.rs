//! Adding and removing participants.

use super::tx::*;
use super::{Commit, Member, ThreadActor};
use crate::error::ApiError;
use crate::events::chat::{self, Change};
use crate::hub::commands::*;
use crate::hub::realtime;
use crate::ids::now_ms;
use crate::ids::UserId;
use crate::model::{
    self, participant_out, CimOut, EventParticipant, InvalidParticipant, MessageContent,
};
use crate::store::{messages, parse_metadata, participants, threads};

impl ThreadActor {
    /// Adds the valid new participants with one system message; returns the invalid ones.
    pub(super) fn add_participants(
        &mut self,
        cmd: AddParticipants,
    ) -> Result<Commit<Vec<InvalidParticipant>>, ApiError> {
        self.current_member(&cmd.user)?;
        let id = self.id.clone();
        let resource_id = self.hub.resource_id.clone();
        let max = self.hub.config.max_participants;
        let current = self.current_ids();
        let by = self.p(&cmd.user);
        Ok(self.commit(
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
                    return Ok((invalid, Vec::new()));
                }
                let mut ids = Sequencer::of(&t);
                let at = ids.next(now);
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
                ids.save(c, &id)?;
                threads::bump_members(c, &id)?;
                let members = added_members(&added, at.2);
                let ps: Vec<EventParticipant> = members.iter().map(|(u, m)| m.p(u)).collect();
                // every participant after the add
                let after: Vec<UserId> = current
                    .iter()
                    .cloned()
                    .chain(members.iter().map(|(u, _)| u.clone()))
                    .collect();
                let change = Change::of(&t, &cmd.request_id, at.2);
                chat::participants_added(ob, &change, &cmd.user, &ps, &after);
                // every participant after the add, the new ones included
                ob.publish(
                    after,
                    realtime::participants_added(&id, at.2, &ps, &by, at.0),
                );
                Ok((invalid, members))
            },
            |act, (_, added)| {
                if added.is_empty() {
                    return;
                }
                for (u, m) in added {
                    act.set_member(u.clone(), m.clone());
                }
                act.members_version += 1;
                metrics::counter!(crate::metrics::PARTICIPANTS_ADDED).increment(added.len() as u64);
            },
            |(invalid, ..)| invalid,
        ))
    }

    /// Removes a current participant with a system message (a no-op for anyone else).
    pub(super) fn remove_participant(
        &mut self,
        cmd: RemoveParticipant,
    ) -> Result<Commit<()>, ApiError> {
        self.current_member(&cmd.user)?;
        let Ok(target) = self.current_member(&cmd.target) else {
            // Removing someone who is not current is a no-op.
            return Ok(self.done());
        };
        let id = self.id.clone();
        let before = self.current_list();
        let removed_p = target.p(&cmd.target);
        let by = self.p(&cmd.user);
        Ok(self.commit(
            move |c, ob| {
                let now = now_ms();
                let t = live_thread(c, &id)?;
                let row = participants::get(c, &id, &cmd.target)?
                    .ok_or_else(|| ApiError::not_found("Participant"))?;
                let mut ids = Sequencer::of(&t);
                let at = ids.next(now);
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
                ids.save(c, &id)?;
                threads::bump_members(c, &id)?;
                let change = Change::of(&t, &cmd.request_id, at.2);
                // every participant before the removal, the removed one included; nothing after
                chat::participant_removed(ob, &change, &cmd.user, &removed_p, &before);
                let e = realtime::participants_removed(
                    &id,
                    at.2,
                    std::slice::from_ref(&removed_p),
                    &by,
                    at.0,
                );
                ob.publish(before, e);
                Ok((cmd.target, at))
            },
            move |act, (removed, (_, _, at))| {
                metrics::counter!(crate::metrics::PARTICIPANTS_REMOVED).increment(1);
                act.set_member(
                    removed.clone(),
                    Member {
                        removed_at: Some(*at),
                        ..target.clone()
                    },
                );
                act.members_version += 1;
            },
            |_| (),
        ))
    }
}
