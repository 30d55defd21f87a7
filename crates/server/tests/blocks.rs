//! Every path by which a user A could reach or see a user B, walked once after B blocked A and
//! once for a control pair that is not blocked, on a real server with the default group policy
//! (`friends`) and again with `anyone`. One table holds the expected outcome of each path for
//! both pairs: a block must refuse or hide every path that the control pair may use.

mod common;

use banter_client::protocol::{
    ClientRequest as R, ErrorCode, GroupInfo, PresenceResult, ProfilesResult, ReceiptsResult,
    SendAck, SocialResult,
};
use banter_client::{ClientError, Connection, Event};
use banter_server::Config;
use banter_server::config::GroupAddPolicy;
use common::{TestServer, TestUser, next_matching, ok, refused, start_with};
use serde_json::Value;

/// Path, outcome once B blocked A, outcome for the control pair. Outcomes are `ok`, an error
/// code, or what A observed.
const PATHS: &[(&str, &str, &str)] = &[
    ("A sends B a direct message", "blocked", "ok"),
    (
        "A sends in their existing direct conversation",
        "blocked",
        "ok",
    ),
    ("A types in their direct conversation", "blocked", "ok"),
    (
        "A asks the receipts of their direct conversation",
        "B hidden",
        "B listed",
    ),
    (
        "A reads their direct conversation: pushed to B",
        "not pushed",
        "pushed",
    ),
    ("A creates a group with B in it", "blocked", "ok"),
    ("A adds B to A's own group", "blocked", "ok"),
    ("A adds B to a third user's group", "blocked", "ok"),
    ("B (the blocker) creates a group with A", "blocked", "ok"),
    // T, a friend of both, cannot bring them together either, nor can they meet by joining.
    ("T creates a group with A and B", "blocked", "ok"),
    ("T adds B to a group A is in", "blocked", "ok"),
    ("T adds A to a group B is in", "blocked", "ok"),
    ("T adds A and B to a group at once", "blocked", "ok"),
    ("A joins a public group B is in", "blocked", "ok"),
    ("B joins a public group A is in", "blocked", "ok"),
    // Policy for a group they shared before the block: both stay members and the group's
    // messages reach every member (docs/PROTOCOL.md, "Blocks"); everything else below holds.
    (
        "A sends in a group they already share",
        "ok, delivered",
        "ok, delivered",
    ),
    ("B leaves the shared group, A adds B back", "blocked", "ok"),
    ("A looks up B's profile", "public part", "full"),
    ("A looks up B's presence", "hidden", "listed"),
    ("A lists friends", "B absent", "B listed"),
    ("B changes profile: pushed to A", "not pushed", "pushed"),
    ("B goes offline: pushed to A", "not pushed", "pushed"),
];

/// Three users per pair: A (who may be blocked), B (who may block), and T, a friend of both.
struct Pair {
    a: TestUser,
    b: TestUser,
    ca: Connection,
    /// B's only connection (closed by the presence path).
    cb: Option<Connection>,
    ct: Connection,
    /// The direct conversation A and B had before the block.
    direct: String,
    /// A group of A's with B and T in it, from before the block.
    shared: String,
    /// A group of A's with no one else in it.
    own: String,
    /// A group of T's with A in it.
    thirds: String,
}

impl Pair {
    fn cb(&self) -> &Connection {
        self.cb.as_ref().expect("B's connection")
    }
}

fn outcome(r: Result<Value, ClientError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(ClientError::Api { body, .. }) => body.code.as_str().into(),
        Err(e) => panic!("transport failure: {e}"),
    }
}

async fn befriend(x: &Connection, y: &Connection, x_id: &str, y_id: &str) {
    let _: Value = ok(x, R::FriendRequest { user: y_id.into() }).await;
    let _: Value = ok(y, R::FriendAccept { user: x_id.into() }).await;
}

fn create(name: &str, members: &[&TestUser]) -> R {
    R::GroupCreate {
        name: name.into(),
        description: None,
        public: false,
        members: members.iter().map(|u| u.id.clone()).collect(),
    }
}

fn send(to: Option<&str>, conversation: Option<&str>, key: &str) -> R {
    R::Send {
        to: to.map(Into::into),
        conversation: conversation.map(Into::into),
        client_msg_id: key.into(),
        text: format!("text {key}"),
        attachment: None,
        sticker: None,
    }
}

async fn pair(server: &TestServer, tag: &str, block: bool) -> Pair {
    let (a, b, t) = (
        server.user(&format!("{tag}_a")).await,
        server.user(&format!("{tag}_b")).await,
        server.user(&format!("{tag}_t")).await,
    );
    let (ca, cb, ct) = (
        server.connect(&a).await,
        server.connect(&b).await,
        server.connect(&t).await,
    );
    befriend(&ca, &cb, &a.id, &b.id).await;
    befriend(&ca, &ct, &a.id, &t.id).await;
    befriend(&ct, &cb, &t.id, &b.id).await;
    let named = R::ProfileUpdate {
        display_name: Some(format!("B of {tag}")),
        avatar_url: None,
        status_text: None,
    };
    let _: Value = ok(&cb, named).await;
    let first: SendAck = ok(&ca, send(Some(&b.id), None, &format!("{tag}-first"))).await;
    let shared: GroupInfo = ok(&ca, create("shared", &[&b, &t])).await;
    let own: GroupInfo = ok(&ca, create("own", &[])).await;
    let thirds: GroupInfo = ok(&ct, create("third's", &[&a])).await;
    if block {
        let _: Value = ok(&cb, R::Block { user: a.id.clone() }).await;
    }
    Pair {
        a,
        b,
        ca,
        cb: Some(cb),
        ct,
        direct: first.conversation,
        shared: shared.id,
        own: own.id,
        thirds: thirds.id,
    }
}

