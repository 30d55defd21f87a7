//! Handlers of the operator API (`/v1/admin/...`), guarded by the admin token
//! ([`Operator`]). Each is documented for the OpenAPI document; the shared 401 and 404 of the
//! guard are added to every one of them by `openapi::SharedResponses`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use banter_protocol::ErrorResponse;
use banter_protocol::admin::{
    AdminSession, AdminUser, AdminUserDetail, CreateInviteRequest, CreateUserRequest,
    CreatedInvite, InvitePage, Stats, UserPage,
};
use serde::Deserialize;

use super::ApiError;
use super::extract::{JsonBody, QueryParams, bearer};
use crate::state::App;

type Shared = State<Arc<App>>;

/// A request that carried the admin token.
pub(crate) struct Operator;

impl FromRequestParts<Arc<App>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        app.admin.authorize(bearer(&parts.headers))?;
        Ok(Self)
    }
}

/// Creates a user, whatever the sign-up policy.
#[utoipa::path(post, path = "/v1/admin/users", security(("admin" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = AdminUser),
        (status = 400, description = "invalid_username, invalid_password", body = ErrorResponse),
        (status = 409, description = "username_taken", body = ErrorResponse),
        (status = 503, description = "busy: the password hashing queue is full (Retry-After)", body = ErrorResponse),
    ))]
