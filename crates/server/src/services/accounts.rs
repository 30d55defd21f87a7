//! Accounts: registration, login tokens, sessions (devices), password changes, user lookup.
//!
//! Tokens are 32 random bytes (base64url); only their SHA-256 is stored, so a database leak
//! yields no usable token. Revoking a session closes its open sockets at once (close 4001).

use std::sync::Arc;

use banter_protocol::{CloseCode, ErrorCode, LoginResponse, SessionInfo, User};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::password::Hasher;
use super::{Caller, parse_id};
use crate::bus::Bus;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::store::{NewSession, SessionRecord, Store, UserRecord};

/// Username rules: 3–32 of `[a-z0-9_.-]`, stored lower-case.
const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Password length in bytes.
const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;
/// Device labels are cut to this many bytes.
const DEVICE_MAX: usize = 64;
/// Most users a prefix search returns.
pub const SEARCH_MAX: u32 = 50;

/// The accounts service.
pub struct Accounts {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    hasher: Hasher,
    token_ttl_ms: i64,
    /// A hash to verify against when the username is unknown, so that a failed login takes
    /// the same time whether or not the user exists.
    decoy_hash: OnceCell<String>,
}

/// The wire form of a user.
pub fn user_view(u: &UserRecord) -> User {
    User {
        id: u.id.to_string(),
        username: u.username.clone(),
        created_at: u.created_at,
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn validate_password(password: &str) -> Result<()> {
    if PASSWORD_LEN.contains(&password.len()) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidPassword,
            "password must be 8 to 128 bytes",
        ))
    }
}

/// Lower-cases and checks a username.
fn normalize_username(raw: &str) -> Result<String> {
    let name = raw.to_ascii_lowercase();
    let ok = USERNAME_LEN.contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(Error::new(
            ErrorCode::InvalidUsername,
            "username must be 3 to 32 characters of a-z, 0-9, '_', '.', '-'",
        ))
    }
}

