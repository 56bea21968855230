//! HMAC-SHA256 access-key authentication, exactly as ACS clients sign (contract §4.2).
//!
//! ```text
//! stringToSign = VERB \n pathAndQuery \n x-ms-date;host;x-ms-content-sha256
//! Signature    = base64(HMAC-SHA256(base64decode(accessKey), stringToSign))
//! ```
//! `pathAndQuery` is the request target as received (still percent-encoded). The host may be
//! the received `Host`, `Host + "/"` (Python signs the endpoint as typed), `host:port:port`
//! (the JS policy appends the port twice) or the authority of `--public-url`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Largest accepted difference between the signed date and the server clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// The decoded access keys (primary first).
#[derive(Clone)]
pub struct AccessKeys {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessKeys({} keys)", self.keys.len())
    }
}

/// Why a signed request was refused (logged and counted; the client only sees 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacFailure {
    MissingHeader,
    Malformed,
    SignedHeaders,
    ClockSkew,
    BodyHash,
    Signature,
}

impl HmacFailure {
    pub fn reason(self) -> &'static str {
        match self {
            HmacFailure::MissingHeader => "hmac_missing_header",
            HmacFailure::Malformed => "hmac_malformed",
            HmacFailure::SignedHeaders => "hmac_signed_headers",
            HmacFailure::ClockSkew => "hmac_clock_skew",
            HmacFailure::BodyHash => "hmac_body_hash",
            HmacFailure::Signature => "hmac_signature",
        }
    }
}

/// What of a request the signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub host: &'a str,
    pub date: Option<&'a str>,
    pub content_hash: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

/// The headers that sign a request (what [`sign`] computes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `x-ms-content-sha256`: base64 of the body's SHA-256.
    pub content_hash: String,
    /// `Authorization: HMAC-SHA256 SignedHeaders=…&Signature=…`.
    pub authorization: String,
}

/// The string an access key signs.
fn string_to_sign(
    method: &str,
    path_and_query: &str,
    date: &str,
    host: &str,
    hash: &str,
) -> String {
    format!(
        "{}\n{path_and_query}\n{date};{host};{hash}",
        method.to_ascii_uppercase()
    )
}

fn mac(key: &[u8], to_sign: &str) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    mac
}

/// Signs a request as the ACS SDKs do, for `date` (an HTTP date, sent as `x-ms-date`) and
/// `host` (sent as `Host`). The load tool signs its identity requests with it.
pub fn sign(
    key: &[u8],
    method: &str,
    path_and_query: &str,
    host: &str,
    date: &str,
    body: &[u8],
) -> Signature {
    let hash = B64.encode(Sha256::digest(body));
    let to_sign = string_to_sign(method, path_and_query, date, host, &hash);
    let sig = B64.encode(mac(key, &to_sign).finalize().into_bytes());
    Signature {
        content_hash: hash,
        authorization: format!(
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"
        ),
    }
}

