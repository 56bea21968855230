//! The transcriber (CONTRACT §10.4): an OpenAI-compatible `/v1/audio/transcriptions` server
//! or Azure Speech's short-audio REST API. Nothing is stored: the text goes back to the client.

use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, SpeechKind};

/// The longest a transcription may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from the transcriber.
const ANSWER_LIMIT: usize = 1024 * 1024;
/// The audio types a client may send, by media type (parameters such as `codecs` allowed).
pub const AUDIO_TYPES: [&str; 4] = ["audio/wav", "audio/webm", "audio/ogg", "audio/mpeg"];

/// What was heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub text: String,
    pub language: Option<String>,
}

pub struct Transcriber {
    url: String,
    kind: SpeechKind,
    key: Option<String>,
    region: Option<String>,
    allow_private: bool,
}

/// The media type of a `Content-Type` value, lower-cased, if it is one of [`AUDIO_TYPES`].
pub fn audio_type(content_type: &str) -> Option<&'static str> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    AUDIO_TYPES.iter().copied().find(|t| *t == essence)
}

impl Transcriber {
    /// The transcriber the flags configure, or `None` (speech off).
    pub fn from_config(config: &Config) -> Option<Transcriber> {
        let url = config.speech_url.clone().filter(|u| !u.is_empty())?;
        Some(Transcriber {
            url,
            kind: config.speech_kind,
            key: config.speech_key.as_ref().map(|k| k.expose().to_string()),
            region: config.speech_region.clone(),
            allow_private: config.speech_allow_private,
        })
    }

    /// Sends `audio` (of the full `content_type` the client gave) to the transcriber.
    pub async fn transcribe(
        &self,
        audio: bytes::Bytes,
        content_type: &str,
        language: Option<&str>,
    ) -> Result<Transcript, String> {
        let media = audio_type(content_type).ok_or("not an accepted audio type")?;
        let (url, headers, body_type, body) = match self.kind {
            SpeechKind::Openai => {
                let boundary = format!("confab-{}", uuid::Uuid::new_v4().simple());
                let ext = match media {
                    "audio/wav" => "wav",
                    "audio/webm" => "webm",
                    "audio/ogg" => "ogg",
                    _ => "mp3",
                };
                let mut fields = vec![("model", "whisper-1".to_string())];
                if let Some(l) = language {
                    // OpenAI takes ISO-639-1: the language subtag
                    fields.push(("language", l.split('-').next().unwrap_or(l).to_string()));
                }
                let body = multipart(
                    &boundary,
                    &fields,
                    ("file", &format!("audio.{ext}"), media),
                    &audio,
                );
                let mut headers = vec![];
                if let Some(k) = &self.key {
                    headers.push(("Authorization", format!("Bearer {k}")));
                }
                (
                    super::endpoint(&self.url, "/v1/audio/transcriptions"),
                    headers,
                    format!("multipart/form-data; boundary={boundary}"),
                    body,
                )
            }
            SpeechKind::Azure => {
                let url = format!(
                    "{}?language={}&format=simple",
                    super::endpoint(
                        &self.url,
                        "/speech/recognition/conversation/cognitiveservices/v1"
                    ),
                    crate::ids::encode_query(language.unwrap_or("en-US"))
                );
                let mut headers = vec![("Accept", "application/json".to_string())];
                if let Some(k) = &self.key {
                    headers.push(("Ocp-Apim-Subscription-Key", k.clone()));
                }
                if let Some(r) = &self.region {
                    headers.push(("Ocp-Apim-Subscription-Region", r.clone()));
                }
                (url, headers, content_type.to_string(), audio)
            }
        };
        let res = crate::events::client::call(
            &super::client(self.allow_private),
            &url,
            self.allow_private,
            headers,
            &body_type,
            body,
            TIMEOUT,
            ANSWER_LIMIT,
        )
        .await?;
        if !(200..300).contains(&res.status) {
            return Err(format!("the transcriber answered {}", res.status));
        }
        let v: Value = serde_json::from_slice(&res.body)
            .map_err(|e| format!("the transcriber's answer is not JSON: {e}"))?;
        let text = parse(self.kind, &v)?;
        Ok(Transcript {
            text,
            language: language.map(str::to_string),
        })
    }
}

/// The text of an answer of `kind`; an empty recognition is an empty text.
fn parse(kind: SpeechKind, v: &Value) -> Result<String, String> {
    match kind {
        SpeechKind::Openai => v["text"]
            .as_str()
            .map(|t| t.trim().to_string())
            .ok_or_else(|| "the transcriber's answer has no text".into()),
        SpeechKind::Azure => match v["RecognitionStatus"].as_str() {
            Some("Success") => Ok(v["DisplayText"].as_str().unwrap_or_default().to_string()),
            Some("NoMatch" | "InitialSilenceTimeout" | "BabbleTimeout") => Ok(String::new()),
            Some(other) => Err(format!("the transcriber's recognition status is {other}")),
            None => Err("the transcriber's answer has no RecognitionStatus".into()),
        },
    }
}

/// A `multipart/form-data` body: text `fields`, then one file part.
fn multipart(
    boundary: &str,
    fields: &[(&str, String)],
    (name, filename, content_type): (&str, &str, &str),
    data: &[u8],
) -> bytes::Bytes {
    let mut out = Vec::with_capacity(data.len() + 512);
    for (k, v) in fields {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
             filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audio_types() {
        assert_eq!(audio_type("audio/webm;codecs=opus"), Some("audio/webm"));
        assert_eq!(audio_type("Audio/WAV"), Some("audio/wav"));
        assert_eq!(audio_type("video/webm"), None);
        assert_eq!(audio_type("audio/flac"), None);
    }

    #[test]
    fn answers_of_both_shapes() {
        assert_eq!(
            parse(SpeechKind::Openai, &json!({"text": " hello world "})),
            Ok("hello world".into())
        );
        assert!(parse(SpeechKind::Openai, &json!({"txt": 1})).is_err());
        let ok = json!({"RecognitionStatus": "Success", "DisplayText": "Hello world."});
        assert_eq!(parse(SpeechKind::Azure, &ok), Ok("Hello world.".into()));
        let silent = json!({"RecognitionStatus": "NoMatch"});
        assert_eq!(parse(SpeechKind::Azure, &silent), Ok(String::new()));
        assert!(parse(SpeechKind::Azure, &json!({"RecognitionStatus": "Error"})).is_err());
    }

    #[test]
    fn multipart_bodies() {
        let b = multipart(
            "B",
            &[("model", "m".into())],
            ("file", "a.wav", "audio/wav"),
            b"RIFF",
        );
        let s = String::from_utf8_lossy(&b);
        assert!(s.starts_with("--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n"));
        assert!(
            s.contains("filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--B--\r\n")
        );
    }
}
