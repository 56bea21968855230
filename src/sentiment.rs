//! Sentiment of messages (CONTRACT §10.2): VADER, a lexicon and rule-based model for English
//! (the `vader_sentiment` crate: the lexicon is compiled in, nothing is downloaded or called).
//!
//! A score is stored as thousandths of VADER's compound score (-1000…1000), so it is exact in
//! every backend and the wire's three decimals need no rounding twice.

use std::sync::OnceLock;

use serde_json::{json, Value};

/// VADER's usual thresholds on the compound score, in thousandths.
const POSITIVE_FROM: i64 = 50;
const NEGATIVE_TO: i64 = -50;

fn analyzer() -> &'static vader_sentiment::SentimentIntensityAnalyzer<'static> {
    static A: OnceLock<vader_sentiment::SentimentIntensityAnalyzer<'static>> = OnceLock::new();
    A.get_or_init(vader_sentiment::SentimentIntensityAnalyzer::new)
}

/// Characters of plain text scored at most: a message's tone shows in its first paragraphs,
/// and the model's cost grows with the length (about 170 µs per KiB), so a 28 KiB message
/// costs no more than a 4 KiB one.
const SCORED_CHARS: usize = 4096;

/// The score of a message's content (`kind` `text` or `html`), in thousandths.
pub fn score(kind: &str, content: &str) -> i64 {
    let mut text = crate::text::plain(kind, content);
    if let Some((cut, _)) = text.char_indices().nth(SCORED_CHARS) {
        text.truncate(cut);
    }
    if text.is_empty() {
        return 0;
    }
    let compound = analyzer()
        .polarity_scores(&text)
        .get("compound")
        .copied()
        .unwrap_or(0.0);
    ((compound * 1000.0).round() as i64).clamp(-1000, 1000)
}

/// `positive`, `neutral` or `negative`.
pub fn label(milli: i64) -> &'static str {
    if milli >= POSITIVE_FROM {
        "positive"
    } else if milli <= NEGATIVE_TO {
        "negative"
    } else {
        "neutral"
    }
}

/// The wire form: `{"score": -1.0…1.0 (3 decimals), "label"}`.
pub fn to_json(milli: i64) -> Value {
    json!({ "score": milli as f64 / 1000.0, "label": label(milli) })
}

/// Counts a scored message or edit (`confab_messages_sentiment_total{label}`).
pub fn count(milli: Option<i64>) {
    if let Some(m) = milli {
        metrics::counter!(crate::metrics::MESSAGES_SENTIMENT, "label" => label(m)).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_sentences_get_their_labels() {
        let good = score("text", "I love this, it is wonderful and great!");
        let bad = score("text", "This is terrible, I hate it and I am very angry.");
        let plain = score("text", "The meeting is at 3 pm in room 4.");
        assert_eq!(label(good), "positive", "{good}");
        assert_eq!(label(bad), "negative", "{bad}");
        assert_eq!(label(plain), "neutral", "{plain}");
        assert!(score("html", "<p>I <b>love</b> it &amp; it is great</p>") > 500);
        assert_eq!(score("html", "<p> </p>"), 0);
        assert_eq!(to_json(-512)["score"], -0.512);
    }
}
