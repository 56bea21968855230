//! Per-user event streams (contract §6.2): every event delivered to a user takes the next
//! cursor `n` of that user's stream; a bounded ring (count and age) serves resume; all of a
//! user's connections (any transport) see the same events with the same cursors.
//!
//! The table is sharded by user id. Publishing takes one shard lock per recipient, appends to
//! the ring, pushes the frame into each session's bounded [`SessionQueue`] and wakes long-poll
//! waiters. An event's payload is serialized once ([`Event::body`]); only the small header
//! (type, cursor, recipient) is formatted per recipient.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::queue::{CloseReason, SessionQueue};
use super::realtime::{Event, Frame};
use crate::ids::UserId;
use crate::model::Cim;

const SHARDS: usize = 32;
/// Most events returned by one long-poll.
pub const MAX_POLL_EVENTS: usize = 100;

/// A parsed cursor `<epoch>.<n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    pub n: u64,
}

impl Cursor {
    /// Parses a client cursor; `None` if malformed (→ 400 `InvalidRequest`, target `cursor`).
    pub fn parse(s: &str) -> Option<Cursor> {
        let (epoch, n) = s.split_once('.')?;
        let ok_epoch = (8..=16).contains(&epoch.len())
            && epoch
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok_epoch || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Cursor {
            epoch: epoch.to_string(),
            n: n.parse().ok()?,
        })
    }
}

struct Stream {
    /// Whose stream it is.
    user: Box<str>,
    /// Last `n` handed out.
    head: u64,
    /// The newest `n` whose event is no longer in the ring (or the node's origin, for a user
    /// it has seen nothing of): cursors below it cannot be resumed.
    floor: u64,
    /// (n, when, the event, what it is charged against `RingLimits::bytes`)
    ring: VecDeque<(u64, Instant, Arc<Event>, usize)>,
    /// What the ring's events are charged against `RingLimits::bytes`.
    ring_bytes: usize,
    sessions: Vec<(u64, Arc<SessionQueue>)>,
    /// Long-poll waiters (woken on every new event).
    notify: Arc<Notify>,
    polls: usize,
    /// Languages long-polls asked for (`?lang=`) and when last.
    poll_langs: Vec<(Arc<str>, Instant)>,
    recipient_json: Arc<str>,
    last_used: Instant,
}

/// Ring limits: an event leaves a user's ring when any of them is passed.
#[derive(Debug, Clone, Copy)]
pub struct RingLimits {
    pub events: usize,
    pub ttl: Duration,
    /// Bytes per user: each event is charged the memory it takes in this ring ([`ring_cost`]),
    /// so that all rings together hold at most users × this.
    pub bytes: usize,
}

/// What one event costs in a ring: the entry, and this ring's share of the event's body, which
/// is allocated once and shared by the rings of all its `recipients`.
fn ring_cost(e: &Event, recipients: usize) -> usize {
    64 + e.size() / recipients.max(1)
}

/// How long a long-poll's `?lang=` keeps translations coming for its user after the poll.
const POLL_LANG_INTEREST: Duration = Duration::from_secs(120);

/// Called for a message event delivered to a user some of whose sessions asked for languages
/// (`?lang=`, CONTRACT §10.3), with those languages; it must not block.
pub type TranslateHook = Box<dyn Fn(&UserId, Vec<Arc<str>>, &Arc<Event>) + Send + Sync>;

/// Result of attaching a session or a poll at a cursor.
pub struct Attached {
    pub recovered: bool,
    /// Where following frames continue from (`<epoch>.<n>`).
    pub cursor: String,
}

/// All users' streams.
pub struct Users {
    epoch: String,
    /// Cluster mode (contract §9.2.3): `n` is the event's sequence in the cluster's event log
    /// (increasing, not consecutive), the epoch names that log, and a cursor of any node
    /// resumes here. Standalone: `n` counts each user's events.
    cluster: bool,
    /// Cluster mode: the log position this node started reading at (events before it are
    /// unknown here) and the last position applied.
    origin: AtomicU64,
    applied: AtomicU64,
    /// Cluster mode: the latest position of a stream forgotten by `sweep`; a stream made again
    /// for that user cannot vouch for anything before it.
    swept: AtomicU64,
    shards: Vec<Mutex<Shard>>,
    /// Hashes a user id once per lookup: the hash picks the shard and the stream in it.
    hasher: hashbrown::DefaultHashBuilder,
    ring: RingLimits,
    next_session: AtomicU64,
    /// Set when a translator is configured.
    translate: std::sync::OnceLock<TranslateHook>,
}

