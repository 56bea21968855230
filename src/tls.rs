//! TLS for the public HTTPS listener (rustls 0.23 on the ring provider).
//!
//! Either the operator's `--cert`/`--key` PEM files, or a development CA and a server
//! certificate generated with rcgen on first start into `<data-dir>/tls/` (`ca.pem`,
//! `ca-key.pem`, `cert.pem`, `key.pem`) and reused afterwards, so a client that trusts `ca.pem`
//! once keeps trusting confab. The leaf is re-issued from the stored CA key when the wanted
//! subject names change (a new `--tls-san`); the CA never changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the HTTPS listener serves with.
pub struct Tls {
    pub config: rustls::ServerConfig,
    /// The development CA clients must trust (`None` with operator certificates).
    pub ca_path: Option<PathBuf>,
}

const CA_CN: &str = "confab development CA";
const SANS_FILE: &str = "sans.txt";

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, CA_CN);
    p.distinguished_name
        .push(DnType::OrganizationName, "confab");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The subject names of the development certificate: the loopback names, the bind host
/// (unless it is a wildcard address) and `--tls-san`.
pub fn dev_sans(host: &str, extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let wildcard = matches!(host, "0.0.0.0" | "::" | "");
    for s in std::iter::once(host)
        .filter(|_| !wildcard)
        .chain(extra.iter().map(String::as_str))
    {
        if !s.is_empty() && !sans.iter().any(|x| x.eq_ignore_ascii_case(s)) {
            sans.push(s.to_string());
        }
    }
    sans
}

/// Creates (or reuses) the development CA and server certificate in `dir`.
pub fn ensure_dev_certificate(
    dir: &Path,
    sans: &[String],
) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (ca_pem, ca_key_pem, cert, key) = (
        dir.join("ca.pem"),
        dir.join("ca-key.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    let wanted = sans.join("\n");
    let err = |e: rcgen::Error| format!("cannot create the development certificate: {e}");
    let ca_key = if ca_pem.exists() && ca_key_pem.exists() {
        let text = fs::read_to_string(&ca_key_pem)
            .map_err(|e| format!("cannot read {}: {e}", ca_key_pem.display()))?;
        KeyPair::from_pem(&text).map_err(err)?
    } else {
        let key = KeyPair::generate().map_err(err)?;
        let ca = ca_params().self_signed(&key).map_err(err)?;
        fs::write(&ca_pem, ca.pem())
            .map_err(|e| format!("cannot write {}: {e}", ca_pem.display()))?;
        write_private(&ca_key_pem, &key.serialize_pem())?;
        let _ = fs::remove_file(&cert);
        key
    };
    let current = fs::read_to_string(dir.join(SANS_FILE)).unwrap_or_default();
    if !(cert.exists() && key.exists() && current == wanted) {
        let issuer = Issuer::new(ca_params(), &ca_key);
        let mut params = CertificateParams::new(sans.to_vec()).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "confab development server");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().map_err(err)?;
        let leaf = params.signed_by(&leaf_key, &issuer).map_err(err)?;
        fs::write(&cert, leaf.pem())
            .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
        write_private(&key, &leaf_key.serialize_pem())?;
        fs::write(dir.join(SANS_FILE), &wanted)
            .map_err(|e| format!("cannot write {SANS_FILE}: {e}"))?;
    }
    Ok((ca_pem, cert, key))
}

/// A rustls server configuration for a PEM certificate chain and key.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("certificate and key do not fit: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS set-up for the given settings.
pub fn load(
    cert: Option<&Path>,
    key: Option<&Path>,
    dev_dir: &Path,
    sans: &[String],
) -> Result<Tls, String> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Tls {
            config: server_config(c, k)?,
            ca_path: None,
        }),
        (None, None) => {
            let (ca, c, k) = ensure_dev_certificate(dev_dir, sans)?;
            Ok(Tls {
                config: server_config(&c, &k)?,
                ca_path: Some(ca),
            })
        }
        _ => Err("--cert and --key go together".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CA is created once and reused; a new SAN re-issues only the leaf.
    #[test]
    fn dev_certificate_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let sans = dev_sans("127.0.0.1", &[]);
        assert_eq!(sans, vec!["localhost", "127.0.0.1", "::1"]);
        let (ca, cert, _) = ensure_dev_certificate(dir.path(), &sans).unwrap();
        let (ca1, cert1) = (fs::read(&ca).unwrap(), fs::read(&cert).unwrap());
        ensure_dev_certificate(dir.path(), &sans).unwrap();
        assert_eq!(fs::read(&ca).unwrap(), ca1);
        assert_eq!(fs::read(&cert).unwrap(), cert1);
        let more = dev_sans("0.0.0.0", &["chat.internal".into()]);
        assert_eq!(more, vec!["localhost", "127.0.0.1", "::1", "chat.internal"]);
        ensure_dev_certificate(dir.path(), &more).unwrap();
        assert_eq!(fs::read(&ca).unwrap(), ca1, "the CA stays");
        assert_ne!(fs::read(&cert).unwrap(), cert1, "the leaf is re-issued");
        assert!(server_config(&cert, &dir.path().join("key.pem")).is_ok());
    }
}