/// Makes T send A a marker, and tells whether A got an event `pick` accepts before it. T is
/// told of B's change first (T is B's friend) and the server queues a change for all its
/// audience at once, so anything meant for A is queued ahead of the marker.
async fn pushed_before_marker(p: &mut Pair, marker: &str, pick: impl Fn(&Event) -> bool) -> bool {
    told_before_marker(&mut p.ca, &p.a.id, &p.ct, marker, pick).await
}

/// Makes `from` send `observer` (user `id`) a marker, and tells whether `observer` got an event
/// `pick` accepts before it.
async fn told_before_marker(
    observer: &mut Connection,
    id: &str,
    from: &Connection,
    marker: &str,
    pick: impl Fn(&Event) -> bool,
) -> bool {
    let _: SendAck = ok(from, send(Some(id), None, marker)).await;
    let text = format!("text {marker}");
    let mut seen = false;
    next_matching(observer, |e| match e {
        Event::Message(m) if m.text == text => Some(()),
        other => {
            seen |= pick(&other);
            None
        }
    })
    .await;
    seen
}

/// The paths through a third user's groups and through public groups, in [`PATHS`]' order.
async fn through_others(p: &Pair) -> Vec<String> {
    let (a, b) = (p.a.id.clone(), p.b.id.clone());
    let add = |group: &str, users: &[&str]| R::GroupAdd {
        group: group.into(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
    };
    let mut out = vec![outcome(
        p.ct.request(create("t, a, b", &[&p.a, &p.b])).await,
    )];
    let with_a: GroupInfo = ok(&p.ct, create("t and a", &[&p.a])).await;
    out.push(outcome(p.ct.request(add(&with_a.id, &[&b])).await));
    let with_b: GroupInfo = ok(&p.ct, create("t and b", &[&p.b])).await;
    out.push(outcome(p.ct.request(add(&with_b.id, &[&a])).await));
    let alone: GroupInfo = ok(&p.ct, create("t alone", &[])).await;
    out.push(outcome(p.ct.request(add(&alone.id, &[&a, &b])).await));
    let public = |name: &str| R::GroupCreate {
        name: name.into(),
        description: None,
        public: true,
        members: vec![],
    };
    let bs: GroupInfo = ok(p.cb(), public("b's open group")).await;
    out.push(outcome(p.ca.request(R::GroupJoin { group: bs.id }).await));
    let as_: GroupInfo = ok(&p.ca, public("a's open group")).await;
    out.push(outcome(
        p.cb().request(R::GroupJoin { group: as_.id }).await,
    ));
    out
}

/// Walks every path for `p` (in the order of [`PATHS`]) and returns what happened.
async fn walk(mut p: Pair, tag: &str) -> Vec<String> {
    let (a, b) = (p.a.id.clone(), p.b.id.clone());
    let mut out = vec![
        outcome(
            p.ca.request(send(Some(&b), None, &format!("{tag}-dm")))
                .await,
        ),
        outcome(
            p.ca.request(send(None, Some(&p.direct), &format!("{tag}-dc")))
                .await,
        ),
    ];
    let typing = R::Typing {
        conversation: p.direct.clone(),
    };
    out.push(outcome(p.ca.request(typing).await));
    let receipts = R::Receipts {
        conversation: p.direct.clone(),
    };
    let receipts: ReceiptsResult = ok(&p.ca, receipts).await;
    let listed = receipts.receipts.iter().any(|r| r.user == b);
    out.push((if listed { "B listed" } else { "B hidden" }).into());
    let read = R::Read {
        conversation: p.direct.clone(),
        seq: 1,
    };
    let _: Value = ok(&p.ca, read).await;
    let direct = p.direct.clone();
    let read_by_a = |e: &Event| matches!(e, Event::Read { conversation, user, .. } if *conversation == direct && *user == a);
    let cb = p.cb.as_mut().expect("B's connection");
    let seen = told_before_marker(cb, &b, &p.ct, &format!("{tag}-r"), read_by_a).await;
    out.push((if seen { "pushed" } else { "not pushed" }).into());
    out.push(outcome(p.ca.request(create("with b", &[&p.b])).await));
    let add = |group: &str| R::GroupAdd {
        group: group.into(),
        users: vec![b.clone()],
    };
    out.push(outcome(p.ca.request(add(&p.own)).await));
    out.push(outcome(p.ca.request(add(&p.thirds)).await));
    out.push(outcome(p.cb().request(create("with a", &[&p.a])).await));
    out.extend(through_others(&p).await);

    let in_shared = outcome(
        p.ca.request(send(None, Some(&p.shared), &format!("{tag}-g")))
            .await,
    );
    let text = format!("text {tag}-g");
    next_matching(p.cb.as_mut().expect("B's connection"), |e| match e {
        Event::Message(m) if m.text == text => Some(()),
        _ => None,
    })
    .await;
    out.push(format!("{in_shared}, delivered"));
    let leave = R::GroupLeave {
        group: p.shared.clone(),
    };
    let _: Value = ok(p.cb(), leave).await;
    out.push(outcome(p.ca.request(add(&p.shared)).await));

    let profiles: ProfilesResult = ok(
        &p.ca,
        R::Profiles {
            users: vec![b.clone()],
        },
    )
    .await;
    let full = profiles.profiles[0].display_name == format!("B of {tag}");
    out.push((if full { "full" } else { "public part" }).into());
    let presence: PresenceResult = ok(
        &p.ca,
        R::Presence {
            users: vec![b.clone()],
        },
    )
    .await;
    let listed = presence.presence.iter().any(|x| x.user == b);
    out.push((if listed { "listed" } else { "hidden" }).into());
    let friends: SocialResult = ok(&p.ca, R::Friends).await;
    let listed = friends.friends.iter().any(|x| x.id == b);
    out.push((if listed { "B listed" } else { "B absent" }).into());

    // Drain what A was told before (B's profile, while they were friends) up to a marker.
    let from_b = |e: &Event| matches!(e, Event::Profile(x) if x.id == b);
    pushed_before_marker(&mut p, &format!("{tag}-m0"), from_b).await;
    let status = R::ProfileUpdate {
        display_name: None,
        avatar_url: None,
        status_text: Some("changed".into()),
    };
    let _: Value = ok(p.cb(), status).await;
    next_matching(&mut p.ct, |e| {
        matches!(e, Event::Profile(x) if x.id == b).then_some(())
    })
    .await;
    let seen = pushed_before_marker(&mut p, &format!("{tag}-m1"), from_b).await;
    out.push((if seen { "pushed" } else { "not pushed" }).into());

    // T is B's friend and is told when B's last connection closes.
    p.cb.take().expect("B's connection").close().await;
    next_matching(&mut p.ct, |e| {
        matches!(e, Event::Presence { user, online: false, .. } if *user == b).then_some(())
    })
    .await;
    let offline = |e: &Event| matches!(e, Event::Presence { user, .. } if *user == b);
    let seen = pushed_before_marker(&mut p, &format!("{tag}-m2"), offline).await;
    out.push((if seen { "pushed" } else { "not pushed" }).into());
    assert_eq!(out.len(), PATHS.len(), "a row per path ({a})");
    out
}

async fn walk_both(policy: GroupAddPolicy) {
    let server = start_with(|c| c.group_add_policy = policy).await;
    let blocked = walk(pair(&server, "blk", true).await, "blk").await;
    let control = walk(pair(&server, "ctl", false).await, "ctl").await;
    for (i, (path, after_block, unblocked)) in PATHS.iter().enumerate() {
        assert_eq!(
            blocked[i], *after_block,
            "{path} (after B blocked A, {policy:?})"
        );
        assert_eq!(control[i], *unblocked, "{path} (control pair, {policy:?})");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_holds_on_every_path_under_the_default_policy() {
    let policy = Config::default().group_add_policy;
    assert_eq!(
        policy,
        GroupAddPolicy::Friends,
        "the default is friends only"
    );
    walk_both(policy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_holds_on_every_path_when_anyone_may_be_added() {
    walk_both(GroupAddPolicy::Anyone).await;
}

/// The policy itself: under `friends` a stranger can be neither put into a new group nor added;
/// under `anyone` both succeed; joining a public group is one's own act under either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_friends_are_added_under_the_friends_policy() {
    for (policy, expected) in [
        (GroupAddPolicy::Friends, Some(ErrorCode::NotFriends)),
        (GroupAddPolicy::Anyone, None),
    ] {
        let server = start_with(|c| c.group_add_policy = policy).await;
        let (a, s) = (server.user("alice").await, server.user("stranger").await);
        let (ca, cs) = (server.connect(&a).await, server.connect(&s).await);
        let own: GroupInfo = ok(&ca, create("own", &[])).await;
        let attempts = [
            create("with stranger", &[&s]),
            R::GroupAdd {
                group: own.id.clone(),
                users: vec![s.id.clone()],
            },
        ];
        for attempt in attempts {
            match expected {
                Some(code) => assert_eq!(refused(&ca, attempt).await, code, "{policy:?}"),
                None => {
                    let _: Value = ok(&ca, attempt).await;
                }
            }
        }
        let public: GroupInfo = ok(
            &ca,
            R::GroupCreate {
                name: "open".into(),
                description: None,
                public: true,
                members: vec![],
            },
        )
        .await;
        let _: GroupInfo = ok(&cs, R::GroupJoin { group: public.id }).await;
        server.stop().await;
    }
}
