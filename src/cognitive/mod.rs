//! Services confab calls on behalf of clients (CONTRACT §10.3, §10.4): a translator and a
//! transcriber, each configured by flags and off without them. The operator's service, not
//! confab, does the work; confab speaks its HTTP shape, bounds the wait and turns every failure
//! into a retryable 503 for the client, never into a change of a message.
//!
//! Calls go through the webhook client (`events::client`): redirects are not followed and the
//! addresses dialled pass the same SSRF guard unless `--translator-allow-private` /
//! `--speech-allow-private`. Keys are secrets: they go in headers only and are never logged.

pub mod live;
pub mod speech;
pub mod translate;

use std::cell::RefCell;

thread_local! {
    /// One client per worker thread and guard setting (`awc::Client` stays on its thread).
    static CLIENTS: RefCell<[Option<awc::Client>; 2]> = const { RefCell::new([None, None]) };
}

/// This thread's outbound client.
fn client(allow_private: bool) -> awc::Client {
    CLIENTS.with(|c| {
        c.borrow_mut()[allow_private as usize]
            .get_or_insert_with(|| crate::events::client::client(allow_private))
            .clone()
    })
}

/// `base` with `path` appended unless it already ends with it.
fn endpoint(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(path) {
        base.to_string()
    } else {
        format!("{base}{path}")
    }
}

/// Whether `tag` looks like a BCP-47 language tag: a 2–3 letter language, then subtags of
/// 1–8 letters or digits (`en`, `pt-BR`, `zh-Hans`, `sr-Latn-RS`).
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let Some(lang) = parts.next() else {
        return false;
    };
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_alphabetic())
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for ok in ["en", "pt-BR", "zh-Hans", "sr-Latn-RS", "fil"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in [
            "",
            "e",
            "english",
            "en_US",
            "en-",
            "1a",
            "en-toolongsubtag",
            "en US",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("http://h:5000/", "/translate"),
            "http://h:5000/translate"
        );
        assert_eq!(
            endpoint("http://h/translate", "/translate"),
            "http://h/translate"
        );
    }
}
