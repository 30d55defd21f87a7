//! Groups: creation, membership and roles, rename, dissolve.
//!
//! Authorization (decided here): any member may add users, subject to the consent rules below;
//! anyone may join a public group; owners and admins rename and describe; owners remove anyone, admins remove plain
//! members; only the owner sets roles, transfers ownership and dissolves; an owner must transfer
//! ownership before leaving. Every change is stored together with a system entry that takes its
//! own seq, and is pushed to the members (and to whoever was removed).
//!
//! Consent (checked by the store in the transaction that adds, see [`AddRules`]): nobody can be
//! put into a group by someone they blocked or who blocked them, nor into a group with a member
//! (or a user added alongside) on either side of a block with them, whoever adds, and nobody
//! joins such a group either; under the default `group_add_policy = "friends"` only the adder's
//! friends can be put in; and nobody ends up in more than `max_groups_per_user` live groups.
//! Members of one group who block each other later both stay members (the group's owner and
//! admins moderate it; either may leave), but the group no longer makes them contacts: they see
//! each other's profile and presence as strangers do.
//!
//! History policy: a member sees entries from the one that made them a member; a removed member
//! loses access to the whole conversation at once.

use std::sync::Arc;

use banter_protocol::{ErrorCode, GroupInfo, MemberInfo, Role, SystemEvent};

use super::directory::Directory;
use super::messaging::{Messaging, dissolved, unknown_conversation};
use super::text::{is_clean_line, is_clean_text};
use super::turns::Turns;
use super::{Caller, parse_id};
use crate::bus::Invalidation;
use crate::config::GroupAddPolicy;
use crate::error::{Error, Result};
use crate::store::{
    AddRules, ConvId, GroupChange, GroupRecord, MemberRecord, MemberRole, NewGroup, Store,
    StoreError, SystemEntry, UserId,
};

const NAME_MAX: usize = 64;
const DESCRIPTION_MAX: usize = 512;

/// The configured group limits and policy.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    /// Largest group, owner included.
    pub max_members: usize,
    /// Whom a member may add.
    pub add_policy: GroupAddPolicy,
    /// Most live groups per user.
    pub max_groups_per_user: usize,
}

/// The groups service.
pub struct Groups {
    store: Arc<dyn Store>,
    directory: Arc<Directory>,
    messaging: Arc<Messaging>,
    max_members: usize,
    add_policy: GroupAddPolicy,
    max_groups: usize,
    /// One group list at a time per user (see `turns`): it is as long as `max_groups_per_user`.
    list_turns: Turns,
}

/// The wire form of a group.
fn group_view(g: &GroupRecord) -> GroupInfo {
    GroupInfo {
        id: g.id.to_string(),
        name: g.name.clone(),
        description: g.description.clone(),
        public: g.public,
        owner: g.owner.to_string(),
        member_count: g.member_count,
        dissolved: g.dissolved,
        created_at: g.created_at,
    }
}

fn role_view(r: MemberRole) -> Role {
    match r {
        MemberRole::Member => Role::Member,
        MemberRole::Admin => Role::Admin,
        MemberRole::Owner => Role::Owner,
    }
}

