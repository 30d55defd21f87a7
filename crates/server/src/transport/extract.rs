//! Extractors whose rejections are typed Banter errors instead of axum's plain-text ones, with
//! serde's Rust type names taken out of the message (see [`plain_parse_error`]).

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use banter_protocol::ErrorCode;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::error::{Error, plain_parse_error};
use crate::services::Caller;
use crate::state::App;

/// The caller named by the `Authorization: Bearer` header.
pub(crate) struct Authed(pub(crate) Caller);

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or(Error::new(
            ErrorCode::Unauthorized,
            "missing `Authorization: Bearer <token>` header",
        ))?;
        Ok(Self(app.accounts.authenticate(token).await?))
    }
}

/// A JSON body; malformed → `bad_request`, too large → `payload_too_large`.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError(json_rejection(&rejection))),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::new(ErrorCode::PayloadTooLarge, "the request body is too large")
    } else if matches!(rejection, JsonRejection::MissingJsonContentType(_)) {
        // A JSON body under another type is refused: a browser sends text/plain and form types
        // cross-origin without asking first, JSON only after a preflight this server never grants.
        Error::new(
            ErrorCode::BadRequest,
            "send the JSON body with Content-Type: application/json",
        )
    } else {
        Error::with(
            ErrorCode::BadRequest,
            plain_parse_error(&rejection.body_text()),
        )
    }
}

/// Query parameters; malformed → `bad_request`.
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError(query_rejection(&rejection))),
        }
    }
}

/// axum's words before serde's in a query rejection.
const QUERY_PREFIX: &str = "Failed to deserialize query string: ";

/// "missing query parameter `prefix`" rather than axum's "Failed to deserialize query string:
/// missing field `prefix`" (a query has parameters, not fields).
fn query_rejection(rejection: &QueryRejection) -> Error {
    let text = rejection.body_text();
    let detail = text.strip_prefix(QUERY_PREFIX).unwrap_or(&text);
    let detail = plain_parse_error(detail);
    let message = match detail.strip_prefix("missing field ") {
        Some(name) => format!("missing query parameter {name}"),
        None => format!("bad query parameter: {detail}"),
    };
    Error::with(ErrorCode::BadRequest, message)
}
