//! Read receipts and typing notifications.

use super::tx::*;
use super::{Commit, ThreadActor};
use crate::error::ApiError;
use crate::events::chat::{self, Change};
use crate::hub::commands::*;
use crate::hub::realtime;
use crate::ids::now_ms;
use crate::ids::UserId;
use crate::store::models::Receipt;
use crate::store::{messages, participants};

impl ThreadActor {
    /// Moves the caller's read receipt, which is its read marker, forward (never back) and tells
    /// the caller's own sessions (`readMarkerUpdated`). Above the receipts limit the marker
    /// still moves, but no receipt is broadcast.
    pub(super) fn send_receipt(&mut self, cmd: SendReceipt) -> Result<Commit<()>, ApiError> {
        let member = self.current_member(&cmd.user)?;
        let id = self.id.clone();
        let suppressed = self.receipts_suppressed();
        let current = self.current_list();
        let name = self.p(&cmd.user).display_name.unwrap_or_default();
        Ok(self.commit(
            move |c, ob| {
                live_thread(c, &id)?;
                // Tombstones and system messages count; messages the caller can't see don't.
                let m = messages::get(c, &id, cmd.message_id)?
                    .filter(|m| m.created_at >= member.share_history_time)
                    .ok_or_else(|| ApiError::not_found("Message"))?;
                let existing = participants::receipt(c, &id, &cmd.user)?;
                if existing.is_some_and(|r| r.seq >= m.seq) {
                    if suppressed {
                        metrics::counter!(crate::metrics::RECEIPTS_SUPPRESSED).increment(1);
                    }
                    return Ok(false);
                }
                let read_at = now_ms();
                participants::upsert_receipt(
                    c,
                    &Receipt {
                        thread_id: id.to_string(),
                        user_id: cmd.user.to_string(),
                        message_id: m.id,
                        seq: m.seq,
                        read_at,
                    },
                )?;
                ob.publish(
                    vec![cmd.user.clone()],
                    realtime::read_marker(&id, m.seq, m.id, read_at),
                );
                if suppressed {
                    metrics::counter!(crate::metrics::RECEIPTS_SUPPRESSED).increment(1);
                    return Ok(false);
                }
                let e = realtime::read_receipt(&id, &cmd.user, &name, m.id, read_at);
                ob.publish(current, e);
                Ok(true)
            },
            |_, moved| {
                if *moved {
                    metrics::counter!(crate::metrics::READ_RECEIPTS).increment(1);
                }
            },
            |_| (),
        ))
    }

    /// Publishes a typing notification at once; stored only as webhook outbox rows when wanted.
    pub(super) fn typing(&mut self, cmd: Typing) -> Result<Commit<()>, ApiError> {
        self.current_member(&cmd.user)?;
        if self.receipts_suppressed() {
            metrics::counter!(crate::metrics::TYPING_SUPPRESSED).increment(1);
            return Ok(self.done());
        }
        // Typing is never stored: the actor publishes and answers at once.
        let name = cmd
            .display_name
            .or_else(|| self.p(&cmd.user).display_name)
            .unwrap_or_default();
        let e = realtime::typing(&self.id, &cmd.user, &name, now_ms());
        let others: Vec<UserId> = self
            .current_list()
            .into_iter()
            .filter(|u| *u != cmd.user)
            .collect();
        let wanted = self.hub.webhooks.wants(chat::TYPING);
        let cluster = self.hub.config.cluster;
        if !cluster {
            // one writer: the cache is the truth, and typing need not wait for anything
            self.hub.users.publish(&others, &e);
            metrics::counter!(crate::metrics::TYPING_SENT).increment(1);
            if !wanted {
                return Ok(self.done());
            }
        }
        // Typing is stored only as webhook outbox rows, when a subscription wants it. In
        // cluster mode it is published once the (empty) job has checked membership under the
        // thread row's lock: a participant removed on another node must not be heard.
        let id = self.id.clone();
        let at = now_ms();
        Ok(self.commit(
            move |_c, ob| {
                if wanted {
                    let change = Change {
                        thread: &id,
                        transaction_id: &cmd.request_id,
                        create_time: 0,
                        at,
                    };
                    chat::typing(ob, &change, &cmd.user, &name);
                }
                if cluster {
                    ob.publish(others, e);
                }
                Ok(())
            },
            move |_, _| {
                if cluster {
                    metrics::counter!(crate::metrics::TYPING_SENT).increment(1);
                }
            },
            |()| (),
        ))
    }
}
