//! The built-in stickers over HTTP: `GET /v1/stickers` (the set) and `GET /v1/stickers/{id}`
//! (one image). Both are public and the same for everyone, so they need no token: an `<img>`
//! can load a sticker directly. The images are the server's own, but they are still served
//! as media (`nosniff`, a sandboxing policy), never as a page.

use axum::Json;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use banter_protocol::{ErrorCode, ErrorResponse, StickerList};

use super::ApiError;
use super::media::{MEDIA_POLICY, etag_matches};
use crate::error::Error;
use crate::media::stickers::{self, STICKERS};

/// How long a client may keep the set or an image without asking again: a day, since a new
/// server version may redraw a sticker under the same id.
const CACHE: &str = "public, max-age=86400";

/// The server's sticker set, in the order to show it.
#[utoipa::path(get, path = "/v1/stickers",
    responses((status = 200, description = "The built-in stickers", body = StickerList)))]
pub(super) async fn list() -> Response {
    let stickers = STICKERS.iter().map(stickers::BuiltIn::view).collect();
    let mut response = Json(StickerList { stickers }).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(CACHE));
    response
}

/// One sticker's image (SVG).
#[utoipa::path(get, path = "/v1/stickers/{id}",
    params(("id" = String, Path, description = "The sticker's id, from GET /v1/stickers")),
    responses(
        (status = 200, description = "The image", content_type = "image/svg+xml", body = String),
        (status = 304, description = "The client's copy (If-None-Match) is current"),
        (status = 404, description = "unknown_sticker", body = ErrorResponse),
    ))]
pub(super) async fn image(Path(id): Path<String>, asked: HeaderMap) -> Result<Response, ApiError> {
    let sticker = stickers::find(&id)
        .ok_or_else(|| Error::new(ErrorCode::UnknownSticker, "no such sticker"))?;
    let etag = sticker.etag();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(MEDIA_POLICY),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE));
    headers.insert(
        ETAG,
        HeaderValue::from_str(etag).expect("an ETag is hex digits"),
    );
    if etag_matches(&asked, etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    Ok((headers, sticker.svg).into_response())
}
