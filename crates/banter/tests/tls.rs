//! The real binary with `--tls-cert`/`--tls-key`: it answers https, and `kill -HUP` makes new
//! connections see a renewed certificate (a bad renewal is logged and the old pair kept).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use rustls::{ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::{CertificateDer, ServerName};

mod common;

use common::{FAST, Process};

/// Writes a new self-signed `localhost` pair into `dir`; returns the certificate.
fn issue(dir: &Path) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    cert.der().clone()
}

/// GET /healthz over TLS trusting only `trusted`: the status line and the certificate shown.
fn healthz(addr: &str, trusted: &[CertificateDer<'static>]) -> (String, CertificateDer<'static>) {
    let mut roots = RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    // The server may close without close_notify; what was read is enough.
    _ = tls.read_to_end(&mut reply);
    let shown = tls.conn.peer_certificates().unwrap()[0].clone();
    let text = String::from_utf8_lossy(&reply);
    (text.lines().next().unwrap_or_default().to_owned(), shown)
}

/// Waits until `log` holds `needle`.
fn wait_for_log(server: &Process, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn https_and_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = issue(dir.path());
    let mut args = FAST.to_vec();
    args.extend(["--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    let server = Process::start(dir.path(), &args);
    let (status, shown) = healthz(&server.addr, std::slice::from_ref(&first));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(shown, first);

    let second = issue(dir.path());
    server.signal("HUP");
    wait_for_log(&server, "TLS certificate reloaded");
    let (status, shown) = healthz(&server.addr, &[first.clone(), second.clone()]);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(shown, second, "new connections see the renewed certificate");

    std::fs::write(dir.path().join("key.pem"), "broken").unwrap();
    server.signal("HUP");
    wait_for_log(&server, "TLS reload failed");
    let (status, shown) = healthz(&server.addr, &[first, second.clone()]);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(shown, second, "a bad renewal keeps the pair in use");
}

#[test]
fn a_bad_certificate_refuses_to_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    issue(dir.path());
    std::fs::write(dir.path().join("cert.pem"), "garbage").unwrap();
    let mut args = vec!["serve"];
    args.extend(FAST);
    args.extend(["--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(&args)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cert.pem"), "{stderr}");
}
