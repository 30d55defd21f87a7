//! Handlers of the JSON HTTP API. Each is documented for the OpenAPI document.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use banter_protocol::{
    ChangePasswordRequest, ErrorCode, ErrorResponse, LoginRequest, LoginResponse, RegisterRequest,
    SessionInfo, User,
};
use serde::Deserialize;
use utoipa::OpenApi as _;

use super::ApiError;
use super::extract::{Authed, JsonBody, QueryParams};
use crate::error::Error;
use crate::state::App;
use crate::store::StoreError;

type Shared = State<Arc<App>>;

/// Registers an account, under the server's sign-up policy (`open`, `invite` or `closed`).
#[utoipa::path(post, path = "/v1/accounts", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = User),
        (status = 400, description = "invalid_username, invalid_password (see the schema's bounds), bad_request", body = ErrorResponse),
        (status = 403, description = "signup_closed: the policy is `closed`; invite_required: the policy is `invite` and no code was given; invalid_invite: the code is unknown, expired, revoked, used up or over 128 bytes", body = ErrorResponse),
        (status = 409, description = "username_taken", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 429, description = "rate_limited: too many registrations from this address (Retry-After)", body = ErrorResponse),
        (status = 503, description = "busy: the password hashing queue is full (Retry-After)", body = ErrorResponse),
    ))]
pub(super) async fn register(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = app
        .accounts
        .register(
            &req.username,
            &req.password,
            req.invite.as_deref(),
            Some(peer.ip()),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Logs in: returns a bearer token for a new session (device).
#[utoipa::path(post, path = "/v1/sessions", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "invalid_field: a device label with control or bidi override characters", body = ErrorResponse),
        (status = 403, description = "account_disabled: the password is right but an operator disabled the account", body = ErrorResponse),
        (status = 401, description = "bad_credentials: wrong username or password (also for a username or password outside the registration rules)", body = ErrorResponse),
        (status = 429, description = "rate_limited: too many attempts for this account or from this address (Retry-After)", body = ErrorResponse),
        (status = 503, description = "busy: the password hashing queue is full (Retry-After)", body = ErrorResponse),
    ))]
pub(super) async fn login(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let res = app
        .accounts
        .login(
            &req.username,
            &req.password,
            req.device.as_deref(),
            Some(peer.ip()),
        )
        .await?;
    Ok(Json(res))
}

/// Lists the caller's live sessions.
#[utoipa::path(get, path = "/v1/sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions", body = Vec<SessionInfo>),
        (status = 401, description = "unauthorized, token_expired", body = ErrorResponse),
    ))]
pub(super) async fn sessions(
    State(app): Shared,
    Authed(caller): Authed,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    Ok(Json(app.accounts.sessions(&caller).await?))
}

/// Logs out: revokes the caller's own token and closes its sockets.
#[utoipa::path(delete, path = "/v1/sessions/current", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "unauthorized, token_expired", body = ErrorResponse),
        (status = 429, description = "rate_limited: the user's request budget is spent", body = ErrorResponse),
    ))]
pub(super) async fn logout(
    State(app): Shared,
    Authed(caller): Authed,
) -> Result<StatusCode, ApiError> {
    app.messaging.check_request_budget(caller.user, None)?;
    app.accounts.logout(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes one of the caller's sessions and closes its sockets (close code 4001).
#[utoipa::path(delete, path = "/v1/sessions/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "unauthorized, token_expired", body = ErrorResponse),
        (status = 404, description = "unknown_session: no session of the caller's with this id (any id not of the caller's, or not a positive integer)", body = ErrorResponse),
        (status = 429, description = "rate_limited: the user's request budget is spent", body = ErrorResponse),
    ))]
pub(super) async fn revoke(
    State(app): Shared,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.messaging.check_request_budget(caller.user, None)?;
    app.accounts.revoke(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/v1/me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, description = "unauthorized, token_expired", body = ErrorResponse),
    ))]
pub(super) async fn me(State(app): Shared, Authed(caller): Authed) -> Result<Json<User>, ApiError> {
    Ok(Json(app.accounts.me(&caller).await?))
}

/// Changes the password; every other session is revoked.
#[utoipa::path(put, path = "/v1/me/password", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "invalid_password: the new password is outside 8–128 bytes", body = ErrorResponse),
        (status = 401, description = "bad_credentials: the current password is wrong; unauthorized, token_expired", body = ErrorResponse),
        (status = 429, description = "rate_limited: too many wrong current passwords (Retry-After), or the user's request budget is spent", body = ErrorResponse),
        (status = 503, description = "busy: the password hashing queue is full (Retry-After)", body = ErrorResponse),
    ))]
pub(super) async fn change_password(
    State(app): Shared,
    Authed(caller): Authed,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    app.messaging.check_request_budget(caller.user, None)?;
    app.accounts
        .change_password(&caller, &req.old_password, &req.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchQuery {
    /// Username prefix (case-insensitive), 1–32 bytes.
    #[param(min_length = 1, max_length = 32)]
    prefix: String,
    /// At most this many users: 20 if absent; any other value is brought into 1–50.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
}

/// Finds users by username prefix.
#[utoipa::path(get, path = "/v1/users", security(("bearer" = [])), params(SearchQuery),
    responses(
        (status = 200, description = "Matching users", body = Vec<User>),
        (status = 400, description = "bad_request: `prefix` missing or outside 1–32 bytes, or `limit` not an unsigned 32-bit integer", body = ErrorResponse),
        (status = 401, description = "unauthorized, token_expired", body = ErrorResponse),
        (status = 429, description = "rate_limited: the user's request budget is spent", body = ErrorResponse),
    ))]
pub(super) async fn search_users(
    State(app): Shared,
    Authed(caller): Authed,
    QueryParams(q): QueryParams<SearchQuery>,
) -> Result<Json<Vec<User>>, ApiError> {
    app.messaging.check_request_budget(caller.user, None)?;
    Ok(Json(app.accounts.search(&q.prefix, q.limit).await?))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive")))]
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: accepting new work (503 while shutting down, while the store cannot write, or
/// while a cluster node cannot reach its bus).
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "shutting_down, store_unavailable, bus_unavailable", body = ErrorResponse)))]
pub(super) async fn readyz(State(app): Shared) -> Result<&'static str, ApiError> {
    if app.shutdown.is_cancelled() {
        return Err(Error::new(ErrorCode::ShuttingDown, "the server is shutting down").into());
    }
    if !app.bus.ready() {
        return Err(Error::new(
            ErrorCode::BusUnavailable,
            "this node cannot reach the other nodes of its cluster; the server log says why",
        )
        .into());
    }
    // Not through `From<StoreError>`: that logs, and load balancers poll this every few seconds
    // (the writer logged the failure once already).
    match app.store.writable().await {
        Ok(()) => Ok("ready"),
        Err(StoreError::Closed) => {
            Err(Error::new(ErrorCode::ShuttingDown, "the server is shutting down").into())
        }
        Err(_) => Err(Error::new(
            ErrorCode::StoreUnavailable,
            "the store cannot write; the server log says why",
        )
        .into()),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text")))]
pub(super) async fn metrics(State(app): Shared) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// This document.
pub(super) async fn openapi() -> impl IntoResponse {
    Json(super::ApiDoc::openapi())
}

/// A known route with another method: `405` with a typed body (axum adds the `Allow` header).
pub(super) async fn method_not_allowed() -> ApiError {
    Error::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
    .into()
}
