//! Media over HTTP: `POST /v1/media` (the upload, streamed), `GET /v1/media/{id}/info` (the
//! hash pre-check), `GET /v1/media/{id}` and `GET /v1/media/{id}/thumbnail` (downloads with
//! single ranges). Every download is served as an untrusted file from the app's own origin:
//! its sniffed type, `nosniff`, `Content-Security-Policy: sandbox; default-src 'none'`, and
//! `Content-Disposition: attachment` for everything but the raster image types.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use banter_protocol::{ErrorResponse, MediaInfo};
use futures_util::StreamExt;
use serde::Deserialize;

use super::ApiError;
use super::deadline::Progress;
use super::extract::{Authed, QueryParams};
use crate::media::service::{Readable, Slot, Variant};
use crate::state::App;

type Shared = State<Arc<App>>;

/// The policy of every media response: as a page, it runs nothing and loads nothing.
pub(super) const MEDIA_POLICY: &str = "sandbox; default-src 'none'";

/// Whether `If-None-Match` names `etag` (or is `*`).
pub(super) fn etag_matches(asked: &HeaderMap, etag: &str) -> bool {
    asked
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// Types shown inline (in an `<img>`); every other type downloads as an attachment.
const INLINE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Where `POST /v1/media` reads the file's name.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadParams {
    /// The file's name, to show (no path separators, at most 255 bytes); never used as a path.
    name: Option<String>,
}

/// Uploads a file: the raw bytes as the body (any `Content-Type`: the type is sniffed from the
/// bytes). Identical bytes are stored once; the answer is 200 instead of 201 then.
#[utoipa::path(post, path = "/v1/media", params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = MediaInfo),
        (status = 200, description = "These bytes were stored already", body = MediaInfo),
        (status = 400, description = "invalid_media: empty, damaged, or an image over the pixel limit (a decompression bomb); invalid_file_name; bad_request: the upload was cut off", body = ErrorResponse),
        (status = 413, description = "media_too_large: over media_max_file_bytes; quota_exceeded: over the caller's media_quota_bytes", body = ErrorResponse),
        (status = 415, description = "unsupported_media_type: a sniffed type not in media_types, or an SVG with script", body = ErrorResponse),
        (status = 429, description = "rate_limited: media_uploads_per_user uploads in progress (Retry-After)", body = ErrorResponse),
        (status = 503, description = "busy: too many images wait to be decoded (Retry-After)", body = ErrorResponse),
    ))]
pub(super) async fn upload(
    State(app): Shared,
    Authed(caller): Authed,
    QueryParams(params): QueryParams<UploadParams>,
    request: Request,
) -> Result<Response, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let meter = Progress::meter(request.extensions().get::<Progress>().cloned());
    let body = request.into_body().into_data_stream();
    let (info, new) = app
        .media
        .upload(caller.user, params.name, declared, body, meter)
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)).into_response())
}

/// The hash pre-check: the file with this SHA-256 if the caller may read it already (they
/// uploaded it, or it was sent into one of their conversations), so that sending it needs no
/// upload. A file the server holds only for others is `unknown_media` like a missing one.
#[utoipa::path(get, path = "/v1/media/{id}/info",
    params(("id" = String, Path, description = "SHA-256 of the file's bytes, lowercase hex")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The file", body = MediaInfo),
        (status = 404, description = "unknown_media", body = ErrorResponse),
    ))]
pub(super) async fn info(
    State(app): Shared,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<MediaInfo>, ApiError> {
    Ok(Json(app.media.lookup(caller.user, &id).await?))
}

/// Downloads a file the caller may read (its uploader, or a member of a conversation it was
/// sent into). One `Range: bytes=…` range is honoured (206); several are answered whole.
#[utoipa::path(get, path = "/v1/media/{id}",
    params(("id" = String, Path, description = "SHA-256 of the file's bytes, lowercase hex")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The file (its sniffed type; images inline, anything else as an attachment)"),
        (status = 206, description = "The requested range"),
        (status = 304, description = "If-None-Match matched: the content never changes"),
        (status = 404, description = "unknown_media: no such file, or not one the caller may read", body = ErrorResponse),
        (status = 429, description = "rate_limited: media_downloads_per_user downloads in progress (Retry-After)", body = ErrorResponse),
        (status = 416, description = "The range is outside the file (Content-Range: bytes */size)"),
    ))]