impl Accounts {
    /// A service over `store`, kicking revoked sessions through `bus`.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        password_memory_kib: u32,
        password_iterations: u32,
        token_ttl_secs: u64,
    ) -> Self {
        Self {
            store,
            bus,
            hasher: Hasher::new(password_memory_kib, password_iterations),
            token_ttl_ms: i64::try_from(token_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            decoy_hash: OnceCell::new(),
        }
    }

    /// Creates an account.
    pub async fn register(&self, username: &str, password: &str) -> Result<User> {
        let username = normalize_username(username)?;
        validate_password(password)?;
        let hash = self.hasher.hash(password.to_owned()).await?;
        let user = self.store.create_user(&username, &hash).await?;
        tracing::info!(user = user.id, %username, "registered");
        Ok(user_view(&user))
    }

    /// Checks credentials and issues a token for a new session.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device: Option<&str>,
    ) -> Result<LoginResponse> {
        let bad = Error::new(ErrorCode::BadCredentials, "wrong username or password");
        let user = match normalize_username(username) {
            Ok(name) => self.store.user_by_name(&name).await?,
            Err(_) => None,
        };
        let phc = match &user {
            Some(u) => u.password_hash.clone(),
            None => self.decoy().await?,
        };
        let matches = self.hasher.verify(password.to_owned(), phc).await?;
        let user = match user {
            Some(u) if matches => u,
            _ => return Err(bad),
        };
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        let now = now_ms();
        let device = device.unwrap_or("unnamed device");
        let device = truncate(device, DEVICE_MAX);
        let session = self
            .store
            .create_session(NewSession {
                user_id: user.id,
                token_hash: token_hash(&token),
                device: device.to_owned(),
                created_at: now,
                expires_at: now.saturating_add(self.token_ttl_ms),
            })
            .await?;
        tracing::info!(user = user.id, session = session.id, "logged in");
        Ok(LoginResponse {
            token,
            session_id: session.id.to_string(),
            expires_at: session.expires_at,
            user: user_view(&user),
        })
    }

    async fn decoy(&self) -> Result<String> {
        self.decoy_hash
            .get_or_try_init(|| self.hasher.hash("decoy password".to_owned()))
            .await
            .cloned()
    }

    /// Resolves a bearer token to its caller.
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        let session = self
            .store
            .session_by_token(token_hash(token))
            .await?
            .ok_or(Error::new(
                ErrorCode::Unauthorized,
                "unknown or revoked token",
            ))?;
        if session.expires_at <= now_ms() {
            return Err(Error::new(ErrorCode::TokenExpired, "the token has expired"));
        }
        Ok(Caller {
            user: session.user_id,
            session: session.id,
            conn: None,
        })
    }

    /// The caller's account.
    pub async fn me(&self, caller: &Caller) -> Result<User> {
        let user = self
            .store
            .user_by_id(caller.user)
            .await?
            .ok_or(Error::new(ErrorCode::Unauthorized, "the account is gone"))?;
        Ok(user_view(&user))
    }

    /// Ends the caller's own session.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        self.revoke_id(caller, caller.session).await
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>> {
        let list = self.store.sessions_of(caller.user).await?;
        Ok(list
            .iter()
            .map(|s: &SessionRecord| SessionInfo {
                id: s.id.to_string(),
                device: s.device.clone(),
                created_at: s.created_at,
                expires_at: s.expires_at,
                current: s.id == caller.session,
            })
            .collect())
    }

    /// Revokes one of the caller's sessions by its wire id.
    pub async fn revoke(&self, caller: &Caller, session: &str) -> Result<()> {
        let id = parse_id(session, ErrorCode::UnknownSession, "session")?;
        self.revoke_id(caller, id).await
    }

    async fn revoke_id(&self, caller: &Caller, session: i64) -> Result<()> {
        match self.store.revoke_session(caller.user, session).await {
            Err(crate::store::StoreError::NotFound) => Err(Error::new(
                ErrorCode::UnknownSession,
                "no such session for this account",
            )),
            other => other.map_err(Error::from),
        }?;
        self.bus
            .kick_session(caller.user, session, CloseCode::AuthRevoked);
        tracing::info!(user = caller.user, session, "session revoked");
        Ok(())
    }

    /// Changes the password and revokes every other session of the account.
    pub async fn change_password(&self, caller: &Caller, old: &str, new: &str) -> Result<()> {
        validate_password(new)?;
        let user = self
            .store
            .user_by_id(caller.user)
            .await?
            .ok_or(Error::new(ErrorCode::Unauthorized, "the account is gone"))?;
        if !self
            .hasher
            .verify(old.to_owned(), user.password_hash)
            .await?
        {
            return Err(Error::new(
                ErrorCode::BadCredentials,
                "the current password is wrong",
            ));
        }
        let hash = self.hasher.hash(new.to_owned()).await?;
        self.store.set_password(caller.user, &hash).await?;
        let revoked = self
            .store
            .revoke_other_sessions(caller.user, caller.session)
            .await?;
        for session in revoked {
            self.bus
                .kick_session(caller.user, session, CloseCode::AuthRevoked);
        }
        Ok(())
    }

    /// Users whose username starts with `prefix` (case-insensitive).
    pub async fn search(&self, prefix: &str, limit: Option<u32>) -> Result<Vec<User>> {
        let limit = limit.unwrap_or(20).clamp(1, SEARCH_MAX);
        let prefix = prefix.to_ascii_lowercase();
        if prefix.is_empty() || prefix.len() > *USERNAME_LEN.end() {
            return Err(Error::new(
                ErrorCode::BadRequest,
                "prefix must be 1 to 32 characters",
            ));
        }
        let users = self.store.users_by_prefix(&prefix, limit).await?;
        Ok(users.iter().map(user_view).collect())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalized_and_checked() {
        assert_eq!(normalize_username("Alice_1").unwrap(), "alice_1");
        for bad in ["ab", "has space", "ünïcode", &"x".repeat(33)] {
            assert_eq!(
                normalize_username(bad).unwrap_err().code,
                ErrorCode::InvalidUsername,
                "{bad}"
            );
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