pub(super) async fn create_user(
    State(app): Shared,
    _: Operator,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> Result<(StatusCode, Json<AdminUser>), ApiError> {
    let user = app.admin.create_user(&req.username, &req.password).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Query of `GET /v1/admin/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UsersQuery {
    /// Only usernames starting with this (case-insensitive), at most 32 bytes.
    #[param(max_length = 32)]
    prefix: Option<String>,
    /// The `next` of the previous page: usernames after this one, at most 64 bytes.
    #[param(max_length = 64)]
    after: Option<String>,
    /// At most this many users: 50 if absent; any other value is brought into 1–200.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
}

/// Lists users by username (deleted and disabled ones included, and marked), paged.
#[utoipa::path(get, path = "/v1/admin/users", security(("admin" = [])), params(UsersQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "bad_request: `prefix` over 32 bytes, `after` over 64, or `limit` not an unsigned 32-bit integer", body = ErrorResponse),
    ))]
pub(super) async fn users(
    State(app): Shared,
    _: Operator,
    QueryParams(q): QueryParams<UsersQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let page = app
        .admin
        .users(q.prefix.as_deref(), q.after.as_deref(), q.limit)
        .await?;
    Ok(Json(page))
}

/// One user, with their live sessions and open connections.
#[utoipa::path(get, path = "/v1/admin/users/{id}", security(("admin" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = AdminUserDetail),
        (status = 404, description = "unknown_user", body = ErrorResponse),
    ))]
pub(super) async fn user(
    State(app): Shared,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<AdminUserDetail>, ApiError> {
    Ok(Json(app.admin.user(&id).await?))
}

/// Disables a user: their sessions are revoked, their sockets close (4001), and their logins
/// are refused with `account_disabled` until they are enabled again.
#[utoipa::path(post, path = "/v1/admin/users/{id}/disable", security(("admin" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Disabled", body = AdminUser),
        (status = 404, description = "unknown_user: no such user, or deleted", body = ErrorResponse),
    ))]
pub(super) async fn disable(
    State(app): Shared,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<AdminUser>, ApiError> {
    Ok(Json(app.admin.set_disabled(&id, true).await?))
}

/// Enables a disabled user (they log in again; their old sessions stay revoked).
#[utoipa::path(post, path = "/v1/admin/users/{id}/enable", security(("admin" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Enabled", body = AdminUser),
        (status = 404, description = "unknown_user: no such user, or deleted", body = ErrorResponse),
    ))]
pub(super) async fn enable(
    State(app): Shared,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<AdminUser>, ApiError> {
    Ok(Json(app.admin.set_disabled(&id, false).await?))
}

/// Deletes a user: they leave their groups (owned groups pass to their senior admin or
/// longest-standing member, or are dissolved when they were alone), their sessions,
/// friendships, requests and blocks go, and the account stays as a tombstone
/// (`deleted:<id>`) so that their messages keep a sender.
#[utoipa::path(delete, path = "/v1/admin/users/{id}", security(("admin" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "unknown_user: no such user, or deleted already", body = ErrorResponse),
    ))]
pub(super) async fn delete_user(
    State(app): Shared,
    _: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.admin.delete_user(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's live sessions (at most `max_sessions_per_user`).
#[utoipa::path(get, path = "/v1/admin/users/{id}/sessions", security(("admin" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Sessions, oldest first", body = Vec<AdminSession>),
        (status = 404, description = "unknown_user", body = ErrorResponse),
    ))]
pub(super) async fn sessions(
    State(app): Shared,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<Vec<AdminSession>>, ApiError> {
    Ok(Json(app.admin.sessions(&id).await?))
}

/// Revokes one of a user's sessions; its sockets close with 4001.
#[utoipa::path(delete, path = "/v1/admin/users/{id}/sessions/{session}", security(("admin" = [])),
    params(
        ("id" = String, Path, description = "User id"),
        ("session" = String, Path, description = "Session id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "unknown_user; unknown_session: no live session of this user with this id", body = ErrorResponse),
    ))]
pub(super) async fn revoke_session(
    State(app): Shared,
    _: Operator,
    Path((id, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.admin.revoke_session(&id, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an invitation code; the reply is the only place the code is ever shown.
#[utoipa::path(post, path = "/v1/admin/invites", security(("admin" = [])),
    request_body = CreateInviteRequest,
    responses(
        (status = 201, description = "Created", body = CreatedInvite),
        (status = 400, description = "invalid_field: `uses` outside 1–1000 or `ttl_secs` outside 60–31536000", body = ErrorResponse),
        (status = 409, description = "too_many_invites: 1000 invitations are live already", body = ErrorResponse),
    ))]
pub(super) async fn create_invite(
    State(app): Shared,
    _: Operator,
    JsonBody(req): JsonBody<CreateInviteRequest>,
) -> Result<(StatusCode, Json<CreatedInvite>), ApiError> {
    let invite = app.admin.create_invite(&req).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

/// Query of `GET /v1/admin/invites`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct InvitesQuery {
    /// The `next` of the previous page: invitations older than this id.
    before: Option<String>,
    /// At most this many: 50 if absent; any other value is brought into 1–200.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
}

/// Lists invitations, newest first, without their codes.
#[utoipa::path(get, path = "/v1/admin/invites", security(("admin" = [])), params(InvitesQuery),
    responses(
        (status = 200, description = "A page of invitations", body = InvitePage),
        (status = 400, description = "bad_request: `before` not a positive id, or `limit` not an unsigned 32-bit integer", body = ErrorResponse),
    ))]
pub(super) async fn invites(
    State(app): Shared,
    _: Operator,
    QueryParams(q): QueryParams<InvitesQuery>,
) -> Result<Json<InvitePage>, ApiError> {
    Ok(Json(app.admin.invites(q.before.as_deref(), q.limit).await?))
}

/// Revokes an invitation: registrations with its code are refused from now on.
#[utoipa::path(delete, path = "/v1/admin/invites/{id}", security(("admin" = [])),
    params(("id" = String, Path, description = "Invitation id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "unknown_invite: no such invitation, or revoked already", body = ErrorResponse),
    ))]
pub(super) async fn revoke_invite(
    State(app): Shared,
    _: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.admin.revoke_invite(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Counts of users, sessions, connections, groups, conversations, messages, rooms and
/// invitations.
#[utoipa::path(get, path = "/v1/admin/stats", security(("admin" = [])),
    responses((status = 200, description = "Counts", body = Stats)))]
pub(super) async fn stats(State(app): Shared, _: Operator) -> Result<Json<Stats>, ApiError> {
    Ok(Json(app.admin.stats().await?))
}
