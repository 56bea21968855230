//! How committed rows travel on the cluster's event log (see `cluster::events`): the JSON of
//! a log message, the relay packing consecutive rows into messages, and each node applying a
//! row once.

// (the relay, and so packing, needs PostgreSQL)
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::events::SHIFT;
use crate::store::cluster_events;

/// Rows at most in one log message: their events are numbered below 2^[`SHIFT`].
pub(super) const ROWS_PER_MESSAGE: usize = (1 << SHIFT) / cluster_events::PACK_MAX;
/// Bytes a log message gathers rows up to (NATS refuses messages over its `max_payload`,
/// 1 MiB by default).
pub(super) const MESSAGE_BYTES: usize = 256 * 1024;
/// The header naming a log message's format: [`ROWS_FORMAT`], or none for a message written
/// by an earlier version (the events of one row: a JSON array of [`Wire`]).
pub(super) const FORMAT_HEADER: &str = "Confab-Format";
/// Several rows: `[{"row":<id>,"events":[<Wire>…]},…]`.
pub(super) const ROWS_FORMAT: &str = "rows";
/// [`ROWS_FORMAT`] compressed: an LZ4 block after its uncompressed size (4 bytes, little
/// endian). A relay writes it only while every live node reads it (see `nodes::Nodes`): the
/// events of a log message, JSON with the same keys again and again, shrink about sevenfold
/// (a send run's bus traffic: 9.5 MB/s in and 28.5 out, 1.2 and 3.7 compressed), and every
/// byte of a log message is written by JetStream and read by every node.
pub(super) const LZ4_FORMAT: &str = "rows-lz4";
/// The formats this version reads beyond the first ones (a node's entry in the node table
/// lists them; a relay writes a format only while every live node lists it).
pub const READS: &[&str] = &[LZ4_FORMAT];
/// The largest uncompressed log message a node accepts: what the relay gathers, with room.
const UNPACKED_MAX: usize = 4 * MESSAGE_BYTES;
/// Row ids a node remembers having applied: a row published twice (a hand-over, a lost
/// acknowledgement) is applied once. A second copy comes within a round or two of the
/// first, and a round publishes at most 512 rows.
pub(super) const REMEMBERED_ROWS: usize = 64 * 1024;

/// An event as it travels on JetStream (`store::cluster_events` writes them so), read in
/// place from the log message: its body stays the JSON string literal it is there (see
/// `realtime::Event::from_literal`), so a node decodes only the bodies it writes frames of.
#[derive(Deserialize)]
pub(super) struct Wire<'a> {
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub body: &'a RawValue,
    #[serde(borrow)]
    pub recipients: Vec<Cow<'a, str>>,
}

/// What a log message carries: several rows (each named), or (written by an earlier version)
/// the events of one row, named by its `Nats-Msg-Id` when it has one.
pub(super) enum Rows {
    Packed,
    One(Option<i64>),
}

/// A row of a [`Rows::Packed`] log message.
#[derive(Deserialize)]
pub(super) struct RowWire<'a> {
    row: i64,
    #[serde(borrow)]
    events: Vec<Wire<'a>>,
}

/// The ids of the last [`REMEMBERED_ROWS`] rows applied.
#[derive(Default)]
pub(super) struct Seen {
    ids: std::collections::HashSet<i64>,
    order: std::collections::VecDeque<i64>,
}

