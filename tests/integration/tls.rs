//! HTTPS with the development CA (contract §8.1).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::common::*;

/// A GET over TLS that trusts only `ca`; returns the status line and the body.
fn get_tls(addr: &str, server_name: &str, ca: &std::path::Path, path: &str) -> (String, String) {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The dev CA is written to `<data-dir>/tls/ca.pem`, the leaf covers 127.0.0.1 and
/// localhost, and HTTPS serves the same application as HTTP.
#[tokio::test]
async fn https_with_dev_ca() {
    let app = TestApp::spawn_with(&["--https-port", "0"]).await;
    let https = app.https.clone().expect("an https listener");
    let ca = app.ca.clone().expect("a development CA");
    assert!(ca.ends_with("tls/ca.pem"), "{}", ca.display());
    let addr = https.trim_start_matches("https://").to_string();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let (status, body) = tokio::task::spawn_blocking({
        let (addr, ca) = (addr.clone(), ca.clone());
        move || get_tls(&addr, "127.0.0.1", &ca, "/livez")
    })
    .await
    .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, r#"{"status":"ok"}"#);
    let (status, _) = tokio::task::spawn_blocking(move || {
        get_tls(
            &format!("127.0.0.1:{port}"),
            "localhost",
            &ca,
            "/chat/threads?api-version=2024-03-07",
        )
    })
    .await
    .unwrap();
    assert_eq!(
        status, "HTTP/1.1 401 Unauthorized",
        "the chat API answers over https"
    );
}