impl Users {
    pub fn new(ring: RingLimits) -> Users {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let epoch: String = (0..12)
            .map(|_| {
                let i = rng.gen_range(0..36u8);
                (if i < 10 { b'0' + i } else { b'a' + i - 10 }) as char
            })
            .collect();
        Self::with_epoch(ring, epoch, false)
    }

    /// Cluster mode: the streams of the cluster's event log named `epoch`.
    pub fn cluster(ring: RingLimits, epoch: String) -> Users {
        Self::with_epoch(ring, epoch, true)
    }

    fn with_epoch(ring: RingLimits, epoch: String, cluster: bool) -> Users {
        Users {
            epoch,
            cluster,
            origin: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            swept: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: Default::default(),
            ring,
            next_session: AtomicU64::new(1),
            translate: std::sync::OnceLock::new(),
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The shard that holds `user`'s stream, locked, and the key to find it there with: the
    /// id is hashed once, for both.
    fn lock<'u>(&self, user: &'u str) -> (parking_lot::MutexGuard<'_, Shard>, Key<'u>) {
        let key = Key {
            user,
            hash: self.hasher.hash_one(user),
        };
        // (bits the table itself does not use at any size it reaches: its buckets come from
        // the low bits and its tags from the top seven)
        let shard = self.shards[(key.hash >> 32) as usize % SHARDS].lock();
        (shard, key)
    }

    fn cursor(&self, n: u64) -> String {
        format!("{}.{n}", self.epoch)
    }

    /// The stream of `key`'s user, made if there is none (the caller holds its shard's lock).
    fn stream<'a>(&self, shard: &'a mut Shard, key: &Key) -> &'a mut Stream {
        let hasher = &self.hasher;
        shard
            .0
            .entry(key.hash, |s| key.is(s), |s| hasher.hash_one(&*s.user))
            .or_insert_with(|| {
                let start = self
                    .origin
                    .load(Ordering::Acquire)
                    .max(self.swept.load(Ordering::Acquire));
                Stream {
                    user: key.user.into(),
                    head: start,
                    floor: start,
                    ring: VecDeque::new(),
                    ring_bytes: 0,
                    sessions: Vec::new(),
                    poll_langs: Vec::new(),
                    notify: Arc::new(Notify::new()),
                    polls: 0,
                    recipient_json: serde_json::to_string(&Cim::from_raw(key.user))
                        .unwrap_or_default()
                        .into(),
                    last_used: Instant::now(),
                }
            })
            .into_mut()
    }

    /// Whether `after` can be resumed: same epoch, and every event after it is in the ring.
    /// (In cluster mode a cursor ahead of this node is fine: it was issued by a node that has
    /// read further in the log, and what follows it arrives here too.)
    fn resumable(&self, s: &Stream, after: &Option<Cursor>) -> Option<u64> {
        let c = after.as_ref()?;
        if c.epoch != self.epoch || (!self.cluster && c.n > s.head) {
            return None;
        }
        (c.n >= s.floor).then_some(c.n)
    }

    /// Where a stream stands now: its last event, or in cluster mode the log position this node
    /// has applied, whichever is later.
    fn position(&self, s: &Stream) -> u64 {
        if self.cluster {
            s.head.max(self.applied.load(Ordering::Acquire))
        } else {
            s.head
        }
    }

    fn expire(&self, s: &mut Stream, now: Instant) {
        while s.ring.len() > self.ring.events
            || s.ring_bytes > self.ring.bytes
            || s.ring
                .front()
                .is_some_and(|(_, at, _, _)| now.duration_since(*at) > self.ring.ttl)
        {
            match s.ring.pop_front() {
                Some((n, _, _, cost)) => {
                    s.floor = n;
                    s.ring_bytes -= cost;
                }
                None => break,
            }
        }
    }

    /// Cluster mode: the node starts reading the event log after `position`.
    /// Installs what asks for translations of messages for sessions with `?lang=`.
    pub fn on_languages(&self, hook: TranslateHook) {
        let _ = self.translate.set(hook);
    }

    pub fn set_origin(&self, position: u64) {
        self.origin.store(position, Ordering::Release);
        self.applied.fetch_max(position, Ordering::AcqRel);
    }

    /// Registers a session at `after`; queues the connected frame then the missed events into
    /// `queue`, all under the user's lock so nothing falls in between. Returns the session id.
    pub fn attach(
        &self,
        user: &str,
        after: &Option<Cursor>,
        queue: Arc<SessionQueue>,
        heartbeat_secs: u64,
    ) -> (u64, Attached) {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (mut map, k) = self.lock(user);
        let s = self.stream(&mut map, &k);
        self.expire(s, Instant::now());
        s.last_used = Instant::now();
        let from = self.resumable(s, after);
        if after.is_some() {
            let outcome = if from.is_some() {
                "recovered"
            } else {
                "not_recovered"
            };
            metrics::counter!(crate::metrics::RESUMES, "outcome" => outcome).increment(1);
        }
        let start = from.unwrap_or_else(|| self.position(s));
        let cursor = self.cursor(start);
        let connected = serde_json::json!({
            "type": "realTimeNotificationConnected",
            "cursor": cursor,
            "data": {"recovered": from.is_some(), "userId": user, "heartbeatSeconds": heartbeat_secs},
        })
        .to_string();
        queue.push(Frame {
            cursor: cursor.clone().into(),
            kind: "realTimeNotificationConnected",
            json: connected.into(),
        });
        if from.is_some() {
            for (n, _, e, _) in s
                .ring
                .iter()
                .filter(|(n, _, e, _)| *n > start && queue.wants(e))
            {
                let c = self.cursor(*n);
                queue.push(Frame {
                    json: e.frame(&c, &s.recipient_json).into(),
                    cursor: c.into(),
                    kind: e.kind,
                });
            }
        }
        s.sessions.push((id, queue));
        (
            id,
            Attached {
                recovered: from.is_some(),
                cursor,
            },
        )
    }

    pub fn detach(&self, user: &str, session: u64) {
        let (mut map, k) = self.lock(user);
        if let Some(s) = map.get_mut(&k) {
            s.sessions.retain(|(id, _)| *id != session);
            s.last_used = Instant::now();
        }
    }

    /// Live sessions of a user (WebSocket and SSE).
    pub fn session_count(&self, user: &str) -> usize {
        let (map, k) = self.lock(user);
        map.get(&k).map_or(0, |s| s.sessions.len())
    }

    /// Live sessions of every user (WebSocket and SSE).
    pub fn sessions_total(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().0.iter().map(|s| s.sessions.len()).sum::<usize>())
            .sum()
    }

    /// Delivers `event` to each recipient's stream (in the order given).
    pub fn publish(&self, recipients: &[UserId], event: &Arc<Event>) {
        self.deliver(recipients, event, None);
    }

    /// Cluster mode: delivers the event at position `n` of the cluster's event log (the
    /// recipients as the log message has them: no copy of each is made).
    pub fn publish_at<U: std::ops::Deref<Target = str>>(
        &self,
        recipients: &[U],
        event: &Arc<Event>,
        n: u64,
    ) {
        self.deliver(recipients, event, Some(n));
        self.applied.fetch_max(n, Ordering::AcqRel);
    }

    /// Cluster mode: the last log position applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Cluster mode: the log position `n` carried nothing for this node's users.
    pub fn skip_to(&self, n: u64) {
        self.applied.fetch_max(n, Ordering::AcqRel);
    }

    fn deliver<U: std::ops::Deref<Target = str>>(
        &self,
        recipients: &[U],
        event: &Arc<Event>,
        at: Option<u64>,
    ) {
        let now = Instant::now();
        let translatable = self.translate.get().is_some()
            && matches!(event.kind, "chatMessageReceived" | "chatMessageEdited");
        // (looked up in the registry once per event, not once per recipient)
        metrics::counter!(crate::metrics::EVENTS_DELIVERED).increment(recipients.len() as u64);
        for user in recipients {
            let (mut map, k) = self.lock(user);
            let s = self.stream(&mut map, &k);
            s.head = at.unwrap_or(s.head + 1);
            let n = s.head;
            let cost = ring_cost(event, recipients.len());
            s.ring.push_back((n, now, event.clone(), cost));
            s.ring_bytes += cost;
            self.expire(s, now);
            if !s.sessions.is_empty() {
                let c: Arc<str> = self.cursor(n).into();
                let frame = Frame {
                    json: event.frame(&c, &s.recipient_json).into(),
                    cursor: c,
                    kind: event.kind,
                };
                s.sessions
                    .retain(|(_, o)| !o.wants(event) || o.push(frame.clone()));
            }
            if s.polls > 0 {
                // (only a long-poll waits on it, and one counts in `polls` from before it
                // looks until after it stopped waiting)
                s.notify.notify_waiters();
            }
            if translatable {
                let langs = Self::languages(s, now);
                drop(map);
                if let (false, Some(hook)) = (langs.is_empty(), self.translate.get()) {
                    hook(&UserId::new(k.user), langs, event);
                }
            }
        }
    }

    /// The languages a user's sessions and recent long-polls asked for.
    fn languages(s: &mut Stream, now: Instant) -> Vec<Arc<str>> {
        s.poll_langs
            .retain(|(_, at)| now.duration_since(*at) < POLL_LANG_INTEREST);
        let mut langs: Vec<Arc<str>> = s
            .sessions
            .iter()
            .filter_map(|(_, q)| q.lang().cloned())
            .chain(s.poll_langs.iter().map(|(l, _)| l.clone()))
            .collect();
        langs.sort();
        langs.dedup();
        langs
    }

    /// Closes every session of `user` (revocation, deletion).
    pub fn close_user(&self, user: &str, reason: CloseReason) {
        let (mut map, k) = self.lock(user);
        if let Some(s) = map.get_mut(&k) {
            for (_, o) in s.sessions.drain(..) {
                o.close(reason);
            }
        }
    }

    /// Closes every session (shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        for shard in &self.shards {
            for s in shard.lock().0.iter_mut() {
                for (_, o) in s.sessions.drain(..) {
                    o.close(reason);
                }
            }
        }
    }

    /// Starts a long-poll; false when the user already has `max` polls running.
    pub fn begin_poll(&self, user: &str, max: usize) -> bool {
        let (mut map, k) = self.lock(user);
        let s = self.stream(&mut map, &k);
        if s.polls >= max {
            return false;
        }
        s.polls += 1;
        true
    }

    pub fn end_poll(&self, user: &str) {
        let (mut map, k) = self.lock(user);
        if let Some(s) = map.get_mut(&k) {
            s.polls = s.polls.saturating_sub(1);
            s.last_used = Instant::now();
        }
    }

    /// Events after `after` for a long-poll: `(attached, events)` where events are
    /// `(cursor, frame)`. When nothing is pending, also returns a `Notified` future registered
    /// *before* the lock is released, so no event can fall between the check and the wait.
    /// Called between [`Users::begin_poll`] and [`Users::end_poll`]: events wake the waiters
    /// of a user only while that user has polls running.
    pub fn poll(&self, user: &str, after: &Option<Cursor>, lang: Option<&Arc<str>>) -> PollState {
        let (mut map, k) = self.lock(user);
        let s = self.stream(&mut map, &k);
        self.expire(s, Instant::now());
        s.last_used = Instant::now();
        if let Some(l) = lang {
            s.poll_langs.retain(|(x, _)| x != l);
            s.poll_langs.push((l.clone(), Instant::now()));
        }
        let Some(from) = self.resumable(s, after) else {
            return PollState::Unrecoverable {
                head: self.cursor(self.position(s)),
            };
        };
        let events: Vec<Frame> = s
            .ring
            .iter()
            .filter(|(n, _, e, _)| *n > from && e.is_for(lang.map(|l| &**l)))
            .take(MAX_POLL_EVENTS)
            .map(|(n, _, e, _)| {
                let c = self.cursor(*n);
                Frame {
                    json: e.frame(&c, &s.recipient_json).into(),
                    cursor: c.into(),
                    kind: e.kind,
                }
            })
            .collect();
        if events.is_empty() {
            PollState::Wait {
                notify: s.notify.clone(),
                cursor: self.cursor(from),
            }
        } else {
            PollState::Ready { events }
        }
    }

    /// Forgets streams with no sessions, no polls and nothing left in the ring.
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            shard.lock().0.retain(|s| {
                self.expire(s, now);
                let keep = !(s.sessions.is_empty()
                    && s.polls == 0
                    && s.ring.is_empty()
                    && now.duration_since(s.last_used) > self.ring.ttl);
                if !keep && self.cluster {
                    self.swept.fetch_max(s.head, Ordering::AcqRel);
                }
                keep
            });
        }
    }
}

/// A user id and its hash (see [`Users::lock`]).
struct Key<'u> {
    user: &'u str,
    hash: u64,
}

impl Key<'_> {
    /// Whether `s` is this user's stream.
    fn is(&self, s: &Stream) -> bool {
        *s.user == *self.user
    }
}

/// One shard of the streams, keyed by user id.
#[derive(Default)]
struct Shard(hashbrown::HashTable<Stream>);

impl Shard {
    fn get(&self, key: &Key) -> Option<&Stream> {
        self.0.find(key.hash, |s| key.is(s))
    }

    fn get_mut(&mut self, key: &Key) -> Option<&mut Stream> {
        self.0.find_mut(key.hash, |s| key.is(s))
    }
}

/// What a long-poll finds.
pub enum PollState {
    /// The cursor can't be resumed: answer at once with the head and `recovered: false`.
    Unrecoverable { head: String },
    /// Events are pending.
    Ready { events: Vec<Frame> },
    /// Nothing pending: wait on `notify` (a `Notified` must be created before re-checking).
    Wait { notify: Arc<Notify>, cursor: String },
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
