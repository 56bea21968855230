//! What a client can hold of the server before it has proved anything: connections per client
//! address, and the time a request body may take to arrive.
//!
//! - Each public connection is counted per client address from accept until it closes. A
//!   request on a connection beyond `--max-connections-per-address` is answered 503
//!   `TooManyConnections` with `Retry-After` and the connection is closed; a connection that sends
//!   no request is closed by the 5 s header timeout. `--max-connections` caps each listener (more
//!   wait in the kernel's accept queue, holding no descriptor of ours).
//! - A request body must arrive within `--body-timeout` plus the time `--body-min-rate` allows
//!   for the bytes that have arrived: a body that stalls, or trickles slower than that, is
//!   answered 408 `RequestTimeout` and its connection closed, whether or not the client logged in.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// Open connections per client address.
#[derive(Debug, Default)]
pub struct Connections {
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
}

/// One counted connection, kept in the connection's data; uncounted when the connection closes.
#[derive(Debug)]
pub struct Counted {
    connections: Arc<Connections>,
    address: IpAddr,
    /// The connection was over the per-address limit when it was accepted.
    pub over: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut map = self.connections.per_address.lock().expect("poisoned");
        if let Some(n) = map.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.address);
            }
        }
    }
}

impl Connections {
    /// `max_per_address` 0: no limit (connections are not counted).
    pub fn new(max_per_address: usize) -> Arc<Connections> {
        Arc::new(Connections {
            per_address: Mutex::default(),
            max_per_address,
        })
    }

    /// Counts a new connection from `address`.
    pub fn accept(self: &Arc<Self>, address: IpAddr) -> Option<Counted> {
        if self.max_per_address == 0 {
            return None;
        }
        let mut map = self.per_address.lock().expect("poisoned");
        let n = map.entry(address).or_insert(0);
        *n += 1;
        Some(Counted {
            connections: self.clone(),
            address,
            over: *n > self.max_per_address,
        })
    }

    /// Open connections from `address`.
    pub fn open_from(&self, address: IpAddr) -> usize {
        let map = self.per_address.lock().expect("poisoned");
        map.get(&address).copied().unwrap_or(0)
    }
}

/// The `on_connect` hook of the public listeners: no Nagle delay, and the connection counted.
pub fn on_connect(
    connections: Arc<Connections>,
) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
    move |conn, data| {
        use actix_web::rt::net::TcpStream;
        let tcp = conn.downcast_ref::<TcpStream>().or_else(|| {
            conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
                .map(|t| t.get_ref().0)
        });
        let Some(tcp) = tcp else { return };
        let _ = tcp.set_nodelay(true);
        if let Ok(peer) = tcp.peer_addr() {
            if let Some(counted) = connections.accept(peer.ip()) {
                data.insert(counted);
            }
        }
    }
}

/// Whether `req` came on a connection beyond its address's limit.
pub fn over_connection_limit(req: &ServiceRequest) -> bool {
    req.conn_data::<Counted>().is_some_and(|c| c.over)
}

/// What became of a request body put under the deadline.
#[derive(Default)]
pub struct BodyWatch {
    /// The deadline passed before the body ended.
    pub timed_out: Cell<bool>,
    /// The body, when it was left unfinished (timed out, or not read by the handler).
    unread: RefCell<Option<Payload>>,
}

impl BodyWatch {
    /// The unfinished body, if any. Kept alive with the response, it makes the server close the
    /// connection after answering instead of waiting (without any deadline) to drain the rest
    /// of a chunked body the client may never send.
    pub fn take_unread(&self) -> Option<Payload> {
        self.unread.borrow_mut().take()
    }
}

/// A request body under a deadline: `grace` from the start, plus `1 s` per `min_rate` bytes
/// received. Past it the stream fails and `timed_out` is set.
struct BodyDeadline {
    inner: Option<Payload>,
    finished: bool,
    start: Instant,
    grace: Duration,
    min_rate: u64,
    received: u64,
    sleep: Pin<Box<Sleep>>,
    watch: Rc<BodyWatch>,
}

impl BodyDeadline {
    fn deadline(&self) -> Instant {
        let allowance = if self.min_rate == 0 {
            Duration::from_secs(24 * 3600)
        } else {
            Duration::from_secs_f64(self.received as f64 / self.min_rate as f64)
        };
        self.start + self.grace + allowance
    }
}

impl Drop for BodyDeadline {
    fn drop(&mut self) {
        if !self.finished {
            *self.watch.unread.borrow_mut() = self.inner.take();
        }
    }
}

impl Stream for BodyDeadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if this.finished || this.watch.timed_out.get() {
            return Poll::Ready(None);
        }
        match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.received += bytes.len() as u64;
                let deadline = this.deadline();
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.watch.timed_out.set(true);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body did not arrive in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finished = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

/// Puts the body of `req` (when it has one, and is not a WebSocket upgrade) under the deadline;
/// the returned watch tells afterwards what became of it.
pub fn guard_body(
    req: &mut ServiceRequest,
    grace: Duration,
    min_rate: u64,
) -> Option<Rc<BodyWatch>> {
    let headers = req.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !has_body || upgrade {
        return None;
    }
    let watch = Rc::new(BodyWatch::default());
    let start = Instant::now();
    let guarded = BodyDeadline {
        inner: Some(req.take_payload()),
        finished: false,
        start,
        grace,
        min_rate,
        received: 0,
        sleep: Box::pin(tokio::time::sleep_until(start + grace)),
        watch: watch.clone(),
    };
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(guarded);
    req.set_payload(Payload::from(stream));
    Some(watch)
}

/// A response body that keeps an unfinished request body alive until it has been sent (see
/// [`BodyWatch::take_unread`]).
pub struct Holding {
    pub body: BoxBody,
    pub _unread: Payload,
}

impl MessageBody for Holding {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_address_until_dropped() {
        let c = Connections::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = c.accept(a).unwrap();
        let second = c.accept(a).unwrap();
        let third = c.accept(a).unwrap();
        let other = c.accept(b).unwrap();
        assert!(!first.over && !second.over && third.over && !other.over);
        assert_eq!(c.open_from(a), 3);
        drop(third);
        drop(first);
        assert_eq!(c.open_from(a), 1);
        assert!(!c.accept(a).unwrap().over);
        drop((second, other));
        assert_eq!(c.open_from(a), 0);
        assert_eq!(c.open_from(b), 0);
        assert!(Connections::new(0).accept(a).is_none(), "0: no limit");
    }
}
