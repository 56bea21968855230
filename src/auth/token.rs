//! User access tokens: compact HS256 JWS with ACS's claims (contract §4.4).
//!
//! The Python SDK decodes the payload with the *standard* base64 alphabet and silently drops
//! `-` and `_`, so the payload segment must contain neither. Pure-ASCII JSON without `>`, `?`,
//! `~` or DEL never produces them; the encoder still checks and lengthens `pad` until it holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How far in the future `iat` may be (clock skew between nodes).
pub const MAX_IAT_SKEW_SECS: i64 = 5 * 60;
pub const MIN_EXPIRES_MINUTES: i64 = 60;
pub const MAX_EXPIRES_MINUTES: i64 = 1440;

/// A token scope (`CommunicationIdentityTokenScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Chat,
    Voip,
    ChatJoin,
    ChatJoinLimited,
    VoipJoin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "chat" => Scope::Chat,
            "voip" => Scope::Voip,
            "chat.join" => Scope::ChatJoin,
            "chat.join.limited" => Scope::ChatJoinLimited,
            "voip.join" => Scope::VoipJoin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Chat => "chat",
            Scope::Voip => "voip",
            Scope::ChatJoin => "chat.join",
            Scope::ChatJoinLimited => "chat.join.limited",
            Scope::VoipJoin => "voip.join",
        }
    }
}

/// The claims confab puts in (and reads from) a token. Field order is the wire order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub skypeid: String,
    pub scp: i64,
    pub csi: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(rename = "acsScope")]
    pub acs_scope: String,
    #[serde(rename = "resourceId")]
    pub resource_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pad: Option<String>,
}

impl Claims {
    /// The full user id (`8:` + `skypeid`).
    pub fn user_id(&self) -> crate::ids::UserId {
        crate::ids::UserId::new(format!("8:{}", self.skypeid))
    }

    pub fn scopes(&self) -> Vec<Scope> {
        self.acs_scope
            .split(',')
            .filter_map(|s| Scope::parse(s.trim()))
            .collect()
    }
}

/// How many verified tokens [`Tokens`] remembers (emptied when full).
const VERIFIED_KEPT: usize = 4096;

/// Issues and verifies tokens for one resource.
#[derive(Clone)]
pub struct Tokens {
    secret: Vec<u8>,
    resource_id: String,
    /// Tokens whose signature and fixed claims were checked, by their whole text (signature
    /// included), with their claims: a client sends the same token with every request, and
    /// decoding, parsing and signing it again took 7 % of the HTTP workers' time in the send
    /// benchmark. A hit still checks what changes with time (expiry, `iat` skew); revocation
    /// is checked by the caller on every request either way.
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Claims>>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({})", self.resource_id)
    }
}

impl Tokens {
    /// `secret`: `--token-secret`, else derived from the primary key with [`derive_secret`].
    pub fn new(secret: Vec<u8>, resource_id: String) -> Tokens {
        Tokens {
            secret,
            resource_id,
            verified: Default::default(),
        }
    }

    /// Issues a token for `user_id` (`8:acs:…`). Returns the token and its `exp`.
    pub fn issue(&self, user_id: &str, scopes: &[Scope], iat: i64, minutes: i64) -> (String, i64) {
        let exp = iat + minutes * 60;
        let mut claims = Claims {
            skypeid: user_id.strip_prefix("8:").unwrap_or(user_id).to_string(),
            scp: 1792,
            csi: iat.to_string(),
            iat,
            exp,
            acs_scope: scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            resource_id: self.resource_id.clone(),
            pad: None,
        };
        let header = B64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let mut payload;
        loop {
            let json = serde_json::to_vec(&claims).expect("claims serialize");
            payload = B64URL.encode(json);
            if !payload.contains(['-', '_']) {
                break;
            }
            claims.pad.get_or_insert_with(String::new).push(' ');
        }
        let signing_input = format!("{header}.{payload}");
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).expect("any key length");
        mac.update(signing_input.as_bytes());
        let sig = B64URL.encode(mac.finalize().into_bytes());
        (format!("{signing_input}.{sig}"), exp)
    }

    /// Checks algorithm, signature, expiry, `iat` and resource. Identity state (deleted,
    /// revoked) is checked by the caller against the store.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let known = self
            .verified
            .lock()
            .ok()
            .and_then(|m| m.get(token).cloned());
        let c = match known {
            Some(c) => c,
            None => {
                let c = self.decode(token)?;
                if let Ok(mut m) = self.verified.lock() {
                    if m.len() >= VERIFIED_KEPT {
                        m.clear();
                    }
                    m.insert(token.to_string(), c.clone());
                }
                c
            }
        };
        if now >= c.exp || c.iat > now + MAX_IAT_SKEW_SECS {
            return None;
        }
        Some(c)
    }

    /// Checks `token`'s signature and the claims that do not change with time.
    fn decode(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.algorithms = vec![Algorithm::HS256];
        // Expiry is checked below against `now` (no leeway), not against jsonwebtoken's clock.
        v.leeway = 0;
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "iat"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.secret), &v)
                .ok()?;
        let c = data.claims;
        if c.resource_id != self.resource_id || !c.skypeid.starts_with("acs:") {
            return None;
        }
        Some(c)
    }
}

