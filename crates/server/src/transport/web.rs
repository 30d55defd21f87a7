//! The web client: the files of `web/app/`, embedded into the binary, served at `/`.
//!
//! The page (`index.html`) is served for `/` and for every other `GET` path that is not an API
//! route (`/v1/…`), an asset (`/assets/…`) or a file name (a last segment with a dot), so the
//! client's own routes (`/c/12`, `/contacts`) survive a reload. It names its scripts and styles
//! under `/assets/<version>/`, where the version is a hash of every file's content; those
//! responses may be cached for a year, and a new build changes every URL. A request for another
//! version is `404`, so a stale page never caches today's files under yesterday's name.
//!
//! Release builds carry the files inside the binary; debug builds read them from `web/app/`
//! on each request (rust-embed's behaviour), so the client can be edited without a rebuild.
//! Either way the version is the hash of the content being served.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use banter_protocol::ErrorCode;
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::error::Error;
use crate::state::App;

#[derive(rust_embed::Embed)]
#[folder = "../../web/app"]
struct Files;

/// Where versioned assets live.
const ASSETS: &str = "/assets/";
/// The placeholder in `index.html` replaced by `/assets/<version>`.
const PLACEHOLDER: &str = "%ASSETS%";

/// What the page may load and do: only its own scripts, styles and connections (the WebSocket
/// included), no inline script or style, no plugins, never framed. Avatars are the one outside
/// source (`https:` images, which run no code); `blob:` images and media are files the client
/// fetched with its token (an `<img>` cannot send one).
pub(super) const APP_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob: https:; media-src blob:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page and the asset version, computed once when the files are embedded.
struct Rendered {
    version: String,
    index: bytes::Bytes,
}

/// The current page and version: once for embedded files, afresh in debug builds (whose files
/// may change while the server runs).
fn rendered() -> Rendered {
    if cfg!(debug_assertions) {
        return render();
    }
    static ONCE: OnceLock<(String, bytes::Bytes)> = OnceLock::new();
    let (version, index) = ONCE.get_or_init(|| {
        let r = render();
        (r.version, r.index)
    });
    Rendered {
        version: version.clone(),
        index: index.clone(),
    }
}

fn render() -> Rendered {
    let mut names: Vec<_> = Files::iter().collect();
    names.sort();
    let mut hasher = Sha256::new();
    for name in &names {
        if let Some(file) = Files::get(name) {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(file.metadata.sha256_hash());
        }
    }
    let digest = hasher.finalize();
    let version: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let page = Files::get("index.html")
        .map(|f| String::from_utf8_lossy(&f.data).into_owned())
        .unwrap_or_default();
    let index = page.replace(PLACEHOLDER, &format!("{ASSETS}{version}"));
    Rendered {
        version,
        index: index.into(),
    }
}

/// Every route the router does not know: the page, an asset, or a typed `404` (always, with
/// `web_client = false`).
pub(super) async fn fallback(State(app): State<Arc<App>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let readable = method == Method::GET || method == Method::HEAD;
    if !app.config.web_client || !readable || path == "/v1" || path.starts_with("/v1/") {
        return not_found();
    }
    if let Some(rest) = path.strip_prefix(ASSETS) {
        return asset(rest);
    }
    if path == ASSETS.trim_end_matches('/') {
        return not_found();
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return not_found();
    }
    page()
}

/// `index.html`, never cached (it names the current asset version).
fn page() -> Response {
    let Rendered { index, .. } = rendered();
    if index.is_empty() {
        return not_found();
    }
    let mut response = Body::from(index).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(APP_POLICY),
    );
    response
}

/// `<version>/<file>`: the file, cacheable for good, if the version is the current one.
fn asset(rest: &str) -> Response {
    let Some((version, name)) = rest.split_once('/') else {
        return not_found();
    };
    if version != rendered().version || !is_plain_relative(name) || name == "index.html" {
        return not_found();
    }
    let Some(file) = Files::get(name) else {
        return not_found();
    };
    // Embedded files are served from the binary's own bytes, never copied.
    let body = match file.data {
        std::borrow::Cow::Borrowed(bytes) => bytes::Bytes::from_static(bytes),
        std::borrow::Cow::Owned(bytes) => bytes::Bytes::from(bytes),
    };
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(APP_POLICY),
    );
    response
}

/// A path of plain names: no empty, `.` or `..` segment, no backslash or NUL, so a request
/// can only name a file of the client (debug builds read from disk).
fn is_plain_relative(name: &str) -> bool {
    !name.contains(['\\', '\0'])
        && name
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// The media type of a client file, by extension; nothing is left for the browser to sniff.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn not_found() -> Response {
    ApiError(Error::new(ErrorCode::NotFound, "no such route")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_served() {
        assert!(is_plain_relative("main.js"));
        assert!(is_plain_relative("ui/chat.js"));
        for bad in [
            "",
            "/etc/passwd",
            "../Cargo.toml",
            "ui/../../x",
            "./main.js",
            "ui//x",
            "a\\b",
            "a\0",
        ] {
            assert!(!is_plain_relative(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_page_names_the_current_version() {
        let r = render();
        assert_eq!(r.version.len(), 12);
        let page = String::from_utf8(r.index.to_vec()).unwrap();
        assert!(!page.contains(PLACEHOLDER));
        assert!(page.contains(&format!("/assets/{}/main.js", r.version)));
    }
}
