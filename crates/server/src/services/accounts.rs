//! Accounts: registration, login tokens, sessions (devices), password changes, user lookup.
//!
//! Tokens are 32 random bytes (base64url); only their SHA-256 is stored, so a database leak
//! yields no usable token. Revoking a session closes its open sockets at once (close 4001), and
//! refuses its token from the very next request (the token cache, [`super::tokens`], is
//! invalidated before the revoking call returns).
//!
//! Every password check or hash goes through the bounded pool ([`super::hashing`]), and logins
//! and registrations through the throttles ([`super::throttle`]) first, so a stranger can make
//! the server hash only so often.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use banter_protocol::{CloseCode, ErrorCode, LoginResponse, SessionInfo, User};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::hashing::{HashPool, PoolConfig};
use super::throttle::{LoginPolicy, LoginThrottle, RegisterThrottle};
use super::tokens::{CachedSession, TokenCache};
use super::{Caller, parse_id};
use crate::bus::{Bus, Event};
use crate::clock::now_ms;
use crate::config::{Config, SignupPolicy};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::{NewSession, SessionId, SessionRecord, Store, UserId, UserRecord};

/// Username rules: 3–32 of `[a-z0-9_.-]`, stored lower-case.
const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Password length in bytes.
const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;
/// Device labels are cut to this many bytes.
const DEVICE_MAX: usize = 64;
/// The label of a session whose login named no device.
const DEVICE_UNNAMED: &str = "unnamed device";
/// Most users a prefix search returns.
pub const SEARCH_MAX: u32 = 50;
/// Longest invitation code accepted, in bytes (ours are 32 characters).
pub const INVITE_MAX: usize = 128;

mod operator;

/// The accounts service.
pub struct Accounts {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    hasher: HashPool,
    logins: LoginThrottle,
    registrations: RegisterThrottle,
    /// Shared with revocation tasks, which must finish even if their request is dropped.
    tokens: Arc<TokenCache>,
    token_ttl_ms: i64,
    /// Live sessions a user may hold (at least 1).
    max_sessions: u32,
    /// A hash to verify against when the username is unknown, so that a failed login takes
    /// the same time whether or not the user exists.
    decoy_hash: OnceCell<String>,
    /// Who may register.
    signup: SignupPolicy,
}

/// The wire form of a user.
pub fn user_view(u: &UserRecord) -> User {
    User {
        id: u.id.to_string(),
        username: u.username.clone(),
        created_at: u.created_at,
    }
}

