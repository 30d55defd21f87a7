//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/openapi.json`.

use banter_protocol::{
    ChangePasswordRequest, ErrorBody, ErrorCode, ErrorResponse, LoginRequest, LoginResponse,
    RegisterRequest, SessionInfo, User,
};
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{http, ws};

/// Banter's HTTP API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Banter", description = "Banter instant-messaging server: HTTP API. \
        The WebSocket protocol is described in docs/PROTOCOL.md."),
    paths(
        http::register, http::login, http::sessions, http::logout, http::revoke, http::me,
        http::change_password, http::search_users, http::healthz, http::readyz, http::metrics,
        ws::upgrade,
    ),
    components(schemas(
        RegisterRequest, LoginRequest, LoginResponse, ChangePasswordRequest, User, SessionInfo,
        ErrorResponse, ErrorBody, ErrorCode,
    )),
    modifiers(&BearerAuth),
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
    }
}
