//! The operator's service behind `/v1/admin/...`: the admin credential, and every operator
//! action on users, sessions, invitations and counts.
//!
//! The admin token is compared in constant time (SHA-256 of both sides, then every byte), and
//! never logged. Every action is logged once, at info, with its name and the ids it touched;
//! never a token, an invitation code, a password or a message.
//!
//! Deleting a user (the policy, docs/OPERATIONS.md): their groups are left through the groups
//! service, so members see the usual system entries (an owner's group goes to its senior
//! admin, else its longest-standing member; a group they were alone in is dissolved); then the
//! account becomes a tombstone (`deleted:<id>`, no password, profile cleared) that keeps their
//! messages' sender, with sessions, friendships, requests and blocks removed in one
//! transaction. Direct conversations stay readable by the other side; new sends to a deleted
//! user are refused with `unknown_user`.

use std::sync::Arc;

use banter_protocol::ErrorCode;
use banter_protocol::admin::{
    AdminSession, AdminUser, AdminUserDetail, CreateInviteRequest, CreatedInvite, InviteInfo,
    InvitePage, Stats, UserPage,
};

use super::accounts::{Accounts, random_code, token_hash};
use super::groups::Groups;
use super::{Caller, parse_id};
use crate::bus::{self, Bus, Event, Invalidation};
use crate::clock::now_ms;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::{InviteRecord, MemberRole, NewInvite, Store, UserId, UserRecord};

/// Largest page of users or invitations.
pub const PAGE_MAX: u32 = 200;
/// Page size when none is asked for.
pub const PAGE_DEFAULT: u32 = 50;
/// Registrations one invitation may admit.
pub const INVITE_USES: std::ops::RangeInclusive<u32> = 1..=1000;
/// Lifetime of an invitation, in seconds: a minute to a year.
pub const INVITE_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=31_536_000;
/// Lifetime of an invitation when none is asked for: a week.
pub const INVITE_TTL_DEFAULT: u64 = 7 * 24 * 3600;
/// Most live invitations at once.
pub const MAX_LIVE_INVITES: u32 = 1000;
/// Random bytes in an invitation code.
const INVITE_BYTES: usize = 24;
/// Longest `after` cursor (a username).
const CURSOR_MAX: usize = 64;

/// The operator's service.
pub struct Admin {
    store: Arc<dyn Store>,
    accounts: Arc<Accounts>,
    groups: Arc<Groups>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    /// SHA-256 of the admin token; `None` when the admin API is off.
    token: Option<[u8; 32]>,
}

/// The wire form of a user, for operators.
fn admin_user(u: &UserRecord) -> AdminUser {
    AdminUser {
        id: u.id.to_string(),
        username: u.username.clone(),
        created_at: u.created_at,
        disabled: u.disabled,
        deleted: u.deleted,
    }
}

fn invite_info(i: &InviteRecord) -> InviteInfo {
    InviteInfo {
        id: i.id.to_string(),
        uses: i.uses,
        uses_left: i.uses_left,
        created_at: i.created_at,
        expires_at: i.expires_at,
        revoked: i.revoked,
    }
}

/// Equal digests, looking at every byte whatever the first difference.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn user_id(raw: &str) -> Result<UserId> {
    parse_id(raw, ErrorCode::UnknownUser, "user")
}

fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX)
}

impl Admin {
    /// The service; the admin API is on when `config.admin_token` is set.
    pub fn new(
        store: Arc<dyn Store>,
        accounts: Arc<Accounts>,
        groups: Arc<Groups>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        let token = config
            .admin_token
            .is_set()
            .then(|| token_hash(config.admin_token.expose()));
        Self {
            store,
            accounts,
            groups,
            bus,
            metrics,
            token,
        }
    }

    /// Checks the bearer token of an admin request: `not_found` while the admin API is off
    /// (it does not exist then), `unauthorized` for a missing or wrong token.
    pub fn authorize(&self, bearer: Option<&str>) -> Result<()> {
        let Some(want) = &self.token else {
            return Err(Error::new(ErrorCode::NotFound, "no such route"));
        };
        let given = token_hash(bearer.unwrap_or_default());
        if bearer.is_some() && same_digest(&given, want) {
            Ok(())
        } else {
            tracing::warn!("admin request refused: missing or wrong admin token");
            Err(Error::new(
                ErrorCode::Unauthorized,
                "missing or wrong admin token (`Authorization: Bearer <admin token>`)",
            ))
        }
    }

