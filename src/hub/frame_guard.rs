//! Bounds what a WebSocket client can make the server buffer.
//!
//! actix's WebSocket stream reads every byte the socket has ready into one buffer before it
//! decodes a frame, so the codec's frame-size limit applies only once the sender pauses: a client
//! that declares a frame of 2^63−1 bytes and keeps streaming is buffered without bound. This
//! guard sits between the request payload and that stream. It follows frame boundaries as the
//! bytes pass and hands on at most one frame at a time (pausing after each, so the codec decodes
//! it before more is read), and it stops reading at the header of a frame over the limit.
//!
//! The codec itself raises `Overflow` only once a whole oversized frame has arrived, so in place
//! of that header the guard hands on one the codec refuses at once: a 64-bit length with its most
//! significant bit set, which RFC 6455 §5.2 forbids. The session then closes with 1009.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::web::Bytes;
use futures_util::Stream;

/// Where the guard is in the client's byte stream.
#[derive(Debug, Default)]
struct Framing {
    /// Bytes of a header not yet complete.
    header: Vec<u8>,
    /// Payload bytes still to come in the current frame.
    remaining: u64,
}

/// What one step over a chunk found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The first `n` bytes end a frame.
    FrameEnd(usize),
    /// All the bytes belong to a frame (or header) still incomplete.
    Partial,
    /// The first `n` bytes end the header of a frame longer than the limit.
    TooLarge(usize),
}

impl Framing {
    /// The header's full length once its first two bytes are known.
    fn header_len(&self) -> Option<usize> {
        let b1 = *self.header.get(1)?;
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        Some(2 + ext + mask)
    }

    /// The payload length a complete header declares.
    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7f {
            126 => u16::from_be_bytes([self.header[2], self.header[3]]) as u64,
            127 => u64::from_be_bytes(self.header[2..10].try_into().expect("8 bytes")),
            n => n as u64,
        }
    }

    /// Walks `bytes` from the start: up to the end of the first frame that ends in them.
    fn step(&mut self, bytes: &[u8], max: usize) -> Step {
        let mut i = 0;
        while i < bytes.len() {
            if self.remaining > 0 {
                let take = self.remaining.min((bytes.len() - i) as u64);
                i += take as usize;
                self.remaining -= take;
                if self.remaining == 0 {
                    return Step::FrameEnd(i);
                }
                continue;
            }
            self.header.push(bytes[i]);
            i += 1;
            if self.header_len() != Some(self.header.len()) {
                continue;
            }
            let len = self.payload_len();
            self.header.clear();
            if len > max as u64 {
                return Step::TooLarge(i);
            }
            if len == 0 {
                return Step::FrameEnd(i);
            }
            self.remaining = len;
        }
        Step::Partial
    }
}

/// A masked text frame header whose 64-bit length has the most significant bit set (RFC 6455
/// forbids it): the codec fails on it with `Overflow` without waiting for a payload.
const REFUSED: [u8; 14] = [0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The request payload, handed on a frame at a time and cut at an oversized frame's header.
pub struct FrameGuard<S> {
    inner: S,
    max: usize,
    framing: Framing,
    /// Bytes read from the socket and not yet handed on.
    held: Bytes,
    /// A frame was just handed on: let the codec decode it before reading more.
    pause: bool,
    /// An oversized header was handed on: read nothing more.
    refused: bool,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, max: usize) -> FrameGuard<S> {
        FrameGuard {
            inner,
            max,
            framing: Framing::default(),
            held: Bytes::new(),
            pause: false,
            refused: false,
        }
    }
}

