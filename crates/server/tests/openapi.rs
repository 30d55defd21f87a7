//! `/openapi.json` against a real server: the document states the rules the server enforces
//! and every status it can answer, so that it cannot drift from the handlers silently.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::start_server;
use serde_json::Value;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Every documented operation: (method, path).
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops
}

fn responses<'a>(doc: &'a Value, method: &str, path: &str) -> &'a serde_json::Map<String, Value> {
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path}: no responses"))
}

fn description(doc: &Value, method: &str, path: &str, status: &str) -> String {
    responses(doc, method, path)[status]["description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn document() -> (common::TestServer, Value) {
    let server = start_server().await;
    let (status, body) = server
        .http_from(LOCAL, "GET", "/openapi.json", None, "")
        .await;
    assert_eq!(status, 200, "{body}");
    let doc = serde_json::from_str(&body).expect("the document is JSON");
    (server, doc)
}

#[tokio::test]
async fn request_schemas_carry_the_servers_rules() {
    let (_server, doc) = document().await;
    let schemas = &doc["components"]["schemas"];
    let username = &schemas["RegisterRequest"]["properties"]["username"];
    assert_eq!(username["minLength"], 3);
    assert_eq!(username["maxLength"], 32);
    assert_eq!(username["pattern"], "^[A-Za-z0-9_.-]{3,32}$");
    for password in [
        &schemas["RegisterRequest"]["properties"]["password"],
        &schemas["ChangePasswordRequest"]["properties"]["new_password"],
    ] {
        assert_eq!(
            (&password["minLength"], &password["maxLength"]),
            (&8.into(), &128.into())
        );
    }
    let device = schemas["LoginRequest"]["properties"]["device"]["pattern"]
        .as_str()
        .expect("device has a pattern");
    for forbidden in [
        r"\u0000-\u001F",
        r"\u007F-\u009F",
        r"\u202A-\u202E",
        r"\u2066-\u2069",
    ] {
        assert!(device.contains(forbidden), "{device} lacks {forbidden}");
    }
    // Login takes any username and password (a wrong one is 401, not 400).
    let login = &schemas["LoginRequest"]["properties"];
    assert!(login["username"].get("pattern").is_none());
    assert!(login["password"].get("minLength").is_none());
}

#[tokio::test]
async fn parameters_are_where_the_server_reads_them() {
    let (_server, doc) = document().await;
    let params = doc["paths"]["/v1/users"]["get"]["parameters"]
        .as_array()
        .expect("search parameters");
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    };
    let prefix = param("prefix");
    assert_eq!(
        (&prefix["in"], &prefix["required"]),
        (&"query".into(), &true.into())
    );
    assert_eq!(
        (
            &prefix["schema"]["minLength"],
            &prefix["schema"]["maxLength"]
        ),
        (&1.into(), &32.into())
    );
    let limit = param("limit");
    assert_eq!(
        (&limit["in"], &limit["required"]),
        (&"query".into(), &false.into())
    );

    let ws = doc["paths"]["/v1/ws"]["get"]["parameters"]
        .as_array()
        .expect("upgrade headers");
    for name in [
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Key",
    ] {
        let header = ws
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("/v1/ws does not describe {name}"));
        assert_eq!(
            (&header["in"], &header["required"]),
            (&"header".into(), &true.into()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_status_a_route_can_answer_is_listed() {
    let (_server, doc) = document().await;
    let ops = operations(&doc);
    assert_eq!(ops.len(), 30, "{ops:?}");
    for (method, path) in &ops {
        let listed = responses(&doc, method, path);
        // The listener refuses over-limit connections before routing, on any path.
        assert!(
            description(&doc, method, path, "429").contains("too_many_connections"),
            "{method} {path}"
        );
        let health = ["/healthz", "/readyz", "/metrics"].contains(&path.as_str());
        if !health {
            let unavailable = description(&doc, method, path, "503");
            for code in ["shutting_down", "store_unavailable"] {
                assert!(
                    unavailable.contains(code),
                    "{method} {path}: 503 lacks {code}"
                );
            }
        }
        let op = &doc["paths"][path][method];
        if op["requestBody"]["content"]
            .get("application/json")
            .is_some()
        {
            assert!(description(&doc, method, path, "413").contains("payload_too_large"));
            assert!(description(&doc, method, path, "400").contains("bad_request"));
        }
        if path.starts_with("/v1/admin/") {
            // The admin token guards these: no user token, so no expiry.
            assert_eq!(op["security"][0]["admin"], serde_json::json!([]), "{path}");
            let unauthorized = description(&doc, method, path, "401");
            assert!(unauthorized.contains("admin token"), "{method} {path}");
            assert!(!unauthorized.contains("token_expired"), "{method} {path}");
            let off = description(&doc, method, path, "404");
            assert!(off.contains("not_found"), "{method} {path}: {off}");
        } else if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            let unauthorized = description(&doc, method, path, "401");
            for code in ["unauthorized", "token_expired"] {
                assert!(
                    unauthorized.contains(code),
                    "{method} {path}: 401 lacks {code}"
                );
            }
        }
        assert!(
            listed.keys().all(|s| s.parse::<u16>().is_ok()),
            "{method} {path}"
        );
    }
    for (method, path) in [
        ("get", "/v1/users"),
        ("delete", "/v1/sessions/{id}"),
        ("get", "/v1/ws"),
        ("get", "/v1/me"),
    ] {
        assert!(
            responses(&doc, method, path).contains_key("401"),
            "{method} {path}"
        );
    }
    for (method, path, codes) in [
        ("post", "/v1/sessions", &["bad_credentials"][..]),
        ("post", "/v1/sessions", &["invalid_field"][..]),
        (
            "post",
            "/v1/accounts",
            &[
                "invalid_username",
                "invalid_password",
                "signup_closed",
                "invite_required",
                "invalid_invite",
            ][..],
        ),
        ("post", "/v1/sessions", &["account_disabled"][..]),
        (
            "post",
            "/v1/admin/invites",
            &["too_many_invites", "invalid_field"][..],
        ),
        ("delete", "/v1/admin/invites/{id}", &["unknown_invite"][..]),
        (
            "delete",
            "/v1/admin/users/{id}/sessions/{session}",
            &["unknown_session"][..],
        ),
        ("get", "/v1/admin/users/{id}", &["unknown_user"][..]),
    ] {
        let all: String = responses(&doc, method, path)
            .values()
            .map(|r| r["description"].as_str().unwrap_or_default())
            .collect();
        for code in codes {
            assert!(all.contains(code), "{method} {path} lacks {code}");
        }
    }
    for (method, path) in [
        ("post", "/v1/sessions"),
        ("post", "/v1/accounts"),
        ("put", "/v1/me/password"),
    ] {
        let busy = description(&doc, method, path, "503");
        assert!(busy.contains("busy"), "{method} {path}: {busy}");
        let limited = description(&doc, method, path, "429");
        assert!(
            limited.contains("rate_limited"),
            "{method} {path}: {limited}"
        );
    }
}

#[tokio::test]
async fn a_missing_query_parameter_is_named_plainly() {
    let (server, _doc) = document().await;
    let alice = server.user("alice").await;
    let (status, body) = server
        .http_from(LOCAL, "GET", "/v1/users", Some(&alice.token), "")
        .await;
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
    assert_eq!(v["error"]["message"], "missing query parameter `prefix`");
    let (status, body) = server
        .http_from(
            LOCAL,
            "GET",
            "/v1/users?prefix=al&limit=x",
            Some(&alice.token),
            "",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = serde_json::from_str::<Value>(&body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("bad query parameter: "), "{message}");
    assert!(!message.contains("deserialize"), "{message}");
}

/// The edges of the documented bounds, each on the side the document puts it.
#[tokio::test]
async fn the_servers_answers_match_the_documented_bounds() {
    let (server, _doc) = document().await;
    let register = |username: &str, password: &str| {
        serde_json::json!({ "username": username, "password": password }).to_string()
    };
    let long_name = "a".repeat(32);
    let long_password = "p".repeat(128);
    for (username, password, status) in [
        ("Ab.c_-9", "12345678", 201), // upper case is in the pattern
        (long_name.as_str(), long_password.as_str(), 201),
        ("ab", "12345678", 400),            // minLength 3
        (&"b".repeat(33), "12345678", 400), // maxLength 32
        ("abc\u{e9}", "12345678", 400),     // outside [A-Za-z0-9_.-]
        ("abc def", "12345678", 400),
        ("abcd", "1234567", 400),        // password minLength 8
        ("abce", &"p".repeat(129), 400), // password maxLength 128
    ] {
        let (got, body) = server
            .http_from(
                LOCAL,
                "POST",
                "/v1/accounts",
                None,
                &register(username, password),
            )
            .await;
        assert_eq!(
            got,
            status,
            "{username:?} / {} bytes: {body}",
            password.len()
        );
    }
    let login = |device: &str| {
        serde_json::json!({ "username": "ab.c_-9", "password": "12345678", "device": device })
            .to_string()
    };
    for (device, status) in [
        ("phone \u{e9}", 200),
        ("a\u{0}", 400),
        ("a\u{1b}", 400),
        ("a\u{7f}", 400),
        ("a\u{85}", 400), // C1 control, inside \u007F-\u009F
        ("a\u{a0}", 200), // just past it
        ("a\u{202e}", 400),
        ("a\u{2069}", 400),
        ("a\u{206a}", 200),
    ] {
        let (got, body) = server
            .http_from(LOCAL, "POST", "/v1/sessions", None, &login(device))
            .await;
        assert_eq!(got, status, "device {device:?}: {body}");
    }
}