    async fn load(&self, raw: &str) -> Result<UserRecord> {
        let id = user_id(raw)?;
        self.store
            .user_by_id(id)
            .await?
            .ok_or(Error::new(ErrorCode::UnknownUser, "no such user"))
    }

    /// Creates a user under any sign-up policy.
    pub async fn create_user(&self, username: &str, password: &str) -> Result<AdminUser> {
        let user = self.accounts.create_by_operator(username, password).await?;
        tracing::info!(action = "user.create", user = user.id, "admin action");
        Ok(admin_user(&user))
    }

    /// Users by username, from after `after`, whose username starts with `prefix`.
    pub async fn users(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<UserPage> {
        let prefix = prefix.unwrap_or_default().to_ascii_lowercase();
        if prefix.len() > 32 || after.is_some_and(|a| a.len() > CURSOR_MAX) {
            return Err(Error::new(
                ErrorCode::BadRequest,
                "prefix must be at most 32 bytes and after at most 64",
            ));
        }
        let limit = page_limit(limit);
        let users = self.store.list_users(&prefix, after, limit).await?;
        let next = (users.len() == limit as usize)
            .then(|| users.last().map(|u| u.username.clone()))
            .flatten();
        Ok(UserPage {
            users: users.iter().map(admin_user).collect(),
            next,
        })
    }

    /// One user with their live sessions and open connections.
    pub async fn user(&self, raw: &str) -> Result<AdminUserDetail> {
        let user = self.load(raw).await?;
        let sessions = self.store.live_sessions(user.id, now_ms()).await?;
        Ok(AdminUserDetail {
            connections: self.bus.connections(user.id) as u64,
            sessions,
            user: admin_user(&user),
        })
    }

    /// Disables or enables a user; disabling closes their sockets (4001) and revokes their
    /// sessions, and their logins are refused (`account_disabled`) until enabled.
    pub async fn set_disabled(&self, raw: &str, disabled: bool) -> Result<AdminUser> {
        let id = user_id(raw)?;
        let revoked = self.accounts.set_disabled(id, disabled).await?;
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        tracing::info!(action, user = id, sessions = revoked.len(), "admin action");
        Ok(admin_user(&self.load(raw).await?))
    }

    /// Deletes a user (the policy is in the module docs).
    pub async fn delete_user(&self, raw: &str) -> Result<()> {
        let user = self.load(raw).await?;
        if user.deleted {
            return Err(Error::new(ErrorCode::UnknownUser, "no such user"));
        }
        let left = self.leave_groups(user.id).await?;
        let deleted = self.accounts.delete_account(user.id).await?;
        for peer in &deleted.peers {
            for what in [
                Invalidation::Relation(user.id, *peer),
                Invalidation::Direct(user.id, *peer),
            ] {
                bus::publish(&*self.bus, Event::Invalidate(what));
            }
        }
        tracing::info!(
            action = "user.delete",
            user = user.id,
            sessions = deleted.sessions.len(),
            groups = left,
            "admin action"
        );
        Ok(())
    }

    /// Takes `user` out of every live group through the groups service; returns how many.
    async fn leave_groups(&self, user: UserId) -> Result<usize> {
        let caller = Caller {
            user,
            session: 0,
            conn: None,
            expires_at: i64::MAX,
        };
        let groups = self.store.groups_of(user).await?;
        let mut left = 0;
        for group in groups.iter().filter(|g| !g.dissolved) {
            let id = group.id.to_string();
            let members = self.store.member_records(group.id).await?;
            let me = members.iter().find(|m| m.user == user);
            if me.is_some_and(|m| m.role == MemberRole::Owner) {
                // The senior admin, else the longest-standing member.
                let heir = members
                    .iter()
                    .filter(|m| m.user != user)
                    .min_by_key(|m| (std::cmp::Reverse(m.role), m.joined_seq, m.user));
                match heir {
                    None => {
                        self.groups.dissolve(&caller, &id).await?;
                        tracing::info!(
                            action = "group.dissolve",
                            user,
                            group = group.id,
                            "admin action"
                        );
                        left += 1;
                        continue;
                    }
                    Some(heir) => {
                        self.groups
                            .transfer(&caller, &id, &heir.user.to_string())
                            .await?;
                        tracing::info!(
                            action = "group.transfer",
                            user,
                            group = group.id,
                            to = heir.user,
                            "admin action"
                        );
                    }
                }
            }
            self.groups.leave(&caller, &id).await?;
            left += 1;
        }
        Ok(left)
    }

    /// A user's live sessions.
    pub async fn sessions(&self, raw: &str) -> Result<Vec<AdminSession>> {
        let user = self.load(raw).await?;
        let now = now_ms();
        let sessions = self.store.sessions_of(user.id).await?;
        Ok(sessions
            .iter()
            .filter(|s| s.expires_at > now)
            .map(|s| AdminSession {
                id: s.id.to_string(),
                device: s.device.clone(),
                created_at: s.created_at,
                expires_at: s.expires_at,
            })
            .collect())
    }

    /// Revokes one of a user's sessions (its sockets close with 4001).
    pub async fn revoke_session(&self, raw_user: &str, raw_session: &str) -> Result<()> {
        let user = self.load(raw_user).await?;
        let session = parse_id(raw_session, ErrorCode::UnknownSession, "session")?;
        self.accounts.revoke_by_operator(user.id, session).await?;
        tracing::info!(
            action = "session.revoke",
            user = user.id,
            session,
            "admin action"
        );
        Ok(())
    }

    /// Creates an invitation and returns its code, the only time it is shown.
    pub async fn create_invite(&self, req: &CreateInviteRequest) -> Result<CreatedInvite> {
        let uses = req.uses.unwrap_or(1);
        let ttl = req.ttl_secs.unwrap_or(INVITE_TTL_DEFAULT);
        if !INVITE_USES.contains(&uses) || !INVITE_TTL_SECS.contains(&ttl) {
            return Err(Error::new(
                ErrorCode::InvalidField,
                "uses must be 1 to 1000 and ttl_secs 60 to 31536000",
            ));
        }
        let code = random_code(INVITE_BYTES);
        let ttl_ms = i64::try_from(ttl * 1000).unwrap_or(i64::MAX);
        let invite = self
            .store
            .create_invite(NewInvite {
                code_hash: token_hash(&code),
                uses,
                expires_at: now_ms().saturating_add(ttl_ms),
                max_live: MAX_LIVE_INVITES,
            })
            .await?;
        tracing::info!(
            action = "invite.create",
            invite = invite.id,
            uses,
            ttl_secs = ttl,
            "admin action"
        );
        Ok(CreatedInvite {
            id: invite.id.to_string(),
            code,
            uses,
            expires_at: invite.expires_at,
        })
    }

    /// Invitations, newest first, from before `before`.
    pub async fn invites(&self, before: Option<&str>, limit: Option<u32>) -> Result<InvitePage> {
        let before = before
            .map(|b| parse_id(b, ErrorCode::BadRequest, "invitation cursor"))
            .transpose()?;
        let limit = page_limit(limit);
        let invites = self.store.invites(before, limit).await?;
        let next = (invites.len() == limit as usize)
            .then(|| invites.last().map(|i| i.id.to_string()))
            .flatten();
        Ok(InvitePage {
            invites: invites.iter().map(invite_info).collect(),
            next,
        })
    }

    /// Revokes an invitation.
    pub async fn revoke_invite(&self, raw: &str) -> Result<()> {
        let unknown = Error::new(ErrorCode::UnknownInvite, "no such live invitation");
        let id = parse_id(raw, ErrorCode::UnknownInvite, "invitation")?;
        match self.store.revoke_invite(id).await {
            Err(crate::store::StoreError::NotFound(_)) => return Err(unknown),
            other => other?,
        }
        tracing::info!(action = "invite.revoke", invite = id, "admin action");
        Ok(())
    }

    /// Counts from the store and this node.
    pub async fn stats(&self) -> Result<Stats> {
        let s = self.store.stats(now_ms()).await?;
        Ok(Stats {
            users: s.users,
            disabled_users: s.disabled_users,
            sessions: s.sessions,
            connections: u64::try_from(self.metrics.open_connections()).unwrap_or(0),
            groups: s.groups,
            conversations: s.conversations,
            messages: s.entries,
            rooms: u64::try_from(self.metrics.open_rooms()).unwrap_or(0),
            live_invites: s.live_invites,
        })
    }
}