impl AccessKeys {
    /// Decodes base64 keys; invalid ones were refused by config validation.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> AccessKeys {
        AccessKeys {
            keys: keys
                .into_iter()
                .filter_map(|k| B64.decode(k).ok())
                .collect(),
        }
    }

    pub fn primary(&self) -> &[u8] {
        self.keys.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// Verifies a signed request against every key and host candidate.
    pub fn verify(
        &self,
        r: &SignedRequest<'_>,
        public_host: Option<&str>,
        now: i64,
    ) -> Result<(), HmacFailure> {
        let auth = r.authorization.ok_or(HmacFailure::MissingHeader)?;
        let date = r.date.ok_or(HmacFailure::MissingHeader)?;
        let hash = r.content_hash.ok_or(HmacFailure::MissingHeader)?;
        let rest = auth
            .strip_prefix("HMAC-SHA256 ")
            .ok_or(HmacFailure::Malformed)?
            .trim();
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split('&') {
            let (k, v) = part.split_once('=').ok_or(HmacFailure::Malformed)?;
            match k.trim() {
                k if k.eq_ignore_ascii_case("SignedHeaders") => signed_headers = Some(v.trim()),
                k if k.eq_ignore_ascii_case("Signature") => signature = Some(v.trim()),
                _ => return Err(HmacFailure::Malformed),
            }
        }
        let signed_headers = signed_headers.ok_or(HmacFailure::Malformed)?;
        if !signed_headers.eq_ignore_ascii_case("x-ms-date;host;x-ms-content-sha256") {
            return Err(HmacFailure::SignedHeaders);
        }
        let signature = B64
            .decode(signature.ok_or(HmacFailure::Malformed)?)
            .map_err(|_| HmacFailure::Malformed)?;
        let signed_at = httpdate::parse_http_date(date).map_err(|_| HmacFailure::Malformed)?;
        let signed_at = signed_at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if (now - signed_at).abs() > MAX_CLOCK_SKEW_SECS {
            return Err(HmacFailure::ClockSkew);
        }
        if B64.encode(Sha256::digest(r.body)) != hash {
            return Err(HmacFailure::BodyHash);
        }
        let mut hosts: Vec<String> = vec![r.host.to_string(), format!("{}/", r.host)];
        if let Some((_, port)) = r
            .host
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        {
            hosts.push(format!("{}:{port}", r.host));
        }
        if let Some(p) = public_host {
            hosts.push(p.to_string());
            hosts.push(format!("{p}/"));
        }
        for host in &hosts {
            let to_sign = string_to_sign(r.method, r.path_and_query, date, host, hash);
            for key in &self.keys {
                // verify_slice compares in constant time
                if mac(key, &to_sign).verify_slice(&signature).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(HmacFailure::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signer against an independent oracle: a signature computed with Python's hmac
    /// module for the development key.
    #[test]
    fn sign_matches_a_known_vector() {
        let key = B64.decode(crate::config::DEV_ACCESS_KEY).unwrap();
        let s = super::sign(
            &key,
            "post",
            "/identities?api-version=2023-10-01",
            "127.0.0.1:8443",
            "Wed, 18 Nov 2026 11:06:40 GMT",
            b"{}",
        );
        assert_eq!(
            s.content_hash,
            "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
        );
        assert_eq!(
            s.authorization,
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=Zi1peuQ9le1NvfPFw7BchD7caXe6Df5qLOWfQ3i+aHM="
        );
    }

    fn sign(
        key_b64: &str,
        method: &str,
        pq: &str,
        date: &str,
        host: &str,
        body: &[u8],
    ) -> (String, String) {
        let s = super::sign(&B64.decode(key_b64).unwrap(), method, pq, host, date, body);
        (s.content_hash, s.authorization)
    }

    #[test]
    fn host_forms_and_failures() {
        let key = crate::config::DEV_ACCESS_KEY;
        let keys = AccessKeys::new([key]);
        let now = 1_795_000_000;
        let date = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(now as u64),
        );
        let pq = "/identities?api-version=2023-10-01";
        for signed_host in ["127.0.0.1:8443", "127.0.0.1:8443/", "127.0.0.1:8443:8443"] {
            let (hash, auth) = sign(key, "POST", pq, &date, signed_host, b"{}");
            let r = SignedRequest {
                method: "POST",
                path_and_query: pq,
                host: "127.0.0.1:8443",
                date: Some(&date),
                content_hash: Some(&hash),
                authorization: Some(&auth),
                body: b"{}",
            };
            assert_eq!(keys.verify(&r, None, now), Ok(()), "{signed_host}");
            assert_eq!(
                keys.verify(&r, None, now + 16 * 60),
                Err(HmacFailure::ClockSkew)
            );
            let tampered = SignedRequest { body: b"{ }", ..r };
            assert_eq!(
                keys.verify(&tampered, None, now),
                Err(HmacFailure::BodyHash)
            );
        }
        let other = AccessKeys::new(["c2VjcmV0"]);
        let (hash, auth) = sign(key, "POST", pq, &date, "127.0.0.1:8443", b"");
        let r = SignedRequest {
            method: "POST",
            path_and_query: pq,
            host: "127.0.0.1:8443",
            date: Some(&date),
            content_hash: Some(&hash),
            authorization: Some(&auth),
            body: b"",
        };
        assert_eq!(other.verify(&r, None, now), Err(HmacFailure::Signature));
        let both = AccessKeys::new(["c2VjcmV0", key]);
        assert_eq!(both.verify(&r, None, now), Ok(()));
    }
}
