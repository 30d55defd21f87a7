//! Built-in TLS on a real listener: https and wss with a client that trusts only the test's own
//! CA, plain HTTP refused, the handshake under the header deadline and the admission caps, and
//! reloads (a good one serves new connections the new certificate while old ones keep working;
//! a bad one keeps the old certificate).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

mod common;

use common::{PASSWORD, TestServer, http_on, parse_frame, read_until_closed, start_with};

/// A test CA that signs certificates for `localhost`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        Self {
            issuer: Issuer::new(params, key),
            der,
        }
    }

    /// Writes a new `localhost` certificate and its key into `dir` as `cert.pem` and `key.pem`
    /// (replacing any there); returns the certificate.
    fn issue(&self, dir: &Path) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    /// A connector that trusts this CA only.
    fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

/// A TLS server with a fresh CA and certificate in its own directory.
async fn tls_server(adjust: impl FnOnce(&mut banter_server::Config)) -> (TestServer, Ca, PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let ca = Ca::new();
    ca.issue(&dir);
    let server = start_with(|c| {
        c.tls_cert = Some(dir.join("cert.pem"));
        c.tls_key = Some(dir.join("key.pem"));
        adjust(c);
    })
    .await;
    (server, ca, dir)
}

async fn connect(addr: &str, ca: &Ca) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    ca.connector()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// The end-entity certificate the server presented.
fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

async fn healthz(stream: &mut TlsStream<TcpStream>) -> Option<(u16, String)> {
    http_on(stream, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn https_answers_a_client_that_trusts_only_the_test_ca() {
    let (server, ca, _dir) = tls_server(|_| {}).await;
    let mut stream = connect(&server.addr, &ca).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, body) = healthz(&mut stream).await.expect("a response");
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn wss_upgrade_receives_hello() {
    let (server, ca, _dir) = tls_server(|_| {}).await;
    let mut stream = connect(&server.addr, &ca).await;
    let account = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    let (status, body) = http_on(&mut stream, &post("/v1/accounts", &account))
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, body) = http_on(&mut stream, &post("/v1/sessions", &account))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let login: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = login["token"].as_str().unwrap();

    let mut ws = connect(&server.addr, &ca).await;
    ws.write_all(common::upgrade_request("localhost", token).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let hello = loop {
        let mut chunk = [0u8; 4096];
        let n = ws.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed before hello: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(
                buf.starts_with(b"HTTP/1.1 101"),
                "{}",
                String::from_utf8_lossy(&buf)
            );
            if let Some((frame, _)) = parse_frame(&buf[end + 4..]) {
                break frame;
            }
        }
    };
    assert_eq!(hello.opcode, 1);
    assert!(String::from_utf8_lossy(&hello.payload).contains(r#""type":"hello""#));
    server.stop().await;
}

#[tokio::test]
async fn plain_http_to_a_tls_listener_gets_no_http_answer() {
    let (server, _ca, _dir) = tls_server(|_| {}).await;
    let mut tcp = TcpStream::connect(&server.addr).await.unwrap();
    let reply = http_on(&mut tcp, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(reply.is_none(), "{reply:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_unfinished_handshake_is_cut_at_the_header_deadline_and_counts_against_the_caps() {
    let (server, ca, _dir) = tls_server(|c| {
        c.http_header_timeout_ms = 300;
        c.max_pending_per_ip = 1;
    })
    .await;
    let mut silent = TcpStream::connect(&server.addr).await.unwrap();
    // It holds the address's one pending place: the next connection is closed unanswered.
    let mut second = TcpStream::connect(&server.addr).await.unwrap();
    let refused = read_until_closed(&mut second, Duration::from_secs(2)).await;
    assert_eq!(
        refused.as_deref(),
        Some(&[][..]),
        "closed at once, no bytes"
    );
    let cut = read_until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(cut.is_some(), "the silent handshake is cut at its deadline");
    // Its place is free again.
    let mut stream = connect(&server.addr, &ca).await;
    assert_eq!(healthz(&mut stream).await.unwrap().0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_only() {
    let (server, ca, dir) = tls_server(|_| {}).await;
    let tls = server.tls.clone().unwrap();
    let mut a = connect(&server.addr, &ca).await;
    let first = presented(&a);
    assert_eq!(healthz(&mut a).await.unwrap().0, 200);

    let second = ca.issue(&dir);
    tls.reload().expect("the new pair loads");
    let b = connect(&server.addr, &ca).await;
    assert_eq!(presented(&b), second);
    assert_ne!(first, second);
    // Connection A, opened with the first certificate, is open and keeps working.
    assert_eq!(healthz(&mut a).await.unwrap().0, 200);
    assert_eq!(presented(&a), first);
    server.stop().await;
}

#[tokio::test]
async fn a_bad_reload_keeps_the_old_certificate() {
    let (server, ca, dir) = tls_server(|_| {}).await;
    let tls = server.tls.clone().unwrap();
    let first = presented(&connect(&server.addr, &ca).await);

    std::fs::write(dir.join("key.pem"), "not a key\n").unwrap();
    let err = tls.reload().unwrap_err();
    assert!(err.to_string().contains("key.pem"), "{err}");
    // A key that does not belong to the certificate is refused too.
    ca.issue(&dir);
    std::fs::write(
        dir.join("key.pem"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    assert!(tls.reload().is_err(), "a mismatched key is refused");

    let mut stream = connect(&server.addr, &ca).await;
    assert_eq!(presented(&stream), first, "still the first certificate");
    assert_eq!(healthz(&mut stream).await.unwrap().0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_bad_pair_at_start_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    ca.issue(dir.path());
    std::fs::write(dir.path().join("cert.pem"), "garbage").unwrap();
    let mut config = common::test_config(dir.path());
    config.tls_cert = Some(dir.path().join("cert.pem"));
    config.tls_key = Some(dir.path().join("key.pem"));
    let err = banter_server::Server::bind(config.clone())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("cert.pem"), "{err}");
    config.tls_cert = Some(dir.path().join("missing.pem"));
    let err = banter_server::Server::bind(config).await.err().unwrap();
    assert!(err.to_string().contains("missing.pem"), "{err}");
}
