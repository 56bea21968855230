//! Standard Webhooks signatures (contract §7.5): `whsec_` secrets, the signing keys of a
//! subscription (the old secret keeps signing during a rotation), and `webhook-signature`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::store::models::Subscription;

/// How long an old secret keeps signing after a new one is set.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// The HMAC key of a `whsec_…` secret: base64 of 24 to 64 bytes.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// `webhook-signature`: one `v1,<base64>` entry per key, space-separated.
pub fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| {
            let mut mac = Hmac::<Sha256>::new_from_slice(k).expect("HMAC takes any key length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The keys that sign for a subscription now: its secret, and the previous one during the
/// rotation overlap.
pub fn signing_keys(s: &Subscription, now: i64) -> Vec<Vec<u8>> {
    let old = s
        .old_secret
        .as_deref()
        .filter(|_| s.old_secret_until.is_some_and(|u| u > now));
    s.secret
        .as_deref()
        .into_iter()
        .chain(old)
        .filter_map(secret_key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_signature() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_24_to_64_bytes_of_base64() {
        assert!(secret_key(&format!("whsec_{}", B64.encode([7u8; 24]))).is_some());
        assert!(secret_key(&format!("whsec_{}", B64.encode([7u8; 64]))).is_some());
        assert!(secret_key(&format!("whsec_{}", B64.encode([7u8; 23]))).is_none());
        assert!(secret_key(&format!("whsec_{}", B64.encode([7u8; 65]))).is_none());
        assert!(secret_key(&B64.encode([7u8; 32])).is_none());
        assert!(secret_key("whsec_not base64!").is_none());
    }
}
