//! The translator (CONTRACT §10.3): LibreTranslate or Azure Translator v3.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::config::{Config, TranslatorKind};

/// The longest a translation may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Translations kept (per message, version and language); the cache is cleared when full.
const CACHE_CAPACITY: usize = 20_000;
/// The largest answer read from the translator.
const ANSWER_LIMIT: usize = 1024 * 1024;

/// A translated text and the language the translator detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub from: String,
    pub text: String,
}

/// What identifies a translation in the cache: an edit makes a new version, so it never
/// meets a translation of the old text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub thread: String,
    pub message: i64,
    pub version: i64,
    pub to: String,
}

pub struct Translator {
    url: String,
    kind: TranslatorKind,
    key: Option<String>,
    region: Option<String>,
    allow_private: bool,
    cache: Mutex<HashMap<CacheKey, Translation>>,
}

impl Translator {
    /// The translator the flags configure, or `None` (translation off).
    pub fn from_config(config: &Config) -> Option<Translator> {
        let url = config.translator_url.clone().filter(|u| !u.is_empty())?;
        Some(Translator {
            url,
            kind: config.translator_kind,
            key: config
                .translator_key
                .as_ref()
                .map(|k| k.expose().to_string()),
            region: config.translator_region.clone(),
            allow_private: config.translator_allow_private,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A message's translation, from the cache or the translator. `html` says the text is
    /// markup (the translator keeps the tags).
    pub async fn message(
        &self,
        key: CacheKey,
        text: &str,
        html: bool,
    ) -> Result<Translation, String> {
        if let Some(t) = self.cache.lock().get(&key) {
            return Ok(t.clone());
        }
        let t = self.translate(text, html, &key.to).await.inspect_err(|e| {
            metrics::counter!(crate::metrics::TRANSLATION_FAILURES).increment(1);
            tracing::warn!(error = %e, "translation failed");
        })?;
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, t.clone());
        Ok(t)
    }

    /// One call to the translator.
    pub async fn translate(&self, text: &str, html: bool, to: &str) -> Result<Translation, String> {
        let (url, headers, body) = match self.kind {
            TranslatorKind::Libretranslate => {
                let mut body = json!({
                    "q": text, "source": "auto", "target": to,
                    "format": if html { "html" } else { "text" },
                });
                if let Some(k) = &self.key {
                    body["api_key"] = Value::from(k.as_str());
                }
                (super::endpoint(&self.url, "/translate"), vec![], body)
            }
            TranslatorKind::Azure => {
                let mut url = format!(
                    "{}?api-version=3.0&to={}",
                    super::endpoint(&self.url, "/translate"),
                    crate::ids::encode_query(to)
                );
                if html {
                    url.push_str("&textType=html");
                }
                let mut headers = vec![];
                if let Some(k) = &self.key {
                    headers.push(("Ocp-Apim-Subscription-Key", k.clone()));
                }
                if let Some(r) = &self.region {
                    headers.push(("Ocp-Apim-Subscription-Region", r.clone()));
                }
                (url, headers, json!([{ "Text": text }]))
            }
        };
        let res = crate::events::client::call(
            &super::client(self.allow_private),
            &url,
            self.allow_private,
            headers,
            "application/json",
            body.to_string().into(),
            TIMEOUT,
            ANSWER_LIMIT,
        )
        .await?;
        if !(200..300).contains(&res.status) {
            return Err(format!("the translator answered {}", res.status));
        }
        let v: Value = serde_json::from_slice(&res.body)
            .map_err(|e| format!("the translator's answer is not JSON: {e}"))?;
        parse(self.kind, &v).ok_or_else(|| "the translator's answer has no translation".into())
    }
}

/// The translation in an answer of `kind`.
fn parse(kind: TranslatorKind, v: &Value) -> Option<Translation> {
    let (text, from) = match kind {
        TranslatorKind::Libretranslate => (
            v["translatedText"].as_str()?,
            v["detectedLanguage"]["language"].as_str(),
        ),
        TranslatorKind::Azure => (
            v[0]["translations"][0]["text"].as_str()?,
            v[0]["detectedLanguage"]["language"].as_str(),
        ),
    };
    Some(Translation {
        from: from.unwrap_or("und").to_string(),
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_both_shapes() {
        let libre = json!({"translatedText": "hola", "detectedLanguage": {"confidence": 90, "language": "en"}});
        assert_eq!(
            parse(TranslatorKind::Libretranslate, &libre),
            Some(Translation {
                from: "en".into(),
                text: "hola".into()
            })
        );
        let azure = json!([{"detectedLanguage": {"language": "en", "score": 1.0},
            "translations": [{"text": "hallo", "to": "de"}]}]);
        assert_eq!(
            parse(TranslatorKind::Azure, &azure),
            Some(Translation {
                from: "en".into(),
                text: "hallo".into()
            })
        );
        assert_eq!(parse(TranslatorKind::Azure, &json!({"error": 1})), None);
        assert_eq!(parse(TranslatorKind::Libretranslate, &json!([1])), None);
    }
}
