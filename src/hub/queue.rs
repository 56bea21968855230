//! A real-time session's bounded outbound queue (DESIGN invariant 6): the publisher pushes
//! frames, the session drains them when woken; past its limits the queue closes with 4008.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::realtime::Frame;

/// Why a session's queue stopped accepting frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// 4008: the client did not read fast enough.
    SlowConsumer,
    /// 4003: tokens revoked or identity deleted.
    Revoked,
    /// 1001: the server is shutting down.
    Shutdown,
}

impl CloseReason {
    pub fn code(self) -> u16 {
        match self {
            CloseReason::SlowConsumer => 4008,
            CloseReason::Revoked => 4003,
            CloseReason::Shutdown => 1001,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::Revoked => "tokens revoked or identity deleted",
            CloseReason::Shutdown => "server shutting down",
        }
    }
}

/// Limits of one session's outbound queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub frames: usize,
    pub bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            frames: 1000,
            bytes: 1024 * 1024,
        }
    }
}

struct QueueInner {
    frames: VecDeque<Frame>,
    bytes: usize,
    closed: Option<CloseReason>,
    /// A wake-up was sent and not yet consumed: don't send another.
    wake_pending: bool,
}

/// A session's bounded outbound queue. The publisher pushes; the session drains when woken.
pub struct SessionQueue {
    inner: Mutex<QueueInner>,
    limits: QueueLimits,
    wake: Box<dyn Fn() + Send + Sync>,
    /// `?lang=` of the session (CONTRACT §10.3): it also receives translations into it.
    lang: Option<Arc<str>>,
}

impl SessionQueue {
    /// `wake` is called when the queue becomes non-empty or closes.
    pub fn new(limits: QueueLimits, wake: Box<dyn Fn() + Send + Sync>) -> Arc<SessionQueue> {
        Arc::new(SessionQueue {
            inner: Mutex::new(QueueInner {
                frames: VecDeque::new(),
                bytes: 0,
                closed: None,
                wake_pending: false,
            }),
            limits,
            wake,
            lang: None,
        })
    }

    /// A queue for a session that asked for translations into `lang`.
    pub fn with_lang(
        limits: QueueLimits,
        wake: Box<dyn Fn() + Send + Sync>,
        lang: Option<Arc<str>>,
    ) -> Arc<SessionQueue> {
        let mut q = Arc::into_inner(Self::new(limits, wake)).expect("just made");
        q.lang = lang;
        Arc::new(q)
    }

    pub fn lang(&self) -> Option<&Arc<str>> {
        self.lang.as_ref()
    }

    /// Whether this session receives `event`.
    pub fn wants(&self, event: &super::realtime::Event) -> bool {
        event.is_for(self.lang.as_deref())
    }

    /// Queues a frame; on overflow the queue closes as a slow consumer. Returns false once
    /// closed.
    pub fn push(&self, frame: Frame) -> bool {
        let mut g = self.inner.lock();
        if g.closed.is_some() {
            return false;
        }
        if g.frames.len() >= self.limits.frames || g.bytes + frame.json.len() > self.limits.bytes {
            g.closed = Some(CloseReason::SlowConsumer);
            g.frames.clear();
            g.bytes = 0;
            metrics::counter!(crate::metrics::SLOW_CONSUMERS).increment(1);
        } else {
            g.bytes += frame.json.len();
            g.frames.push_back(frame);
        }
        let wake = !g.wake_pending;
        g.wake_pending = true;
        let open = g.closed.is_none();
        drop(g);
        if wake {
            (self.wake)();
        }
        open
    }

    /// Closes the queue for `reason` (the session closes when it next drains).
    pub fn close(&self, reason: CloseReason) {
        let mut g = self.inner.lock();
        if g.closed.is_none() {
            g.closed = Some(reason);
        }
        let wake = !g.wake_pending;
        g.wake_pending = true;
        drop(g);
        if wake {
            (self.wake)();
        }
    }

    /// Takes every queued frame, and the close reason if the queue closed.
    pub fn drain(&self) -> (Vec<Frame>, Option<CloseReason>) {
        let mut g = self.inner.lock();
        g.wake_pending = false;
        g.bytes = 0;
        (g.frames.drain(..).collect(), g.closed)
    }
}
