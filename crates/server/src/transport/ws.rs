//! The WebSocket endpoint: authenticates, checks limits, performs the RFC 6455 handshake on
//! top of hyper's upgrade, and hands the stream to a session.
//!
//! Authentication happens before the upgrade, so a bad token is a plain HTTP 401 with a typed
//! body. Browsers, which cannot set headers on a WebSocket, pass the token as the subprotocol
//! `banter.auth.<token>` next to `banter.v1`; other clients may use `Authorization: Bearer`.
//!
//! An authenticated session counts against its address's `max_sessions_per_ip` for its whole
//! life (the listener counted it as pending until the upgrade).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use banter_protocol::{AUTH_SUBPROTOCOL_PREFIX, ErrorCode, SUBPROTOCOL};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::ApiError;
use super::extract::bearer;
use crate::error::Error;
use crate::session;
use crate::state::App;

/// The GUID RFC 6455 appends to the client's key.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Opens a WebSocket session (RFC 6455 handshake). The token goes in `Authorization: Bearer`
/// or, from browsers, as the subprotocol `banter.auth.<token>`.
#[utoipa::path(get, path = "/v1/ws", security(("bearer" = [])),
    params(
        ("Upgrade" = String, Header, description = "A comma-separated list naming `websocket` (any case)",
            pattern = r"^([^,]*,)*[ \t]*[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt][ \t]*(,[^,]*)*$"),
        ("Connection" = String, Header, description = "A comma-separated list naming `Upgrade` (any case)",
            pattern = r"^([^,]*,)*[ \t]*[Uu][Pp][Gg][Rr][Aa][Dd][Ee][ \t]*(,[^,]*)*$"),
        ("Sec-WebSocket-Version" = String, Header, description = "Exactly `13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "Base64 of 16 random bytes (RFC 6455 §4.2.1), sent once",
            pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$"),
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`banter.v1` (answered when offered) and, for browsers, `banter.auth.<token>`"),
    ),
    responses(
        (status = 101, description = "Switching to the Banter WebSocket protocol (docs/PROTOCOL.md)"),
        (status = 400, description = "bad_request: not a WebSocket upgrade, or a Sec-WebSocket-Key that is not base64 of 16 bytes", body = banter_protocol::ErrorResponse),
        (status = 401, description = "unauthorized (no token in either place), token_expired", body = banter_protocol::ErrorResponse),
        (status = 429, description = "too_many_connections: max_connections_per_user or max_sessions_per_ip reached", body = banter_protocol::ErrorResponse),
        (status = 503, description = "shutting_down", body = banter_protocol::ErrorResponse),
    ))]
pub(super) async fn upgrade(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Result<Response, ApiError> {
    if app.shutdown.is_cancelled() {
        return Err(Error::new(ErrorCode::ShuttingDown, "the server is shutting down").into());
    }
    let headers = req.headers();
    let offered = offered_protocols(headers);
    let token = bearer(headers)
        .map(str::to_owned)
        .or_else(|| {
            offered
                .iter()
                .find_map(|p| p.strip_prefix(AUTH_SUBPROTOCOL_PREFIX).map(str::to_owned))
        })
        .ok_or(Error::new(
            ErrorCode::Unauthorized,
            "missing token: send `Authorization: Bearer <token>` or the subprotocol banter.auth.<token>",
        ))?;
    let caller = app.accounts.authenticate(&token).await?;
    let key = handshake_key(headers)?;
    let address_slot = app.admission.session(peer.ip()).ok_or_else(|| {
        Error::with(
            ErrorCode::TooManyConnections,
            format!(
                "at most {} WebSocket sessions from one address",
                app.admission.max_sessions()
            ),
        )
    })?;
    if !app.bus.ready() {
        return Err(Error::new(
            ErrorCode::BusUnavailable,
            "this node cannot reach the other nodes of its cluster; retry on another node",
        )
        .into());
    }
    if !app.bus.has_room(caller.user) {
        return Err(Error::with(
            ErrorCode::TooManyConnections,
            format!(
                "at most {} connections per user",
                app.config.max_connections_per_user
            ),
        )
        .into());
    }
    let select_protocol = offered.iter().any(|p| p == SUBPROTOCOL);
    let on_upgrade = req
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or(Error::new(
            ErrorCode::BadRequest,
            "connection cannot be upgraded",
        ))?;
    let conn = app.next_conn_id();
    let handshake = Duration::from_millis(app.config.handshake_timeout_ms);
    let session_app = Arc::clone(&app);
    app.sessions.spawn(async move {
        let upgraded = match tokio::time::timeout(handshake, on_upgrade).await {
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(e)) => return tracing::debug!(error = %e, "websocket upgrade failed"),
            Err(_) => return tracing::debug!("websocket upgrade timed out"),
        };
        // The session speaks WebSocket itself (session/frame.rs).
        session::run(session_app, TokioIo::new(upgraded), caller, conn).await;
        drop(address_slot);
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_ACCEPT, accept_key(&key));
    if select_protocol {
        response = response.header(SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL);
    }
    Ok(response
        .body(Body::empty())
        .expect("static response parts are valid"))
}

/// The subprotocols the client offered.
fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn header_has(headers: &HeaderMap, name: axum::http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Validates the upgrade request and returns its `Sec-WebSocket-Key`.
fn handshake_key(headers: &HeaderMap) -> Result<HeaderValue, Error> {
    let upgrade =
        header_has(headers, UPGRADE, "websocket") && header_has(headers, CONNECTION, "upgrade");
    let version = headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        == Some(b"13");
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) if upgrade && version => {
            if is_valid_key(key) {
                Ok(key.clone())
            } else {
                Err(Error::new(
                    ErrorCode::BadRequest,
                    "Sec-WebSocket-Key must be the base64 encoding of 16 bytes (RFC 6455 §4.2.1)",
                ))
            }
        }
        _ => Err(Error::new(
            ErrorCode::BadRequest,
            "not a WebSocket upgrade (need Upgrade: websocket, Sec-WebSocket-Version: 13 and one key)",
        )),
    }
}

/// RFC 6455 §4.2.1: the key is a base64-encoded 16-byte value (24 characters with padding).
fn is_valid_key(key: &HeaderValue) -> bool {
    key.len() == 24
        && STANDARD
            .decode(key.as_bytes())
            .is_ok_and(|bytes| bytes.len() == 16)
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
fn accept_key(key: &HeaderValue) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    STANDARD.encode(sha.digest().bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_base64_of_sixteen_bytes() {
        let valid = |k: &'static str| is_valid_key(&HeaderValue::from_static(k));
        assert!(valid("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid(""));
        assert!(!valid("not base64 at all!!!!!!!"));
        assert!(!valid("dGhlIHNhbXBsZSBub25j"), "12 bytes");
        assert!(!valid("dGhlIHNhbXBsZSBub25jZXM="), "17 bytes");
        assert!(!valid("dGhlIHNhbXBsZSBub25jZQ"), "unpadded");
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept_key(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
