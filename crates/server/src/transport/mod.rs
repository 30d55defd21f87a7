//! Transport: the HTTP API, the WebSocket upgrade, health, metrics and the OpenAPI document.
//!
//! Handlers here only translate: they extract and validate the request's shape, call a service,
//! and turn its result or [`Error`] into a response. The HTTP status of each error code is
//! decided in [`status_of`] and nowhere else.

mod admin;
mod deadline;
mod extract;
mod http;
pub(crate) mod listener;
mod media;
mod openapi;
mod stickers;
pub(crate) mod tls;
mod web;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use banter_protocol::{ErrorCode, ErrorResponse};

use crate::error::Error;
use crate::state::App;

pub use openapi::ApiDoc;

/// The whole HTTP surface of the server.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/accounts", post(http::register))
        .route("/v1/sessions", post(http::login).get(http::sessions))
        .route("/v1/sessions/current", delete(http::logout))
        .route("/v1/sessions/{id}", delete(http::revoke))
        .route("/v1/me", get(http::me))
        .route("/v1/me/password", put(http::change_password))
        .route("/v1/users", get(http::search_users))
        .route("/v1/ws", get(ws::upgrade))
        .route(
            "/v1/media",
            post(media::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/media/{id}", get(media::download))
        .route("/v1/media/{id}/info", get(media::info))
        .route("/v1/media/{id}/thumbnail", get(media::thumbnail))
        .route("/v1/stickers", get(stickers::list))
        .route("/v1/stickers/{id}", get(stickers::image))
        .route(
            "/v1/admin/users",
            post(admin::create_user).get(admin::users),
        )
        .route(
            "/v1/admin/users/{id}",
            get(admin::user).delete(admin::delete_user),
        )
        .route("/v1/admin/users/{id}/disable", post(admin::disable))
        .route("/v1/admin/users/{id}/enable", post(admin::enable))
        .route("/v1/admin/users/{id}/sessions", get(admin::sessions))
        .route(
            "/v1/admin/users/{id}/sessions/{session}",
            delete(admin::revoke_session),
        )
        .route(
            "/v1/admin/invites",
            post(admin::create_invite).get(admin::invites),
        )
        .route("/v1/admin/invites/{id}", delete(admin::revoke_invite))
        .route("/v1/admin/stats", get(admin::stats))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
        .route("/openapi.json", get(http::openapi))
        .fallback(web::fallback)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(access_log))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            refuse_while_draining,
        ))
        .layer(axum::middleware::map_response_with_state(
            Arc::clone(&app),
            count_errors,
        ))
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes))
        .with_state(app)
}

/// Headers on every response: no type sniffing, no referrer leaving the page, never framed
/// (the page's own Content-Security-Policy says `frame-ancestors 'none'` too).
async fn security_headers(mut response: Response) -> Response {
    use axum::http::header::{REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// One line per HTTP request at info level (health, readiness and metrics probes at debug):
/// method, path without the query string, status, milliseconds and the client's address. No
/// header and no body is logged, so neither tokens nor passwords nor message text are.
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = tokio::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis();
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
        tracing::debug!(%method, path, status, ms, ?peer, "http");
    } else {
        tracing::info!(%method, path, status, ms, ?peer, "http");
    }
    response
}

/// The HTTP status for each error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::BadRequest
        | C::UnknownType
        | C::InvalidUsername
        | C::InvalidPassword
        | C::EmptyMessage
        | C::TextTooLong
        | C::InvalidClientMsgId
        | C::CannotMessageSelf
        | C::InvalidSeq
        | C::InvalidField
        | C::InvalidRoom
        | C::InvalidMedia
        | C::InvalidFileName => StatusCode::BAD_REQUEST,
        C::Forbidden
        | C::Blocked
        | C::NotFriends
        | C::RecallWindowPassed
        | C::InviteRequired
        | C::InvalidInvite
        | C::SignupClosed
        | C::AccountDisabled => StatusCode::FORBIDDEN,
        C::AlreadyFriends
        | C::GroupFull
        | C::AlreadyMember
        | C::TooManyGroups
        | C::TooManyInvites => StatusCode::CONFLICT,
        C::GroupDissolved => StatusCode::GONE,
        C::UnknownRequest | C::NotMember | C::UnknownMessage | C::NotInRoom => {
            StatusCode::NOT_FOUND
        }
        C::Unauthorized | C::TokenExpired | C::BadCredentials => StatusCode::UNAUTHORIZED,
        C::UsernameTaken => StatusCode::CONFLICT,
        C::RateLimited | C::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
        C::UnknownUser
        | C::UnknownConversation
        | C::UnknownSession
        | C::UnknownInvite
        | C::UnknownMedia
        | C::UnknownSticker
        | C::NotFound => StatusCode::NOT_FOUND,
        C::PayloadTooLarge | C::MediaTooLarge | C::QuotaExceeded => StatusCode::PAYLOAD_TOO_LARGE,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::ShuttingDown | C::Busy | C::StoreUnavailable | C::BusUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A service error on its way out as an HTTP response.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code;
        let mut response = (
            status_of(code),
            axum::Json(ErrorResponse {
                error: self.0.body(),
            }),
        )
            .into_response();
        if let Some(wait) = self.0.retry_after {
            // Whole seconds, rounded up and at least 1, so a client never retries too early.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response.extensions_mut().insert(code);
        response
    }
}

/// Counts every error response by code (the code rides in the response's extensions).
async fn count_errors(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    response: Response,
) -> Response {
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        app.metrics.error(*code);
    }
    response
}

/// While shutting down, refuses new work with 503 `shutting_down`; health, readiness and metrics
/// still answer (readiness with 503 itself).
async fn refuse_while_draining(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let exempt = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if app.shutdown.is_cancelled() && !exempt {
        return ApiError(Error::new(
            ErrorCode::ShuttingDown,
            "the server is shutting down",
        ))
        .into_response();
    }
    next.run(request).await
}
