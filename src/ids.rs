//! Identifier and time formats of the wire contract (§1).
//!
//! - thread: `19:<32 lowercase hex>@thread.v2`
//! - user: `8:acs:<resourceId>_<uuid>`
//! - message: epoch milliseconds as a decimal string, unique per thread
//! - time out: RFC 3339 UTC with exactly 3 fraction digits and `Z`

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters left as they are when an id goes into a URL path segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes an id for a path segment (`19:ab@thread.v2` → `19%3Aab%40thread.v2`).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, PATH_SEGMENT).to_string()
}

/// Percent-encodes a query value (the same unreserved set as a path segment).
pub fn encode_query(s: &str) -> String {
    encode_segment(s)
}

/// Declares a string id newtype: the raw form on the wire and in storage, a distinct type in
/// signatures so that a thread id and a user id cannot be swapped.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps a raw id as received or stored (its shape is checked where it matters).
            pub fn new(raw: impl Into<String>) -> $name {
                $name(raw.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_string())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// A thread id, `19:<32 lowercase hex>@thread.v2` when confab made it.
    ThreadId
);

string_id!(
    /// A raw user id: `8:acs:<resourceId>_<uuid>` for this resource's users, or any other
    /// identity's raw id as the contract allows (the sweeper acts as `system`).
    UserId
);

/// A new random thread id.
pub fn new_thread_id() -> ThreadId {
    ThreadId(format!("19:{}@thread.v2", uuid::Uuid::new_v4().simple()))
}

/// Whether `s` has the thread id shape. Anything else cannot name a thread (→ 404).
pub fn is_thread_id(s: &str) -> bool {
    s.strip_prefix("19:")
        .and_then(|r| r.strip_suffix("@thread.v2"))
        .is_some_and(|hex| {
            hex.len() == 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// A new user id under `resource_id`.
pub fn new_user_id(resource_id: &str) -> UserId {
    UserId(format!("8:acs:{resource_id}_{}", uuid::Uuid::new_v4()))
}

/// Whether `raw` is a user id of this resource (`8:acs:<resourceId>_<uuid>`).
pub fn is_own_user_id(raw: &str, resource_id: &str) -> bool {
    raw.strip_prefix("8:acs:")
        .and_then(|r| r.strip_prefix(resource_id))
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
}

/// Parses a message id (decimal epoch ms). Anything else cannot name a message (→ 404).
pub fn parse_message_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Formats epoch ms as `2026-11-27T11:07:47.443Z`.
pub fn fmt_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 value to epoch ms. A space where the offset sign belongs (a `+` that a
/// query string decoded to a space) is read as `+`.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let fixed;
    // (`get`: byte 19 may fall inside a multi-byte character, which no time has there)
    let s = match (s.get(..19), s.get(19..)) {
        (Some(head), Some(offset)) if offset.contains(' ') => {
            fixed = format!("{head}{}", offset.replace(' ', "+"));
            fixed.as_str()
        }
        _ => s,
    };
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc).timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzz target `ids`: a multi-byte character across byte 19 panicked.
    #[test]
    fn a_multibyte_character_at_byte_19_is_not_a_time() {
        assert_eq!(parse_time(&("\u{FFFD}".repeat(7) + "$")), None);
        assert_eq!(parse_time("2026-11-27T11:07:4é 01:00"), None);
        assert_eq!(
            parse_time("2026-11-27T11:07:47.443 01:00"),
            parse_time("2026-11-27T11:07:47.443+01:00")
        );
    }

    #[test]
    fn thread_ids() {
        let t = new_thread_id();
        assert!(is_thread_id(&t), "{t}");
        assert!(!is_thread_id(
            "19:ABCDEF00000000000000000000000000@thread.v2"
        ));
        assert!(!is_thread_id("19:abc@thread.v2"));
        assert_eq!(encode_segment("19:ab@thread.v2"), "19%3Aab%40thread.v2");
    }

    #[test]
    fn user_ids() {
        let r = "2b1c4a1e-0000-4000-8000-000000000001";
        let u = new_user_id(r);
        assert!(is_own_user_id(&u, r));
        assert!(!is_own_user_id(&u, "other"));
        assert!(!is_own_user_id("8:acs:x", r));
    }

    #[test]
    fn times() {
        assert_eq!(fmt_ms(1_795_000_000_443), "2026-11-18T11:06:40.443Z");
        assert_eq!(fmt_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_time("2026-11-18T11:06:40.443Z"),
            Some(1_795_000_000_443)
        );
        assert_eq!(
            parse_time("2026-11-18T12:06:40.443 01:00"),
            Some(1_795_000_000_443)
        );
        assert_eq!(
            parse_time("2026-11-18T12:06:40.443+01:00"),
            Some(1_795_000_000_443)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