fn forbidden(why: &'static str) -> Error {
    Error::new(ErrorCode::Forbidden, why)
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > NAME_MAX || !is_clean_line(name) {
        return Err(Error::new(
            ErrorCode::InvalidField,
            "a group name is 1 to 64 bytes of printable text without bidi controls",
        ));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<()> {
    if d.len() > DESCRIPTION_MAX || !is_clean_text(d) {
        return Err(Error::new(
            ErrorCode::InvalidField,
            "a description is at most 512 bytes of text without control or bidi characters",
        ));
    }
    Ok(())
}

fn entry(actor: UserId, event: &SystemEvent) -> SystemEntry {
    SystemEntry {
        actor,
        body: serde_json::to_string(event).expect("system events serialize"),
    }
}

fn ids(users: &[UserId]) -> Vec<String> {
    users.iter().map(ToString::to_string).collect()
}

impl Groups {
    /// A service over `store`; publishes entries through `messaging`.
    pub fn new(
        store: Arc<dyn Store>,
        directory: Arc<Directory>,
        messaging: Arc<Messaging>,
        limits: GroupLimits,
    ) -> Self {
        Self {
            store,
            directory,
            messaging,
            max_members: limits.max_members,
            add_policy: limits.add_policy,
            max_groups: limits.max_groups_per_user,
            list_turns: Turns::default(),
        }
    }

    /// The rules for users that `caller` puts into a group.
    fn rules(&self, caller: &Caller) -> AddRules {
        AddRules {
            by: caller.user,
            friends_only: self.add_policy == GroupAddPolicy::Friends,
            max_groups: self.max_groups,
        }
    }

    fn full(&self) -> Error {
        Error::with(
            ErrorCode::GroupFull,
            format!("a group holds at most {} members", self.max_members),
        )
    }

    /// The distinct users named, sorted. A list longer than the largest group is refused
    /// before it is read (duplicates count): a frame can carry thousands of ids, and none of
    /// the work for them should happen when the answer is `group_full` anyway.
    fn parse_users(&self, raw: &[String]) -> Result<Vec<UserId>> {
        if raw.len() > self.max_members {
            return Err(self.full());
        }
        let mut users = raw
            .iter()
            .map(|r| parse_id(r, ErrorCode::UnknownUser, "user"))
            .collect::<Result<Vec<_>>>()?;
        users.sort_unstable();
        users.dedup();
        Ok(users)
    }

    /// The live group `raw`, and the caller's membership in it (if any).
    async fn load(
        &self,
        caller: &Caller,
        raw: &str,
    ) -> Result<(GroupRecord, Option<MemberRecord>)> {
        let conv = parse_id(raw, ErrorCode::UnknownConversation, "group")?;
        let group = self
            .store
            .group(conv)
            .await?
            .ok_or_else(unknown_conversation)?;
        let me = self.store.member(conv, caller.user).await?;
        if me.is_none() && !group.public {
            return Err(unknown_conversation());
        }
        if group.dissolved {
            return Err(dissolved());
        }
        Ok((group, me))
    }

    /// The group and the caller's membership, which must exist.
    async fn load_member(&self, caller: &Caller, raw: &str) -> Result<(GroupRecord, MemberRecord)> {
        match self.load(caller, raw).await? {
            (group, Some(me)) => Ok((group, me)),
            _ => Err(unknown_conversation()),
        }
    }

    /// Applies a change, then tells the members (and `also`, e.g. a removed user).
    async fn apply(
        &self,
        caller: &Caller,
        conv: ConvId,
        change: GroupChange,
        event: &SystemEvent,
        also: Option<UserId>,
    ) -> Result<()> {
        // Who the change makes or unmakes fellow members of the rest (`share_group`).
        let changed = match &change {
            GroupChange::Add { users, .. } => Some(users.clone()),
            GroupChange::Remove { user } => Some(vec![*user]),
            GroupChange::Dissolve => None,
            _ => Some(Vec::new()),
        };
        // The group exists (the caller loaded it): an add's `NotFound` is a user's.
        let not_found = if matches!(change, GroupChange::Add { .. }) {
            Error::new(ErrorCode::UnknownUser, "no such user")
        } else {
            Error::new(ErrorCode::NotMember, "not a member of the group")
        };
        let stored = match self
            .store
            .change_group(conv, change, entry(caller.user, event))
            .await
        {
            Err(StoreError::GroupFull) => return Err(self.full()),
            Err(StoreError::NotFound(_)) => return Err(not_found),
            other => other?,
        };
        self.messaging.invalidate(Invalidation::Conversation(conv));
        let members = self.directory.members(conv).await?;
        // A dissolved group (its members stay listed) no longer joins any pair of them.
        let changed: Arc<[UserId]> = changed.map_or_else(|| Arc::clone(&members), Into::into);
        self.messaging.invalidate(Invalidation::RelationsBetween {
            changed,
            members: Arc::clone(&members),
        });
        let mut audience = members.to_vec();
        audience.extend(also);
        self.messaging
            .publish(caller.conn, &stored, audience.into());
        Ok(())
    }

    /// Creates a group owned by the caller.
    pub async fn create(
        &self,
        caller: &Caller,
        name: String,
        description: Option<String>,
        public: bool,
        members: &[String],
    ) -> Result<GroupInfo> {
        check_name(&name)?;
        let description = description.unwrap_or_default();
        check_description(&description)?;
        let mut members = self.parse_users(members)?;
        members.retain(|u| *u != caller.user);
        if members.len() + 1 > self.max_members {
            return Err(self.full());
        }
        let mut everyone = vec![caller.user];
        everyone.extend(&members);
        let event = SystemEvent::GroupCreated {
            by: caller.user.to_string(),
            name: name.clone(),
            members: ids(&everyone),
        };
        let (group, created) = match self
            .store
            .create_group(NewGroup {
                owner: caller.user,
                name,
                description,
                public,
                members,
                event: entry(caller.user, &event),
                rules: self.rules(caller),
            })
            .await
        {
            Err(StoreError::NotFound(_)) => {
                return Err(Error::new(ErrorCode::UnknownUser, "no such user"));
            }
            other => other?,
        };
        // Every pair of the new members now shares a group.
        let everyone: Arc<[UserId]> = everyone.into();
        self.messaging.invalidate(Invalidation::RelationsBetween {
            changed: Arc::clone(&everyone),
            members: Arc::clone(&everyone),
        });
        self.messaging.publish(caller.conn, &created, everyone);
        Ok(group_view(&group))
    }

    /// Adds users to a group the caller is a member of.
    pub async fn add(&self, caller: &Caller, group: &str, users: &[String]) -> Result<Vec<String>> {
        let (g, _) = self.load_member(caller, group).await?;
        let mut users = self.parse_users(users)?;
        let current = self.directory.members(g.id).await?;
        users.retain(|u| current.binary_search(u).is_err());
        if users.is_empty() {
            return Err(Error::new(
                ErrorCode::AlreadyMember,
                "everyone named is a member already",
            ));
        }
        // Checked again in the store's transaction; this refuses an oversize add before any
        // per-user work. Unknown users are the store's `NotFound` (see `apply`).
        if current.len() + users.len() > self.max_members {
            return Err(self.full());
        }
        let event = SystemEvent::MembersAdded {
            by: caller.user.to_string(),
            users: ids(&users),
        };
        let change = GroupChange::Add {
            users: users.clone(),
            max: self.max_members,
            rules: self.rules(caller),
        };
        self.apply(caller, g.id, change, &event, None).await?;
        Ok(ids(&users))
    }

    /// Joins a public group.
    pub async fn join(&self, caller: &Caller, group: &str) -> Result<GroupInfo> {
        let (g, me) = self.load(caller, group).await?;
        if me.is_some() {
            return Err(Error::new(
                ErrorCode::AlreadyMember,
                "you are a member already",
            ));
        }
        if !g.public {
            return Err(unknown_conversation());
        }
        let event = SystemEvent::MemberJoined {
            user: caller.user.to_string(),
        };
        let change = GroupChange::Add {
            users: vec![caller.user],
            max: self.max_members,
            rules: self.rules(caller),
        };
        self.apply(caller, g.id, change, &event, None).await?;
        self.info(g.id).await
    }

    async fn info(&self, conv: ConvId) -> Result<GroupInfo> {
        let g = self
            .store
            .group(conv)
            .await?
            .ok_or_else(unknown_conversation)?;
        Ok(group_view(&g))
    }

    /// Leaves a group.
    pub async fn leave(&self, caller: &Caller, group: &str) -> Result<()> {
        let (g, me) = self.load_member(caller, group).await?;
        if me.role == MemberRole::Owner {
            return Err(forbidden(
                "the owner must transfer ownership before leaving",
            ));
        }
        let event = SystemEvent::MemberLeft {
            user: caller.user.to_string(),
        };
        let change = GroupChange::Remove { user: caller.user };
        self.apply(caller, g.id, change, &event, Some(caller.user))
            .await
    }

    /// The target member of a role-changing action.
    async fn target(&self, conv: ConvId, raw: &str) -> Result<MemberRecord> {
        let user = parse_id(raw, ErrorCode::NotMember, "member")?;
        self.store.member(conv, user).await?.ok_or(Error::new(
            ErrorCode::NotMember,
            "not a member of the group",
        ))
    }

    /// Removes a member.
    pub async fn remove(&self, caller: &Caller, group: &str, user: &str) -> Result<()> {
        let (g, me) = self.load_member(caller, group).await?;
        let target = self.target(g.id, user).await?;
        if target.user == caller.user {
            return Err(forbidden("use group_leave to leave"));
        }
        if me.role < MemberRole::Admin || target.role >= me.role {
            return Err(forbidden(
                "only the owner, or an admin for plain members, may remove",
            ));
        }
        let event = SystemEvent::MemberRemoved {
            by: caller.user.to_string(),
            user: target.user.to_string(),
        };
        let change = GroupChange::Remove { user: target.user };
        self.apply(caller, g.id, change, &event, Some(target.user))
            .await
    }

    /// Sets a member's role (owner only).
    pub async fn set_role(
        &self,
        caller: &Caller,
        group: &str,
        user: &str,
        role: Role,
    ) -> Result<()> {
        let (g, me) = self.load_member(caller, group).await?;
        if me.role != MemberRole::Owner {
            return Err(forbidden("only the owner sets roles"));
        }
        let role = match role {
            Role::Admin => MemberRole::Admin,
            Role::Member => MemberRole::Member,
            Role::Owner => {
                return Err(Error::new(
                    ErrorCode::BadRequest,
                    "use group_transfer to change the owner",
                ));
            }
        };
        let target = self.target(g.id, user).await?;
        if target.user == caller.user {
            return Err(forbidden("the owner's role changes only by transfer"));
        }
        let event = SystemEvent::RoleChanged {
            by: caller.user.to_string(),
            user: target.user.to_string(),
            role: role_view(role),
        };
        let change = GroupChange::SetRole {
            user: target.user,
            role,
        };
        self.apply(caller, g.id, change, &event, None).await
    }

    /// Hands ownership to another member.
    pub async fn transfer(&self, caller: &Caller, group: &str, user: &str) -> Result<()> {
        let (g, me) = self.load_member(caller, group).await?;
        if me.role != MemberRole::Owner {
            return Err(forbidden("only the owner transfers ownership"));
        }
        let target = self.target(g.id, user).await?;
        if target.user == caller.user {
            return Err(forbidden("you are the owner already"));
        }
        let event = SystemEvent::OwnerTransferred {
            from: caller.user.to_string(),
            to: target.user.to_string(),
        };
        let change = GroupChange::Transfer {
            from: caller.user,
            to: target.user,
        };
        self.apply(caller, g.id, change, &event, None).await
    }

    /// Renames or describes a group (owner or admin).
    pub async fn update(
        &self,
        caller: &Caller,
        group: &str,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<GroupInfo> {
        let (g, me) = self.load_member(caller, group).await?;
        if me.role < MemberRole::Admin {
            return Err(forbidden("only the owner and admins rename or describe"));
        }
        if let Some(n) = &name {
            check_name(n)?;
        }
        if let Some(d) = &description {
            check_description(d)?;
        }
        if name.is_none() && description.is_none() {
            return Err(Error::new(ErrorCode::BadRequest, "nothing to change"));
        }
        let event = SystemEvent::GroupUpdated {
            by: caller.user.to_string(),
            name: name.clone(),
            description: description.clone(),
        };
        let change = GroupChange::Update { name, description };
        self.apply(caller, g.id, change, &event, None).await?;
        self.info(g.id).await
    }

    /// Dissolves a group (owner only).
    pub async fn dissolve(&self, caller: &Caller, group: &str) -> Result<()> {
        let (g, me) = self.load_member(caller, group).await?;
        if me.role != MemberRole::Owner {
            return Err(forbidden("only the owner dissolves the group"));
        }
        let event = SystemEvent::GroupDissolved {
            by: caller.user.to_string(),
        };
        self.apply(caller, g.id, GroupChange::Dissolve, &event, None)
            .await
    }

    /// The caller's groups.
    pub async fn mine(&self, caller: &Caller) -> Result<Vec<GroupInfo>> {
        let _turn = self.list_turns.take(caller.user).await;
        let groups = self.store.groups_of(caller.user).await?;
        Ok(groups.iter().map(group_view).collect())
    }

    /// A group's members (members only; dissolved groups too).
    pub async fn members(&self, caller: &Caller, group: &str) -> Result<Vec<MemberInfo>> {
        let conv = parse_id(group, ErrorCode::UnknownConversation, "group")?;
        if self.store.group(conv).await?.is_none()
            || self.store.member(conv, caller.user).await?.is_none()
        {
            return Err(unknown_conversation());
        }
        let members = self.store.member_records(conv).await?;
        Ok(members
            .iter()
            .map(|m| MemberInfo {
                user: m.user.to_string(),
                role: role_view(m.role),
                joined_seq: m.joined_seq,
                read_seq: m.read_seq,
            })
            .collect())
    }
}
