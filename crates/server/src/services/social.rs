//! The social graph: profiles, friends, friend requests, blocks and presence.
//!
//! Visibility rule: a user's full profile and presence are visible to themselves, their friends
//! and fellow members of a live group ("contacts"); anyone else sees only id and username. A
//! block either way ends contact, whatever groups the two share: the blocked user (and the
//! blocker) see each other as strangers do, and get no profile or presence pushes. Every
//! change is pushed to the users it concerns.

use std::sync::Arc;

use banter_protocol::{
    ErrorCode, FriendEvent, FriendResult, FriendStatus, PresenceInfo, Profile, ServerFrame,
    SocialResult,
};

use super::directory::Directory;
use super::messaging::encode;
use super::text::is_clean_line;
use super::{Caller, parse_id};
use crate::bus::{self, Bus, Event, Invalidation};
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::store::{ProfilePatch, ProfileRecord, Store, StoreError, UserId};

/// Most users one `profiles` or `presence` request may name.
pub const LOOKUP_MAX: usize = 200;
const DISPLAY_NAME_MAX: usize = 64;
const AVATAR_URL_MAX: usize = 512;
const STATUS_TEXT_MAX: usize = 140;

/// The social service.
pub struct Social {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    directory: Arc<Directory>,
}

fn invalid(what: &str) -> Error {
    Error::with(ErrorCode::InvalidField, format!("invalid {what}"))
}

/// The full wire profile.
fn full(p: &ProfileRecord) -> Profile {
    Profile {
        id: p.id.to_string(),
        username: p.username.clone(),
        display_name: p.display_name.clone(),
        avatar_url: p.avatar_url.clone(),
        status_text: p.status_text.clone(),
    }
}

/// The part of a profile anyone may see.
fn public(p: &ProfileRecord) -> Profile {
    Profile {
        id: p.id.to_string(),
        username: p.username.clone(),
        display_name: String::new(),
        avatar_url: String::new(),
        status_text: String::new(),
    }
}

fn parse_users(raw: &[String]) -> Result<Vec<UserId>> {
    if raw.len() > LOOKUP_MAX {
        return Err(Error::with(
            ErrorCode::BadRequest,
            format!("at most {LOOKUP_MAX} users per request"),
        ));
    }
    Ok(raw
        .iter()
        .filter_map(|u| parse_id(u, ErrorCode::UnknownUser, "user").ok())
        .collect())
}

