//! Keeps webhook delivery off loopback, private, link-local and other internal addresses
//! (contract §7.6) unless `--webhook-allow-private`.
//!
//! The check runs on the addresses actually dialled: [`GuardedResolver`] is the HTTP client's
//! DNS resolver and drops blocked addresses (a name that resolves only to blocked ones fails to
//! connect), which defeats DNS rebinding. IP-literal hosts never reach a resolver, so
//! [`check_url`] checks them before every attempt.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use actix_web::http::Uri;
use futures_util::future::LocalBoxFuture;

/// Whether a destination address is refused without `--webhook-allow-private`: loopback,
/// private, link-local, shared, reserved, benchmarking and documentation ranges, and every IPv6
/// form that carries or reaches an IPv4 address (mapped, IPv4-compatible, NAT64, 6to4, Teredo)
/// when that address would be refused.
pub fn blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_v4(v4);
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                blocked_v4(Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                ))
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s[..6] == [0; 6] // ::/96, IPv4-compatible (deprecated): ::127.0.0.1
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // 64:ff9b:1::/48 local NAT64
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4] && embedded(s[6], s[7])) // NAT64
                || (s[0] == 0x2002 && embedded(s[1], s[2])) // 6to4
                || (s[0] == 0x2001 && s[1] == 0) // 2001::/32 Teredo
                || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32 documentation
                || (s[0] == 0x0100 && s[1..4] == [0; 3]) // 100::/64 discard-only
        }
    }
}

fn blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0 // 0.0.0.0/8
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 shared address space
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // 192.0.2.0/24 documentation
        || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // 198.51.100.0/24 documentation
        || (a == 203 && b == 0 && c == 113) // 203.0.113.0/24 documentation
        || a >= 240 // 240.0.0.0/4 reserved
}

/// A webhook endpoint URL that passed the static checks.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub uri: Uri,
    /// The host without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

/// Parses and checks an endpoint URL: absolute `https://` (or `http://` when private
/// destinations are allowed), a host, and no blocked IP literal.
pub fn check_url(url: &str, allow_private: bool) -> Result<Endpoint, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("endpointUrl {url:?} is not a valid absolute URL."))?;
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if allow_private => false,
        Some("http") => {
            return Err(
                "endpointUrl must use https:// (http:// needs --webhook-allow-private).".into(),
            )
        }
        _ => {
            return Err(format!(
                "endpointUrl {url:?} must be an absolute https:// URL."
            ))
        }
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("endpointUrl {url:?} has no host."))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("endpointUrl must not carry credentials.".into());
    }
    if !allow_private {
        if let Ok(ip) = host.parse::<IpAddr>() {
            if blocked(ip) {
                return Err(format!(
                    "endpointUrl resolves to {ip}, a loopback, private or link-local address."
                ));
            }
        }
    }
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    Ok(Endpoint { uri, host, port })
}

/// Resolves `host:port` and keeps the addresses that may be dialled.
pub async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let target = (host.to_string(), port);
    let name = host.to_string();
    let addrs: Vec<SocketAddr> = actix_web::rt::task::spawn_blocking(move || {
        target.to_socket_addrs().map(|a| a.collect::<Vec<_>>())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot resolve {name}: {e}"))?;
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| allow_private || !blocked(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(match addrs.first() {
            Some(a) => format!(
                "endpointUrl resolves to {}, a loopback, private or link-local address.",
                a.ip()
            ),
            None => format!("{name} has no addresses."),
        });
    }
    Ok(allowed)
}

/// The HTTP client's resolver: only allowed addresses are ever dialled.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl actix_tls::connect::Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn StdError>>> {
        Box::pin(async move {
            resolve(host, port, self.allow_private)
                .await
                .map_err(|e| -> Box<dyn StdError> { e.into() })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_ranges_and_their_mapped_forms() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            // found by the probe: IPv4-compatible, IETF, benchmarking, NAT64 and 6to4 forms
            "::127.0.0.1",
            "::8.8.8.8",
            "192.0.0.1",
            "192.0.0.170",
            "198.18.0.1",
            "198.19.255.255",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "fec0::1",
            "192.0.2.1",
            "203.0.113.9",
            "240.0.0.1",
        ] {
            assert!(blocked(ip.parse().unwrap()), "{ip} must be blocked");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "198.20.0.1",
            "192.0.1.1",
        ] {
            assert!(!blocked(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    #[test]
    fn urls_need_https_and_a_public_literal() {
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://example.com/hook", false).is_err());
        assert!(check_url("http://127.0.0.1:9/hook", true).is_ok());
        assert!(check_url("https://127.0.0.1/hook", false).is_err());
        assert!(check_url("https://[::1]:8443/", false).is_err());
        assert!(check_url("https://[::ffff:7f00:1]/", false).is_err());
        assert!(check_url("https://[::127.0.0.1]/", false).is_err());
        assert!(check_url("https://[64:ff9b::127.0.0.1]/", false).is_err());
        assert!(check_url("https://[2002:7f00:1::]/", false).is_err());
        assert!(check_url("https://198.18.0.1/", false).is_err());
        assert!(check_url("ftp://example.com/", true).is_err());
        assert!(check_url("/relative", true).is_err());
        assert_eq!(
            check_url("https://[2606:4700::1111]/x", false)
                .unwrap()
                .host,
            "2606:4700::1111"
        );
    }
}