pub(super) async fn download(
    State(app): Shared,
    Authed(caller): Authed,
    Path(id): Path<String>,
    progress: Option<Extension<Progress>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let slot = app.media.download_slot(caller.user)?;
    let readable = app.media.open(caller.user, &id, Variant::Original).await?;
    serve(&app, &readable, &headers, progress.map(|p| p.0), slot).await
}

/// Downloads the thumbnail of an image the caller may read (JPEG, or PNG when transparent).
#[utoipa::path(get, path = "/v1/media/{id}/thumbnail",
    params(("id" = String, Path, description = "SHA-256 of the image's bytes, lowercase hex")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The thumbnail"),
        (status = 206, description = "The requested range"),
        (status = 304, description = "If-None-Match matched"),
        (status = 404, description = "unknown_media: no such file, not one the caller may read, or not an image", body = ErrorResponse),
        (status = 429, description = "rate_limited: media_downloads_per_user downloads in progress (Retry-After)", body = ErrorResponse),
        (status = 416, description = "The range is outside the thumbnail"),
    ))]
pub(super) async fn thumbnail(
    State(app): Shared,
    Authed(caller): Authed,
    Path(id): Path<String>,
    progress: Option<Extension<Progress>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let slot = app.media.download_slot(caller.user)?;
    let readable = app.media.open(caller.user, &id, Variant::Thumbnail).await?;
    serve(&app, &readable, &headers, progress.map(|p| p.0), slot).await
}

/// A single byte range of `size` bytes asked for by `header`: `Ok(None)` for the whole file
/// (no header, several ranges, or a form this server does not take), `Err(())` when it lies
/// outside the file.
pub(super) fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        // The last `end` bytes.
        let Ok(n) = end.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let Ok(first) = start.parse::<u64>() else {
            return Ok(None);
        };
        let last = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            match end.parse::<u64>() {
                Ok(last) if last >= first => last.min(size.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if first >= size {
            return Err(());
        }
        (first, last)
    };
    Ok(Some(range))
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `attachment; filename*=UTF-8''…`, or `inline`, per RFC 6266 / 5987.
fn disposition(readable: &Readable) -> HeaderValue {
    let kind = if INLINE_TYPES.contains(&readable.mime.as_str()) {
        "inline"
    } else {
        "attachment"
    };
    match &readable.name {
        Some(name) => {
            let encoded: String = name
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            header(&format!("{kind}; filename*=UTF-8''{encoded}"))
        }
        None => HeaderValue::from_static(if kind == "inline" {
            "inline"
        } else {
            "attachment"
        }),
    }
}

async fn serve(
    app: &App,
    readable: &Readable,
    asked: &HeaderMap,
    progress: Option<Progress>,
    slot: Slot,
) -> Result<Response, ApiError> {
    let etag = format!("\"{}\"", readable.key);
    let mut headers = HeaderMap::new();
    let mime = if readable.mime == "text/plain" {
        "text/plain; charset=utf-8"
    } else {
        readable.mime.as_str()
    };
    headers.insert(CONTENT_TYPE, header(mime));
    headers.insert(CONTENT_DISPOSITION, disposition(readable));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(MEDIA_POLICY),
    );
    // Authorised per user: never in a shared cache; immutable, since the key is the content.
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    headers.insert(ETAG, header(&etag));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if etag_matches(asked, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let size = readable.size;
    let range = asked.get(RANGE).and_then(|v| v.to_str().ok());
    let (status, first, last) = match parse_range(range, size) {
        Ok(None) => (StatusCode::OK, 0, size.saturating_sub(1)),
        Ok(Some((first, last))) => {
            headers.insert(
                CONTENT_RANGE,
                header(&format!("bytes {first}-{last}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, first, last)
        }
        Err(()) => {
            headers.insert(CONTENT_RANGE, header(&format!("bytes */{size}")));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response());
        }
    };
    let len = if size == 0 { 0 } else { last - first + 1 };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    let stream = app.media.read(readable, first..first + len).await?;
    let mut meter = Progress::meter(progress);
    let body = stream.inspect(move |chunk| {
        // The download counts for its user until its body is done or dropped.
        let _counted = &slot;
        if let Ok(chunk) = chunk {
            meter(chunk.len() as u64);
        }
    });
    Ok((status, headers, Body::from_stream(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(parse_range(Some("bytes=-4"), 10), Ok(Some((6, 9))));
        assert_eq!(parse_range(Some("bytes=-40"), 10), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Ok(None));
    }
}
