//! The operator API (`/v1/admin/...`) over the same plain HTTP/1.1 client as [`Api`]: what
//! `banter admin` and the tests use.

use banter_protocol::admin::{
    AdminSession, AdminUser, AdminUserDetail, CreateInviteRequest, CreateUserRequest,
    CreatedInvite, InvitePage, Stats, UserPage,
};
use hyper::Method;

use crate::api::urlencode;
use crate::{Api, ClientError};

/// Client of one server's admin API, holding the admin token.
#[derive(Clone)]
pub struct AdminApi {
    api: Api,
    token: String,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi")
            .field("addr", &self.api.addr())
            .finish_non_exhaustive()
    }
}

/// `?a=b&c=d` from the parameters that are set.
fn query(params: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

impl AdminApi {
    /// A client for the server at `addr` (`host:port`) with the admin `token`.
    pub fn new(addr: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            api: Api::new(addr),
            token: token.into(),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, ClientError> {
        self.api
            .call_json(method, path, Some(&self.token), body)
            .await
    }

    async fn empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        self.api
            .call::<()>(method, path, Some(&self.token), None::<&()>)
            .await
            .map(drop)
    }

    /// Creates a user (under any sign-up policy).
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
    ) -> Result<AdminUser, ClientError> {
        let body = CreateUserRequest {
            username: username.into(),
            password: password.into(),
        };
        self.json(Method::POST, "/v1/admin/users", Some(&body))
            .await
    }

    /// A page of users, by username.
    pub async fn users(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<UserPage, ClientError> {
        let q = query(&[
            ("prefix", prefix.map(Into::into)),
            ("after", after.map(Into::into)),
            ("limit", limit.map(|l| l.to_string())),
        ]);
        self.json(Method::GET, &format!("/v1/admin/users{q}"), None::<&()>)
            .await
    }

    /// One user.
    pub async fn user(&self, id: &str) -> Result<AdminUserDetail, ClientError> {
        let path = format!("/v1/admin/users/{}", urlencode(id));
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// Disables (`true`) or enables a user.
    pub async fn set_disabled(&self, id: &str, disabled: bool) -> Result<AdminUser, ClientError> {
        let verb = if disabled { "disable" } else { "enable" };
        let path = format!("/v1/admin/users/{}/{verb}", urlencode(id));
        self.json(Method::POST, &path, None::<&()>).await
    }

    /// Deletes a user.
    pub async fn delete_user(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/admin/users/{}", urlencode(id));
        self.empty(Method::DELETE, &path).await
    }

    /// A user's live sessions.
    pub async fn sessions(&self, id: &str) -> Result<Vec<AdminSession>, ClientError> {
        let path = format!("/v1/admin/users/{}/sessions", urlencode(id));
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// Revokes one of a user's sessions.
    pub async fn revoke_session(&self, id: &str, session: &str) -> Result<(), ClientError> {
        let path = format!(
            "/v1/admin/users/{}/sessions/{}",
            urlencode(id),
            urlencode(session)
        );
        self.empty(Method::DELETE, &path).await
    }

    /// Creates an invitation.
    pub async fn create_invite(
        &self,
        uses: Option<u32>,
        ttl_secs: Option<u64>,
    ) -> Result<CreatedInvite, ClientError> {
        let body = CreateInviteRequest { uses, ttl_secs };
        self.json(Method::POST, "/v1/admin/invites", Some(&body))
            .await
    }

    /// A page of invitations, newest first.
    pub async fn invites(
        &self,
        before: Option<&str>,
        limit: Option<u32>,
    ) -> Result<InvitePage, ClientError> {
        let q = query(&[
            ("before", before.map(Into::into)),
            ("limit", limit.map(|l| l.to_string())),
        ]);
        self.json(Method::GET, &format!("/v1/admin/invites{q}"), None::<&()>)
            .await
    }

    /// Revokes an invitation.
    pub async fn revoke_invite(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/admin/invites/{}", urlencode(id));
        self.empty(Method::DELETE, &path).await
    }

    /// Server counts.
    pub async fn stats(&self) -> Result<Stats, ClientError> {
        self.json(Method::GET, "/v1/admin/stats", None::<&()>).await
    }
}