/// SHA-256 of a token or an invitation code: what the store keeps instead of it.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
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
    /// A service over `store`, kicking revoked sessions through `bus`; starts the hashing
    /// workers.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        let hasher = HashPool::start(
            PoolConfig {
                workers: config.password_hash_workers,
                queue: config.password_hash_queue,
                memory_kib: config.password_memory_kib,
                iterations: config.password_iterations,
            },
            Arc::clone(&metrics),
        );
        tracing::debug!(workers = hasher.workers(), "password hashing pool started");
        Self {
            store,
            bus,
            metrics,
            hasher,
            logins: LoginThrottle::new(LoginPolicy {
                per_account: config.login_failures_per_account,
                per_address: config.login_failures_per_address,
                backoff: Duration::from_millis(config.login_backoff_ms),
                backoff_max: Duration::from_millis(config.login_backoff_max_ms),
            }),
            registrations: RegisterThrottle::new(
                config.register_per_address_per_hour,
                config.register_burst,
            ),
            tokens: Arc::new(TokenCache::default()),
            token_ttl_ms: i64::try_from(config.token_ttl_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            max_sessions: config.max_sessions_per_user.max(1),
            decoy_hash: OnceCell::new(),
            signup: config.signup,
        }
    }

    /// Creates an account under the sign-up policy; `from` (the client's address) is
    /// throttled. Under `invite`, one use of `invite` is taken in the transaction that inserts
    /// the user.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
        from: Option<IpAddr>,
    ) -> Result<User> {
        let invite = match self.signup {
            SignupPolicy::Open => None,
            SignupPolicy::Closed => {
                return Err(Error::new(
                    ErrorCode::SignupClosed,
                    "registration is closed on this server; ask an operator for an account",
                ));
            }
            SignupPolicy::Invite => Some(invite_hash(invite)?),
        };
        let username = normalize_username(username)?;
        validate_password(password)?;
        if let Some(addr) = from {
            self.registrations
                .admit(addr)
                .inspect_err(|_| self.metrics.registration_throttled())?;
        }
        let hash = self.hasher.hash(password.to_owned()).await?;
        let user = match invite {
            None => self.store.create_user(&username, &hash).await?,
            Some(code) => {
                self.store
                    .create_user_invited(&username, &hash, code)
                    .await?
            }
        };
        tracing::info!(user = user.id, %username, invited = invite.is_some(), "registered");
        Ok(user_view(&user))
    }

    /// Checks credentials and issues a token for a new session. The attempt is throttled per
    /// username and per `from` address before any hashing.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device: Option<&str>,
        from: Option<IpAddr>,
    ) -> Result<LoginResponse> {
        let bad = Error::new(ErrorCode::BadCredentials, "wrong username or password");
        let device = device_label(device)?;
        let name = normalize_username(username).ok();
        let attempt = self
            .logins
            .admit(name.as_deref(), from)
            .inspect_err(|_| self.metrics.login_throttled())?;
        // Refused before a verdict (busy, a store failure), the attempt is refunded; dropped
        // because the client went away, it counts as failed (see `super::throttle`).
        let user = match self.check_password(name.as_deref(), password).await {
            Err(e) => {
                attempt.refund();
                return Err(e);
            }
            Ok(Some(user)) => {
                attempt.succeeded();
                user
            }
            Ok(None) => {
                attempt.failed();
                return Err(bad);
            }
        };
        let disabled = Error::new(
            ErrorCode::AccountDisabled,
            "this account is disabled; ask an operator",
        );
        // Told only to someone who knows the password, so it reveals nothing to guessers.
        if user.disabled {
            return Err(disabled);
        }
        let token = random_code(32);
        let now = now_ms();
        let session = match self
            .store
            .create_session(NewSession {
                user_id: user.id,
                token_hash: token_hash(&token),
                device: device.to_owned(),
                created_at: now,
                expires_at: now.saturating_add(self.token_ttl_ms),
            })
            .await
        {
            // Disabled (or deleted) since the password check.
            Err(crate::store::StoreError::NotFound(_)) => return Err(disabled),
            other => other?,
        };
        tracing::info!(user = user.id, session = session.id, "logged in");
        self.trim_sessions(user.id).await?;
        Ok(LoginResponse {
            token,
            session_id: session.id.to_string(),
            expires_at: session.expires_at,
            user: user_view(&user),
        })
    }

    /// The user `name` if `password` is theirs. An unknown user is checked against the decoy
    /// hash, so that the answer takes as long either way.
    async fn check_password(
        &self,
        name: Option<&str>,
        password: &str,
    ) -> Result<Option<UserRecord>> {
        let user = match name {
            Some(name) => self.store.user_by_name(name).await?,
            None => None,
        }
        .filter(|u| !u.deleted);
        let phc = match &user {
            Some(u) => u.password_hash.clone(),
            None => self.decoy().await?,
        };
        // No stored password is outside these bounds, so such a guess needs no hashing (and
        // says nothing about whether the user exists).
        let matches = PASSWORD_LEN.contains(&password.len())
            && self.hasher.verify(password.to_owned(), phc).await?;
        Ok(user.filter(|_| matches))
    }

    async fn decoy(&self) -> Result<String> {
        self.decoy_hash
            .get_or_try_init(|| self.hasher.hash("decoy password".to_owned()))
            .await
            .cloned()
    }

    /// Resolves a bearer token to its caller, from the token cache when it can.
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        let hash = token_hash(token);
        let session = match self.tokens.get(&hash) {
            Ok(cached) => {
                self.metrics.token_lookup(true);
                cached
            }
            Err(seen) => {
                self.metrics.token_lookup(false);
                let record = self.store.session_by_token(hash).await?.ok_or(Error::new(
                    ErrorCode::Unauthorized,
                    "unknown or revoked token",
                ))?;
                let session = CachedSession {
                    user: record.user_id,
                    session: record.id,
                    expires_at: record.expires_at,
                };
                self.tokens.fill(seen, hash, session);
                session
            }
        };
        if session.expires_at <= now_ms() {
            return Err(Error::new(ErrorCode::TokenExpired, "the token has expired"));
        }
        Ok(Caller {
            user: session.user,
            session: session.session,
            conn: None,
            expires_at: session.expires_at,
        })
    }

    /// Revokes `user`'s oldest sessions past `max_sessions_per_user` (closing their sockets
    /// with 4001), so that logging in again and again cannot grow the session list without end.
    async fn trim_sessions(&self, user: UserId) -> Result<()> {
        let store = Arc::clone(&self.store);
        let keep = self.max_sessions;
        let revoked = self
            .revoke_with(user, async move { store.trim_sessions(user, keep).await })
            .await?;
        if !revoked.is_empty() {
            tracing::info!(
                user,
                revoked = revoked.len(),
                "oldest sessions revoked: too many"
            );
        }
        Ok(())
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
        let store = Arc::clone(&self.store);
        let user = caller.user;
        let revoked = self
            .revoke_with(user, async move {
                store
                    .revoke_session(user, session)
                    .await
                    .map(|()| vec![session])
            })
            .await;
        match revoked {
            Err(crate::store::StoreError::NotFound(_)) => Err(Error::new(
                ErrorCode::UnknownSession,
                "no such session for this account",
            )),
            other => other.map(drop).map_err(Error::from),
        }?;
        tracing::info!(user = caller.user, session, "session revoked");
        Ok(())
    }

    /// Runs a store revocation, then drops the revoked sessions from the token cache and
    /// closes their sockets, on a task of its own: a request dropped midway (its client went
    /// away) must not leave a revoked token cached.
    async fn revoke_with(
        &self,
        user: UserId,
        revoke: impl Future<Output = crate::store::StoreResult<Vec<SessionId>>> + Send + 'static,
    ) -> crate::store::StoreResult<Vec<SessionId>> {
        let tokens = Arc::clone(&self.tokens);
        let bus = Arc::clone(&self.bus);
        let task = tokio::spawn(async move {
            let revoked = revoke.await?;
            tokens.revoked(&revoked);
            for session in &revoked {
                crate::bus::publish(
                    &*bus,
                    Event::Kick {
                        user,
                        session: *session,
                        code: CloseCode::AuthRevoked,
                    },
                );
            }
            Ok(revoked)
        });
        task.await.unwrap_or_else(|e| {
            Err(crate::store::StoreError::Backend(format!(
                "revocation task failed: {e}"
            )))
        })
    }

    /// Changes the password and revokes every other session of the account.
    pub async fn change_password(&self, caller: &Caller, old: &str, new: &str) -> Result<()> {
        validate_password(new)?;
        let user = self
            .store
            .user_by_id(caller.user)
            .await?
            .ok_or(Error::new(ErrorCode::Unauthorized, "the account is gone"))?;
        // A stolen token must not become a way around the login throttle.
        let attempt = self
            .logins
            .admit(Some(&user.username), None)
            .inspect_err(|_| self.metrics.login_throttled())?;
        let matches = match self.hasher.verify(old.to_owned(), user.password_hash).await {
            Ok(matches) => matches,
            Err(e) => {
                attempt.refund();
                return Err(e);
            }
        };
        if !matches {
            attempt.failed();
            return Err(Error::new(
                ErrorCode::BadCredentials,
                "the current password is wrong",
            ));
        }
        attempt.succeeded();
        let hash = self.hasher.hash(new.to_owned()).await?;
        self.store.set_password(caller.user, &hash).await?;
        let store = Arc::clone(&self.store);
        let (user, keep) = (caller.user, caller.session);
        self.revoke_with(user, async move {
            store.revoke_other_sessions(user, keep).await
        })
        .await?;
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

/// `bytes` random bytes, base64url: a token or an invitation code.
pub(crate) fn random_code(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The hash of a registration's invitation code, or why it cannot be one.
fn invite_hash(invite: Option<&str>) -> Result<[u8; 32]> {
    match invite {
        None | Some("") => Err(Error::new(
            ErrorCode::InviteRequired,
            "registration on this server needs an invitation code (`invite`)",
        )),
        Some(code) if code.len() > INVITE_MAX => Err(Error::new(
            ErrorCode::InvalidInvite,
            "the invitation code is unknown, expired, revoked or used up",
        )),
        Some(code) => Ok(token_hash(code)),
    }
}

/// The label of a new session: the client's, cut to [`DEVICE_MAX`] bytes, or
/// [`DEVICE_UNNAMED`]. Control characters (NUL, ESC, newlines…) and bidi formatting
/// characters, which could forge or hide text where the session list is shown, are refused
/// with `invalid_field` (the rules of [`super::text`]).
fn device_label(device: Option<&str>) -> Result<&str> {
    let Some(device) = device else {
        return Ok(DEVICE_UNNAMED);
    };
    if !super::text::is_clean_line(device) {
        return Err(Error::new(
            ErrorCode::InvalidField,
            "device must not contain control characters or bidirectional overrides",
        ));
    }
    Ok(truncate(device, DEVICE_MAX))
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
    fn device_labels_refuse_control_and_bidi_characters() {
        assert_eq!(device_label(None).unwrap(), DEVICE_UNNAMED);
        assert_eq!(
            device_label(Some("Pixel 8 — ünï")).unwrap(),
            "Pixel 8 — ünï"
        );
        for bad in [
            "a\0b",
            "a\u{1b}[31m",
            "two\nlines",
            "cr\r",
            "x\u{202E}gpj.exe",
            "\u{2066}y",
            "phone\u{200F}",
        ] {
            assert_eq!(
                device_label(Some(bad)).unwrap_err().code,
                ErrorCode::InvalidField,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
