//! The web client as the server serves it: the page at `/` and at the client's own routes,
//! versioned assets cached for good, the security headers, and the paths that must stay typed
//! errors (the API's `404`s and `405`s, file names, other versions, anything that climbs out of
//! the client).

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{HttpReply, http_from, start_server};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn get(addr: &str, path: &str) -> HttpReply {
    http_from(addr, LOCAL, "GET", path, &serde_json::Value::Null).await
}

fn assert_not_found(reply: &HttpReply, path: &str) {
    assert_eq!(reply.status, 404, "{path}: {}", reply.body);
    assert_eq!(reply.error_code().as_deref(), Some("not_found"), "{path}");
}

/// `/assets/<version>` as the page names it.
fn asset_base(page: &str) -> String {
    let start = page.find("/assets/").expect("the page names its assets");
    let version: String = page[start + 8..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(version.len(), 12, "a 12-digit content hash");
    format!("/assets/{version}")
}

#[tokio::test]
async fn the_page_is_served_at_root_and_at_client_routes_with_its_policy() {
    let server = start_server().await;
    for path in ["/", "/login", "/c/12", "/c/12/info", "/rooms/lobby", "/u/3"] {
        let reply = get(&server.addr, path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{path}");
        let policy = reply.header("content-security-policy").unwrap();
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert!(reply.body.contains("<html"), "{path}");
        assert!(
            !reply.body.contains("%ASSETS%"),
            "the placeholder is replaced"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn assets_carry_their_version_and_are_cached_for_good() {
    let server = start_server().await;
    let page = get(&server.addr, "/").await.body;
    let base = asset_base(&page);
    let script = get(&server.addr, &format!("{base}/main.js")).await;
    assert_eq!(script.status, 200, "{}", script.body);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        script.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(script.header("x-content-type-options"), Some("nosniff"));
    let module = get(&server.addr, &format!("{base}/ui/dom.js")).await;
    assert_eq!(module.status, 200);
    assert!(module.body.contains("export function h("));

    // Another version is not today's file under yesterday's name.
    assert_not_found(
        &get(&server.addr, "/assets/000000000000/main.js").await,
        "old",
    );
    assert_not_found(
        &get(&server.addr, &format!("{base}/nothing.js")).await,
        "missing",
    );
    assert_not_found(
        &get(&server.addr, &format!("{base}/index.html")).await,
        "index",
    );
    server.stop().await;
}

#[tokio::test]
async fn api_paths_file_names_and_escapes_stay_typed_404s() {
    let server = start_server().await;
    let page = get(&server.addr, "/").await.body;
    let base = asset_base(&page);
    for path in [
        "/v1",
        "/v1/",
        "/v1/nope",
        "/v1/users/1/unknown",
        "/favicon.ico",
        "/robots.txt",
        "/assets",
        "/assets/",
        &format!("{base}/../../../Cargo.toml"),
        &format!("{base}/ui/../../../../Cargo.toml"),
        &format!("{base}/./main.js"),
        &format!("{base}//main.js"),
        &format!("{base}/%2e%2e/%2e%2e/%2e%2e/Cargo.toml"),
        &format!("{base}/..%2f..%2f..%2fCargo.toml"),
    ] {
        assert_not_found(&get(&server.addr, path).await, path);
    }
    // Only reads fall back to the page.
    let post = http_from(
        &server.addr,
        LOCAL,
        "POST",
        "/contacts",
        &serde_json::json!({}),
    )
    .await;
    assert_not_found(&post, "POST /contacts");
    // The API's own responses carry the headers too.
    let api = get(&server.addr, "/v1/me").await;
    assert_eq!(api.status, 401);
    assert_eq!(api.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(api.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(api.header("x-frame-options"), Some("DENY"));
    server.stop().await;
}

#[tokio::test]
async fn with_the_web_client_off_only_the_api_answers() {
    let server = common::start_with(|c| c.web_client = false).await;
    for path in ["/", "/login", "/c/12", "/assets/000000000000/main.js"] {
        assert_not_found(&get(&server.addr, path).await, path);
    }
    assert_eq!(get(&server.addr, "/healthz").await.status, 200);
    assert_eq!(get(&server.addr, "/v1/me").await.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_typed_405() {
    let server = start_server().await;
    for (method, path, allow) in [
        ("GET", "/v1/accounts", "POST"),
        ("PUT", "/v1/sessions", "GET,HEAD,POST"),
        ("POST", "/v1/me", "GET,HEAD"),
        ("DELETE", "/healthz", "GET,HEAD"),
    ] {
        let reply = http_from(&server.addr, LOCAL, method, path, &serde_json::json!({})).await;
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.body);
        assert_eq!(
            reply.error_code().as_deref(),
            Some("method_not_allowed"),
            "{method} {path}"
        );
        let mut allowed: Vec<&str> = reply
            .header("allow")
            .unwrap()
            .split(',')
            .map(str::trim)
            .collect();
        allowed.sort_unstable();
        assert_eq!(allowed.join(","), allow, "{method} {path}");
    }
    server.stop().await;
}