impl<S, E> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.refused {
            // The session is closing with 1009; the rest of the socket is never read.
            return Poll::Pending;
        }
        if this.pause {
            this.pause = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.held.is_empty() {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => this.held = bytes,
                other => return other,
            }
            if this.held.is_empty() {
                return Poll::Ready(Some(Ok(Bytes::new())));
            }
        }
        let out = match this.framing.step(&this.held, this.max) {
            Step::Partial => std::mem::take(&mut this.held),
            Step::FrameEnd(n) => {
                this.pause = true;
                this.held.split_to(n)
            }
            Step::TooLarge(_) => {
                this.refused = true;
                this.held = Bytes::new();
                Bytes::from_static(&REFUSED)
            }
        };
        Poll::Ready(Some(Ok(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, masked: bool) -> Vec<u8> {
        let mut v = vec![0x81u8];
        let m = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => v.push(m | len as u8),
            126..=65535 => {
                v.push(m | 126);
                v.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                v.push(m | 127);
                v.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            v.extend_from_slice(&[9, 8, 7, 6]);
        }
        v.resize(v.len() + len, b'x');
        v
    }

    #[test]
    fn frames_end_where_their_headers_say() {
        for (len, masked) in [
            (0, true),
            (5, true),
            (125, false),
            (126, true),
            (4096, true),
        ] {
            let bytes = frame(len, masked);
            let mut f = Framing::default();
            assert_eq!(f.step(&bytes, 4096), Step::FrameEnd(bytes.len()), "{len}");
        }
        // two frames in one chunk: the first ends first
        let mut two = frame(3, true);
        let first = two.len();
        two.extend(frame(200, true));
        let mut f = Framing::default();
        assert_eq!(f.step(&two, 4096), Step::FrameEnd(first));
        assert_eq!(
            f.step(&two[first..], 4096),
            Step::FrameEnd(two.len() - first)
        );
    }

    #[test]
    fn headers_and_payloads_split_anywhere() {
        let bytes = frame(300, true);
        for cut in 1..bytes.len() {
            let mut f = Framing::default();
            assert_eq!(f.step(&bytes[..cut], 4096), Step::Partial, "cut at {cut}");
            assert_eq!(
                f.step(&bytes[cut..], 4096),
                Step::FrameEnd(bytes.len() - cut)
            );
        }
        // one byte at a time
        let mut f = Framing::default();
        for (i, b) in bytes.iter().enumerate() {
            let want = if i + 1 == bytes.len() {
                Step::FrameEnd(1)
            } else {
                Step::Partial
            };
            assert_eq!(f.step(&[*b], 4096), want);
        }
    }

    #[test]
    fn an_oversized_header_is_refused_before_its_payload() {
        let mut h = vec![0x81u8, 0x80 | 127];
        h.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
        h.extend_from_slice(&[1, 2, 3, 4]);
        let header_len = h.len();
        h.extend_from_slice(&[b'x'; 1000]);
        let mut f = Framing::default();
        assert_eq!(f.step(&h, 4096), Step::TooLarge(header_len));
        let mut f = Framing::default();
        assert_eq!(f.step(&frame(4097, true), 4096), Step::TooLarge(8));
    }

    #[actix_web::test]
    async fn the_stream_hands_on_one_frame_at_a_time_and_stops_at_an_oversized_one() {
        use futures_util::StreamExt;
        let mut bytes = frame(10, true);
        bytes.extend(frame(20, true));
        let oversized_at = bytes.len();
        bytes.extend(frame(5000, true));
        let chunks: Vec<Result<Bytes, ()>> = vec![Ok(Bytes::from(bytes.clone()))];
        let mut g = FrameGuard::new(futures_util::stream::iter(chunks), 4096);
        let a = g.next().await.unwrap().unwrap();
        assert_eq!(a.len(), frame(10, true).len());
        let b = g.next().await.unwrap().unwrap();
        assert_eq!(b.len(), frame(20, true).len());
        assert_eq!(oversized_at, a.len() + b.len());
        let c = g.next().await.unwrap().unwrap();
        assert_eq!(
            &c[..],
            &REFUSED[..],
            "a header the codec refuses, in place of the oversized one"
        );
        let more = tokio::time::timeout(std::time::Duration::from_millis(50), g.next()).await;
        assert!(more.is_err(), "nothing after the refused header");
    }
}
