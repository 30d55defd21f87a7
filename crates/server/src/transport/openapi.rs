//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/openapi.json`.
//!
//! Responses that do not depend on the handler (the accept loop's 429, the draining 503, the
//! body limit's 413, the bearer check's 401) are added to every operation they apply to by
//! [`SharedResponses`], so that no handler's list can forget them.

use banter_protocol::admin::{
    AdminSession, AdminUser, AdminUserDetail, CreateInviteRequest, CreateUserRequest,
    CreatedInvite, InviteInfo, InvitePage, Stats, UserPage,
};
use banter_protocol::{
    ChangePasswordRequest, ErrorBody, ErrorCode, ErrorResponse, LoginRequest, LoginResponse,
    MediaInfo, RegisterRequest, SessionInfo, Sticker, StickerList, User,
};
use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use super::{admin, http, media, stickers, ws};

/// Banter's HTTP API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Banter", description = "Banter instant-messaging server: HTTP API. \
        The WebSocket protocol is described in docs/PROTOCOL.md. Every error body is an \
        `ErrorResponse`; its `code` is the machine-readable reason."),
    paths(
        http::register, http::login, http::sessions, http::logout, http::revoke, http::me,
        http::change_password, http::search_users, http::healthz, http::readyz, http::metrics,
        ws::upgrade, admin::create_user, admin::users, admin::user, admin::disable,
        admin::enable, admin::delete_user, admin::sessions, admin::revoke_session,
        admin::create_invite, admin::invites, admin::revoke_invite, admin::stats,
        media::upload, media::info, media::download, media::thumbnail, stickers::list,
        stickers::image,
    ),
    components(schemas(
        RegisterRequest, LoginRequest, LoginResponse, ChangePasswordRequest, User, SessionInfo,
        ErrorResponse, ErrorBody, ErrorCode, CreateUserRequest, AdminUser, AdminUserDetail,
        UserPage, AdminSession, CreateInviteRequest, CreatedInvite, InviteInfo, InvitePage, Stats,
        MediaInfo, StickerList, Sticker,
    )),
    modifiers(&BearerAuth, &SharedResponses),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The server's admin_token (BANTER_ADMIN_TOKEN)"))
                    .build(),
            ),
        );
    }
}

/// Paths that answer while the server drains (`refuse_while_draining`) and touch no store.
const HEALTH_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Paths of the operator API, guarded by the admin token instead of a user's.
const ADMIN_PREFIX: &str = "/v1/admin/";

/// Adds the responses every route of a kind can give, whatever its handler does.
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let health = HEALTH_PATHS.contains(&path.as_str());
            let admin = path.starts_with(ADMIN_PREFIX);
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                shared_responses(op, health, admin);
            }
        }
    }
}

fn shared_responses(op: &mut Operation, health: bool, admin: bool) {
    add(
        op,
        429,
        "too_many_connections: the server or this address is at its connection limit (the \
         listener answers before routing, on any path)",
    );
    if !health {
        add(op, 503, "shutting_down: the server is draining");
        add(
            op,
            503,
            "store_unavailable: the store cannot write right now; retry later",
        );
    }
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    if json_body {
        add(
            op,
            400,
            "bad_request: the body is not JSON of this shape, or the request lacks \
             `Content-Type: application/json`",
        );
        add(
            op,
            413,
            "payload_too_large: the body exceeds max_body_bytes",
        );
    }
    if admin {
        add(
            op,
            401,
            "unauthorized: a missing or wrong admin token (`Authorization: Bearer <admin \
             token>`)",
        );
        add(
            op,
            404,
            "not_found: the admin API is off (no admin_token configured)",
        );
    } else if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add(
            op,
            401,
            "unauthorized: a missing, unknown or revoked bearer token",
        );
        add(op, 401, "token_expired: the bearer token has expired");
    }
}

/// Adds `why` to the `status` response of `op` (an `ErrorResponse`), creating it if needed;
/// a reason whose error code the response already names is left out.
fn add(op: &mut Operation, status: u16, why: &str) {
    let error_body = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorResponse")))
            .build()
    };
    let code = why.split(':').next().unwrap_or(why);
    let entry = op
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .content("application/json", error_body())
                    .build(),
            )
        });
    if let RefOr::T(response) = entry {
        if response.description.contains(code) {
            return;
        }
        if response.description.is_empty() {
            response.description = why.to_owned();
        } else {
            response.description = format!("{}; {why}", response.description);
        }
        response
            .content
            .entry("application/json".to_owned())
            .or_insert_with(error_body);
    }
}