impl Seen {
    /// Whether row `id` is new (and remembers it).
    fn first_time(&mut self, id: i64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED_ROWS {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// The events of a log message's rows not applied before.
pub(super) fn unseen<'a>(
    seen: &mut Seen,
    payload: &'a [u8],
    rows: Rows,
) -> serde_json::Result<Vec<Wire<'a>>> {
    Ok(match rows {
        Rows::Packed => serde_json::from_slice::<Vec<RowWire>>(payload)?
            .into_iter()
            .filter(|r| seen.first_time(r.row))
            .flat_map(|r| r.events)
            .collect(),
        Rows::One(Some(id)) if !seen.first_time(id) => Vec::new(),
        Rows::One(_) => serde_json::from_slice::<Vec<Wire>>(payload)?,
    })
}

/// One log message carrying several rows.
pub(super) struct Pack {
    /// `Nats-Msg-Id`: names the set of rows, so that JetStream drops the very same pack
    /// published again (a round whose acknowledgement was lost, a hand-over).
    pub id: String,
    /// `[{"row":<id>,"events":[…]},…]`
    pub payload: String,
}

/// The log messages carrying `rows`, in order: consecutive rows share a message up to
/// [`ROWS_PER_MESSAGE`] rows and [`MESSAGE_BYTES`] (a bigger row goes alone).
pub(super) fn packs(rows: &[cluster_events::ClusterEvent]) -> Vec<Pack> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let mut payload = String::from("[");
        // FNV-1a over the ids
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let first = i;
        while i < rows.len()
            && i - first < ROWS_PER_MESSAGE
            && (i == first || payload.len() + rows[i].body.len() <= MESSAGE_BYTES)
        {
            let r = &rows[i];
            if i > first {
                payload.push(',');
            }
            payload.push_str("{\"row\":");
            payload.push_str(&r.id.to_string());
            payload.push_str(",\"events\":");
            if r.kind == cluster_events::PACK {
                payload.push_str(&r.body);
            } else {
                payload.push_str(&cluster_events::unpacked(r));
            }
            payload.push('}');
            for b in r.id.to_le_bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            i += 1;
        }
        payload.push(']');
        out.push(Pack {
            id: format!(
                "{}-{}-{}-{hash:016x}",
                rows[first].id,
                rows[i - 1].id,
                i - first
            ),
            payload,
        });
    }
    out
}

/// A log message's payload in [`LZ4_FORMAT`].
pub(super) fn compress(payload: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(payload)
}