/// The default token secret: HMAC-SHA256(primary key bytes, "confab-user-token-v1").
pub fn derive_secret(primary_key: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(primary_key).expect("any key length");
    mac.update(b"confab-user-token-v1");
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RES: &str = "2b1c4a1e-0000-4000-8000-000000000001";

    /// Every payload segment is free of '-' and '_' and decodes with the standard alphabet.
    #[test]
    fn payload_has_no_url_safe_characters() {
        let t = Tokens::new(derive_secret(b"k"), RES.into());
        for i in 0..300 {
            let user = crate::ids::new_user_id(RES);
            let (tok, exp) = t.issue(&user, &[Scope::Chat, Scope::Voip], 1_795_000_000 + i, 60);
            let payload = tok.split('.').nth(1).unwrap();
            assert!(!payload.contains(['-', '_']), "{payload}");
            let json = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(payload)
                .unwrap();
            let c: Claims = serde_json::from_slice(&json).unwrap();
            assert_eq!(c.exp, exp);
            assert_eq!(c.acs_scope, "chat,voip");
        }
    }

    #[test]
    fn verify_rules() {
        let t = Tokens::new(derive_secret(b"k"), RES.into());
        let user = crate::ids::new_user_id(RES);
        let now = 1_795_000_000;
        let (tok, exp) = t.issue(&user, &[Scope::Chat], now, 60);
        assert_eq!(t.verify(&tok, now).unwrap().user_id(), user);
        assert!(t.verify(&tok, exp).is_none(), "now == exp is expired");
        let other = Tokens::new(derive_secret(b"other"), RES.into());
        assert!(other.verify(&tok, now).is_none());
        let other_res = Tokens::new(derive_secret(b"k"), "x".into());
        assert!(other_res.verify(&tok, now).is_none());
        // alg none is refused
        let parts: Vec<&str> = tok.split('.').collect();
        let none = format!(
            "{}.{}.",
            B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert!(t.verify(&none, now).is_none());
    }

    /// A remembered token is checked against the clock on every use; a token whose signature
    /// differs from a remembered one by a character is refused; the memory stays bounded.
    #[test]
    fn remembered_tokens() {
        let t = Tokens::new(derive_secret(b"k"), RES.into());
        let user = crate::ids::new_user_id(RES);
        let now = 1_795_000_000;
        let (tok, exp) = t.issue(&user, &[Scope::Chat], now, 60);
        assert!(t.verify(&tok, now).is_some());
        assert!(t.verify(&tok, now).is_some(), "again, remembered");
        assert!(t.verify(&tok, exp - 1).is_some());
        assert!(t.verify(&tok, exp).is_none(), "expired although remembered");
        assert!(
            t.verify(&tok, now - MAX_IAT_SKEW_SECS - 1).is_none(),
            "issued too far in the future although remembered"
        );
        let at = tok.len() - 10; // inside the signature
        let was = &tok[at..at + 1];
        let forged = format!(
            "{}{}{}",
            &tok[..at],
            if was == "A" { "B" } else { "A" },
            &tok[at + 1..]
        );
        assert!(t.verify(&forged, now).is_none());
        for i in 0..(VERIFIED_KEPT as i64 + 10) {
            let (tok, _) = t.issue(&user, &[Scope::Chat], now + i, 60);
            assert!(t.verify(&tok, now + i).is_some());
        }
        assert!(t.verified.lock().unwrap().len() <= VERIFIED_KEPT);
    }
}