impl Social {
    /// A service over `store`, pushing through `bus`, asking it for presence.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, directory: Arc<Directory>) -> Self {
        Self {
            store,
            bus,
            directory,
        }
    }

    /// Tells every node that how `a` and `b` stand changed (after the change committed).
    fn relation_changed(&self, a: UserId, b: UserId) {
        bus::publish(&*self.bus, Event::Invalidate(Invalidation::Relation(a, b)));
    }

    /// Whether `viewer` may see `user`'s full profile and presence.
    async fn visible(&self, viewer: UserId, user: UserId) -> Result<bool> {
        if viewer == user {
            return Ok(true);
        }
        let rel = self.directory.relation(viewer, user).await?;
        Ok(!(rel.a_blocked || rel.b_blocked) && (rel.friends || rel.share_group))
    }

    /// An existing user other than the caller.
    async fn other_user(&self, caller: &Caller, raw: &str) -> Result<UserId> {
        let user = parse_id(raw, ErrorCode::UnknownUser, "user")?;
        if user == caller.user {
            return Err(Error::new(ErrorCode::CannotMessageSelf, "that is you"));
        }
        if self.store.user_by_id(user).await?.is_none() {
            return Err(Error::new(ErrorCode::UnknownUser, "no such user"));
        }
        Ok(user)
    }

    /// Changes the caller's profile and pushes it to their contacts and other devices.
    pub async fn update_profile(&self, caller: &Caller, patch: ProfilePatch) -> Result<Profile> {
        let check = |v: &Option<String>, max: usize, what: &str| match v {
            Some(s) if s.len() > max || !is_clean_line(s) => Err(invalid(what)),
            _ => Ok(()),
        };
        check(&patch.display_name, DISPLAY_NAME_MAX, "display_name")?;
        check(&patch.avatar_url, AVATAR_URL_MAX, "avatar_url")?;
        check(&patch.status_text, STATUS_TEXT_MAX, "status_text")?;
        if let Some(url) = &patch.avatar_url
            && !url.is_empty()
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid("avatar_url: must be an http(s) URL"));
        }
        let record = self.store.update_profile(caller.user, patch).await?;
        let profile = full(&record);
        let mut audience = self.store.contacts(caller.user).await?;
        audience.push(caller.user);
        let frame = encode(&ServerFrame::Profile {
            profile: profile.clone(),
        });
        bus::publish(&*self.bus, Event::to_users(audience, frame, caller.conn));
        Ok(profile)
    }

    /// Profiles of `users`, full where visible.
    pub async fn profiles(&self, caller: &Caller, users: &[String]) -> Result<Vec<Profile>> {
        let ids = parse_users(users)?;
        let records = self.store.profiles(&ids).await?;
        let mut out = Vec::with_capacity(records.len());
        for r in &records {
            out.push(if self.visible(caller.user, r.id).await? {
                full(r)
            } else {
                public(r)
            });
        }
        Ok(out)
    }

    /// Online state of the visible ones among `users`.
    pub async fn presence(&self, caller: &Caller, users: &[String]) -> Result<Vec<PresenceInfo>> {
        let ids = parse_users(users)?;
        let records = self.store.profiles(&ids).await?;
        let mut out = Vec::new();
        for r in &records {
            if self.visible(caller.user, r.id).await? {
                out.push(PresenceInfo {
                    user: r.id.to_string(),
                    online: self.bus.connections(r.id) > 0,
                    last_seen: r.last_seen,
                });
            }
        }
        Ok(out)
    }

    /// Called when a user's first connection opens or last one closes: records last-seen and
    /// tells their friends.
    pub async fn presence_changed(&self, user: UserId, online: bool) {
        let last_seen = if online {
            None
        } else {
            let now = now_ms();
            if let Err(e) = self.store.set_last_seen(user, now).await {
                tracing::warn!(user, error = %e, "could not record last-seen");
            }
            Some(now)
        };
        let friends = match self.store.social(user).await {
            Ok(s) => s.friends,
            Err(e) => {
                tracing::warn!(user, error = %e, "could not load friends for presence");
                return;
            }
        };
        let last_seen = match last_seen {
            Some(ts) => Some(ts),
            None => self
                .store
                .profiles(&[user])
                .await
                .ok()
                .and_then(|mut p| p.pop())
                .and_then(|p| p.last_seen),
        };
        let frame = encode(&ServerFrame::Presence {
            user: user.to_string(),
            online,
            last_seen,
        });
        bus::publish(&*self.bus, Event::to_users(friends, frame, None));
    }

    async fn tell(&self, caller: &Caller, event: FriendEvent, from: UserId, to: UserId) {
        let frame = encode(&ServerFrame::Friend {
            event,
            from: from.to_string(),
            to: to.to_string(),
        });
        bus::publish(&*self.bus, Event::to_users([from, to], frame, caller.conn));
    }

    /// Asks `user` to be friends; if they had asked the caller, they become friends at once.
    pub async fn request(&self, caller: &Caller, user: &str) -> Result<FriendResult> {
        let other = self.other_user(caller, user).await?;
        let rel = self.store.relation(caller.user, other).await?;
        if rel.a_blocked || rel.b_blocked {
            return Err(Error::new(
                ErrorCode::Blocked,
                "one of you has blocked the other",
            ));
        }
        if rel.friends {
            return Err(Error::new(
                ErrorCode::AlreadyFriends,
                "you are friends already",
            ));
        }
        let status = if rel.b_requested {
            self.store.make_friends(caller.user, other).await?;
            self.relation_changed(caller.user, other);
            self.tell(caller, FriendEvent::Accepted, caller.user, other)
                .await;
            FriendStatus::Friends
        } else {
            if !rel.a_requested {
                self.store.create_friend_request(caller.user, other).await?;
                self.relation_changed(caller.user, other);
                self.tell(caller, FriendEvent::Requested, caller.user, other)
                    .await;
            }
            FriendStatus::Pending
        };
        Ok(FriendResult { status })
    }

    /// Accepts `user`'s request.
    pub async fn accept(&self, caller: &Caller, user: &str) -> Result<()> {
        let other = self.other_user(caller, user).await?;
        if !self.store.relation(caller.user, other).await?.b_requested {
            return Err(unknown_request());
        }
        self.store.make_friends(caller.user, other).await?;
        self.relation_changed(caller.user, other);
        self.tell(caller, FriendEvent::Accepted, caller.user, other)
            .await;
        Ok(())
    }

    /// Declines `user`'s request (`decline`) or withdraws the caller's (`cancel`).
    pub async fn drop_request(&self, caller: &Caller, user: &str, decline: bool) -> Result<()> {
        let other = self.other_user(caller, user).await?;
        let (from, to, event) = if decline {
            (other, caller.user, FriendEvent::Declined)
        } else {
            (caller.user, other, FriendEvent::Cancelled)
        };
        match self.store.delete_friend_request(from, to).await {
            Err(StoreError::NotFound(_)) => return Err(unknown_request()),
            other => other?,
        }
        self.relation_changed(from, to);
        self.tell(caller, event, caller.user, other).await;
        Ok(())
    }

    /// Ends a friendship.
    pub async fn remove(&self, caller: &Caller, user: &str) -> Result<()> {
        let other = self.other_user(caller, user).await?;
        match self.store.remove_friend(caller.user, other).await {
            Err(StoreError::NotFound(_)) => {
                return Err(Error::new(ErrorCode::UnknownUser, "not a friend of yours"));
            }
            other => other?,
        }
        self.relation_changed(caller.user, other);
        self.tell(caller, FriendEvent::Removed, caller.user, other)
            .await;
        Ok(())
    }

    /// Blocks `user` (they are not told).
    pub async fn block(&self, caller: &Caller, user: &str) -> Result<()> {
        let other = self.other_user(caller, user).await?;
        self.store.block(caller.user, other).await?;
        self.relation_changed(caller.user, other);
        Ok(())
    }

    /// Lifts a block.
    pub async fn unblock(&self, caller: &Caller, user: &str) -> Result<()> {
        let other = self.other_user(caller, user).await?;
        match self.store.unblock(caller.user, other).await {
            Err(StoreError::NotFound(_)) => {
                return Err(Error::new(
                    ErrorCode::UnknownUser,
                    "you have not blocked that user",
                ));
            }
            other => other?,
        }
        self.relation_changed(caller.user, other);
        Ok(())
    }

    /// Friends, requests and blocks, as profiles.
    pub async fn social(&self, caller: &Caller) -> Result<SocialResult> {
        let s = self.store.social(caller.user).await?;
        let profiles = |ids: Vec<UserId>, full_view: bool| async move {
            let records = self.store.profiles(&ids).await?;
            Ok::<_, Error>(
                records
                    .iter()
                    .map(|r| if full_view { full(r) } else { public(r) })
                    .collect::<Vec<_>>(),
            )
        };
        Ok(SocialResult {
            friends: profiles(s.friends, true).await?,
            incoming: profiles(s.incoming, false).await?,
            outgoing: profiles(s.outgoing, false).await?,
            blocked: profiles(s.blocked, false).await?,
        })
    }
}

fn unknown_request() -> Error {
    Error::new(ErrorCode::UnknownRequest, "no such friend request")
}