/// The payload of a log message in [`LZ4_FORMAT`], uncompressed; an error for a damaged one
/// or one that says it is larger than a relay makes (nothing that large is allocated).
pub(super) fn uncompress(payload: &[u8]) -> Result<Vec<u8>, String> {
    let size = payload
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("compressed log message without its size")?;
    if size > UNPACKED_MAX {
        return Err(format!(
            "compressed log message of {size} bytes, over {UNPACKED_MAX}"
        ));
    }
    lz4_flex::decompress_size_prepended(payload).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, bodies: &[&str]) -> cluster_events::ClusterEvent {
        let events: Vec<cluster_events::NewClusterEvent> = bodies
            .iter()
            .map(|b| cluster_events::NewClusterEvent {
                kind: "chatMessageReceived".into(),
                body: b.to_string(),
                recipients: r#"["8:acs:u"]"#.into(),
                created_at: 1,
            })
            .collect();
        let packed = cluster_events::packed(&events).remove(0);
        cluster_events::ClusterEvent {
            id,
            kind: packed.kind,
            body: packed.body,
            recipients: packed.recipients,
            created_at: 1,
        }
    }

    fn bodies(events: &[Wire]) -> Vec<String> {
        events
            .iter()
            .map(|w| serde_json::from_str(w.body.get()).unwrap())
            .collect()
    }

    #[test]
    fn consecutive_rows_share_log_messages_named_by_their_set() {
        let rows: Vec<_> = (1..=20).map(|id| row(id, &[&format!("m{id}")])).collect();
        let made = packs(&rows);
        assert_eq!(made.len(), 2, "{ROWS_PER_MESSAGE} rows a message at most");
        let first: Vec<RowWire> = serde_json::from_str(&made[0].payload).unwrap();
        assert_eq!(
            first.iter().map(|r| r.row).collect::<Vec<_>>(),
            (1..=16).collect::<Vec<_>>()
        );
        assert_eq!(bodies(&first[2].events), ["m3"]);
        assert!(made[0].id.starts_with("1-16-16-"), "{}", made[0].id);
        assert!(made[1].id.starts_with("17-20-4-"), "{}", made[1].id);
        // another set of rows with the same ends and count is another message
        let other = packs(&[row(1, &["a"]), row(5, &["b"]), row(9, &["c"])]);
        let again = packs(&[row(1, &["a"]), row(6, &["b"]), row(9, &["c"])]);
        assert_ne!(other[0].id, again[0].id);
        // a row over the size a message gathers goes alone
        let big = "x".repeat(MESSAGE_BYTES);
        let alone = packs(&[row(1, &["a"]), row(2, &[&big]), row(3, &["c"])]);
        assert_eq!(alone.len(), 3);
    }

    #[test]
    fn a_row_published_twice_is_applied_once() {
        let mut seen = Seen::default();
        let payload = |rows: &[cluster_events::ClusterEvent]| packs(rows).remove(0).payload;
        let a = payload(&[row(1, &["m1"]), row(2, &["m2", "m2b"])]);
        let events = unseen(&mut seen, a.as_bytes(), Rows::Packed).unwrap();
        assert_eq!(bodies(&events), ["m1", "m2", "m2b"]);
        // a hand-over publishes row 2 again with row 3
        let b = payload(&[row(2, &["m2", "m2b"]), row(3, &["m3"])]);
        let events = unseen(&mut seen, b.as_bytes(), Rows::Packed).unwrap();
        assert_eq!(bodies(&events), ["m3"]);
        // a message of an earlier version names its row by Nats-Msg-Id
        let old = cluster_events::unpacked(&row(4, &["m4"]));
        let events = unseen(&mut seen, old.as_bytes(), Rows::One(Some(4))).unwrap();
        assert_eq!(bodies(&events), ["m4"]);
        assert!(unseen(&mut seen, old.as_bytes(), Rows::One(Some(4)))
            .unwrap()
            .is_empty());
        // and is applied when it names none
        let events = unseen(&mut seen, old.as_bytes(), Rows::One(None)).unwrap();
        assert_eq!(bodies(&events), ["m4"]);
    }

    #[test]
    fn compressed_messages_carry_the_same_rows() {
        let rows: Vec<_> = (1..=16)
            .map(|id| {
                row(
                    id,
                    &[&format!("{{\"id\":\"{id}\",\"text\":\"hello there\"}}")],
                )
            })
            .collect();
        let pack = packs(&rows).remove(0);
        let packed = compress(pack.payload.as_bytes());
        assert!(
            packed.len() * 2 < pack.payload.len(),
            "{} bytes compressed to {}",
            pack.payload.len(),
            packed.len()
        );
        let back = uncompress(&packed).unwrap();
        assert_eq!(back, pack.payload.as_bytes());
        let mut seen = Seen::default();
        let events = unseen(&mut seen, &back, Rows::Packed).unwrap();
        assert_eq!(bodies(&events).len(), 16);
        assert_eq!(bodies(&events)[2], r#"{"id":"3","text":"hello there"}"#);
    }

    #[test]
    fn damaged_or_oversized_compressed_messages_are_refused() {
        let packed = compress(packs(&[row(1, &["m1"])]).remove(0).payload.as_bytes());
        assert!(
            uncompress(&packed[..packed.len() - 3]).is_err(),
            "cut short"
        );
        assert!(uncompress(&packed[..2]).is_err(), "no size");
        let mut huge = packed.clone();
        huge[..4].copy_from_slice(&(UNPACKED_MAX as u32 + 1).to_le_bytes());
        let err = uncompress(&huge).unwrap_err();
        assert!(err.contains("over"), "{err}");
    }

    #[test]
    fn rows_are_remembered_up_to_a_bound() {
        let mut seen = Seen::default();
        for id in 0..(REMEMBERED_ROWS as i64 + 10) {
            assert!(seen.first_time(id));
        }
        assert_eq!(seen.ids.len(), REMEMBERED_ROWS);
        assert!(!seen.first_time(REMEMBERED_ROWS as i64 + 9));
        assert!(seen.first_time(0), "the oldest ids are forgotten");
    }
}
