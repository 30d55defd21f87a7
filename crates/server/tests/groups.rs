//! Groups against a real server: a 500-member group stored once and delivered once per device,
//! the authorization matrix, membership changes as system entries, history from joining.

mod common;

use banter_client::protocol::{
    ClientRequest as R, ErrorCode, GroupAddResult, GroupInfo, GroupsResult, MembersResult, Message,
    MessagePage, Role, SystemEvent,
};
use banter_client::{Connection, Event, Target};
use common::{
    TestServer, TestUser, create_group as create, next_matching, ok, refused, start_server,
    start_with,
};
use serde_json::Value;

async fn next_message(conn: &mut Connection) -> Message {
    next_matching(conn, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

async fn users(server: &TestServer, prefix: &str, n: usize) -> Vec<TestUser> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(server.user(&format!("{prefix}{i:03}")).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_members_one_row_each_device_once_offline_by_sync() {
    let server = start_server().await;
    let members = users(&server, "m", 500).await;
    let owner = &members[0];
    let others: Vec<&TestUser> = members[1..].iter().collect();
    let owner_conn = server.connect(owner).await;
    let group: GroupInfo = ok(&owner_conn, create("big", &others, false)).await;
    assert_eq!(group.member_count, 500);

    // 400 members online, the first 50 of them on two devices; 100 offline.
    let mut devices = Vec::new();
    for (i, m) in members[1..401].iter().enumerate() {
        devices.push(server.connect(m).await);
        if i < 50 {
            devices.push(server.connect(&server.login(&m.username).await).await);
        }
    }
    let to_group = Target::Conversation(group.id.clone());
    let first = owner_conn
        .send_text(&to_group, "big-1", "hello, 499 people")
        .await
        .unwrap();
    let second = owner_conn
        .send_text(&to_group, "big-2", "and again")
        .await
        .unwrap();
    assert_eq!(
        (first.seq, second.seq),
        (2, 3),
        "seq 1 is the creation entry"
    );
    // Each device (connected after the creation entry) gets exactly these two, in order, with
    // no copy in between.
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let a = next_message(&mut conn).await;
                let b = next_message(&mut conn).await;
                (a.seq, a.text, b.seq)
            })
        })
        .collect();
    let device_count = tasks.len();
    for task in tasks {
        assert_eq!(task.await.unwrap(), (2, "hello, 499 people".to_owned(), 3));
    }
    assert_eq!(device_count, 450);

    // The 100 offline members get it by sync.
    for m in &members[401..] {
        let conn = server.connect(m).await;
        let page: MessagePage = ok(
            &conn,
            R::Sync {
                conversation: group.id.clone(),
                after_seq: 0,
                limit: None,
            },
        )
        .await;
        let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        conn.close().await;
    }
    // Read diffusion: one row per entry, not one per member.
    let conv: i64 = group.id.parse().unwrap();
    assert_eq!(server.stored_rows(conv), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix() {
    let server = start_server().await;
    let [owner, admin, member, outsider, extra] = ["owner", "admin", "member", "outsider", "extra"];
    let (owner, admin, member, outsider, extra) = (
        server.user(owner).await,
        server.user(admin).await,
        server.user(member).await,
        server.user(outsider).await,
        server.user(extra).await,
    );
    let o = server.connect(&owner).await;
    let a = server.connect(&admin).await;
    let mut m = server.connect(&member).await;
    let x = server.connect(&outsider).await;
    let g: GroupInfo = ok(&o, create("matrix", &[&admin, &member], false)).await;
    let gid = g.id.clone();
    let _: Value = ok(
        &o,
        R::GroupRole {
            group: gid.clone(),
            user: admin.id.clone(),
            role: Role::Admin,
        },
    )
    .await;

    // Non-members can neither send, sync, read history, mark read, see receipts or members.
    let send = x
        .send_text(&Target::Conversation(gid.clone()), "x1", "let me in")
        .await
        .unwrap_err();
    assert_eq!(send.code(), Some(ErrorCode::UnknownConversation));
    for req in [
        R::Sync {
            conversation: gid.clone(),
            after_seq: 0,
            limit: None,
        },
        R::History {
            conversation: gid.clone(),
            before_seq: None,
            limit: None,
        },
        R::Read {
            conversation: gid.clone(),
            seq: 1,
        },
        R::Receipts {
            conversation: gid.clone(),
        },
        R::GroupMembers { group: gid.clone() },
        R::GroupAdd {
            group: gid.clone(),
            users: vec![outsider.id.clone()],
        },
        R::GroupJoin { group: gid.clone() },
    ] {
        assert_eq!(
            refused(&x, req.clone()).await,
            ErrorCode::UnknownConversation,
            "{req:?}"
        );
    }
    // Plain members may not rename, remove, set roles, transfer or dissolve.
    let rename = R::GroupUpdate {
        group: gid.clone(),
        name: Some("mine".into()),
        description: None,
    };
    assert_eq!(refused(&m, rename.clone()).await, ErrorCode::Forbidden);
    assert_eq!(
        refused(
            &m,
            R::GroupRemove {
                group: gid.clone(),
                user: admin.id.clone()
            }
        )
        .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(
            &m,
            R::GroupRole {
                group: gid.clone(),
                user: member.id.clone(),
                role: Role::Admin
            }
        )
        .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(
            &m,
            R::GroupTransfer {
                group: gid.clone(),
                user: member.id.clone()
            }
        )
        .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(&m, R::GroupDissolve { group: gid.clone() }).await,
        ErrorCode::Forbidden
    );
    // Admins rename, but may not remove the owner or set roles.
    let renamed: GroupInfo = ok(&a, rename).await;
    assert_eq!(renamed.name, "mine");
    assert_eq!(
        refused(
            &a,
            R::GroupRemove {
                group: gid.clone(),
                user: owner.id.clone()
            }
        )
        .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(
            &a,
            R::GroupRole {
                group: gid.clone(),
                user: member.id.clone(),
                role: Role::Admin
            }
        )
        .await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(&o, R::GroupLeave { group: gid.clone() }).await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(
            &o,
            R::GroupRemove {
                group: gid.clone(),
                user: outsider.id.clone()
            }
        )
        .await,
        ErrorCode::NotMember
    );
    assert_eq!(
        refused(
            &o,
            R::GroupRole {
                group: gid.clone(),
                user: member.id.clone(),
                role: Role::Owner
            }
        )
        .await,
        ErrorCode::BadRequest
    );
    assert_eq!(
        refused(
            &o,
            R::GroupAdd {
                group: gid.clone(),
                users: vec![member.id.clone()]
            }
        )
        .await,
        ErrorCode::AlreadyMember
    );
    // Blank names, and names or descriptions with control or bidi override/isolate characters.
    for (name, description) in [
        (" ", None),
        ("evil\u{202E}nimda", None),
        ("\u{2066}x\u{2069}", None),
        ("tab\there", None),
        ("ok", Some("right-to-left \u{202B}embedding")),
        ("ok", Some("escape \u{1b}[31m")),
    ] {
        let create = R::GroupCreate {
            name: name.into(),
            description: description.map(Into::into),
            public: false,
            members: vec![],
        };
        assert_eq!(
            refused(&o, create).await,
            ErrorCode::InvalidField,
            "{name:?}"
        );
        let update = R::GroupUpdate {
            group: gid.clone(),
            name: (name != "ok").then(|| name.into()),
            description: description.map(Into::into),
        };
        assert_eq!(
            refused(&o, update).await,
            ErrorCode::InvalidField,
            "{name:?}"
        );
    }
    let multi_line = R::GroupCreate {
        name: "Zoë's 🙂 group".into(),
        description: Some("two\nlines".into()),
        public: false,
        members: vec![],
    };
    let _: GroupInfo = ok(&o, multi_line).await;

    // Any member may add; the new member sees history from joining only.
    let before = o
        .send_text(&Target::Conversation(gid.clone()), "o1", "before extra")
        .await
        .unwrap();
    let added: GroupAddResult = ok(
        &m,
        R::GroupAdd {
            group: gid.clone(),
            users: vec![extra.id.clone()],
        },
    )
    .await;
    assert_eq!(added.added, vec![extra.id.clone()]);
    let e = server.connect(&extra).await;
    let page: MessagePage = ok(
        &e,
        R::Sync {
            conversation: gid.clone(),
            after_seq: 0,
            limit: None,
        },
    )
    .await;
    let first = &page.messages[0];
    assert!(first.seq > before.seq, "history starts at joining");
    assert!(
        matches!(first.event, Some(SystemEvent::MembersAdded { .. })),
        "{first:?}"
    );
    let older: MessagePage = ok(
        &e,
        R::History {
            conversation: gid.clone(),
            before_seq: None,
            limit: None,
        },
    )
    .await;
    assert!(older.messages.iter().all(|msg| msg.seq >= first.seq));

    // The admin removes the member: the member is told, then receives nothing more from the
    // group, and loses access to it.
    let _: Value = ok(
        &a,
        R::GroupRemove {
            group: gid.clone(),
            user: member.id.clone(),
        },
    )
    .await;
    loop {
        let entry = next_message(&mut m).await;
        if let Some(SystemEvent::MemberRemoved { user, .. }) = entry.event {
            assert_eq!(user, member.id);
            break;
        }
    }
    o.send_text(&Target::Conversation(gid.clone()), "o2", "after removal")
        .await
        .unwrap();
    o.send_text(&Target::User(member.id.clone()), "o3", "a direct message")
        .await
        .unwrap();
    let next = next_message(&mut m).await;
    assert_eq!(
        next.text, "a direct message",
        "the group message did not reach the removed member"
    );
    assert_eq!(
        refused(
            &m,
            R::Sync {
                conversation: gid.clone(),
                after_seq: 0,
                limit: None
            }
        )
        .await,
        ErrorCode::UnknownConversation
    );
    let err = m
        .send_text(&Target::Conversation(gid.clone()), "m1", "hello?")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownConversation));

    // Transfer, then the old owner (now admin) may leave; dissolve ends the group.
    let _: Value = ok(
        &o,
        R::GroupTransfer {
            group: gid.clone(),
            user: admin.id.clone(),
        },
    )
    .await;
    let members: MembersResult = ok(&a, R::GroupMembers { group: gid.clone() }).await;
    let roles: Vec<(String, Role)> = members
        .members
        .iter()
        .map(|x| (x.user.clone(), x.role))
        .collect();
    assert!(
        roles.contains(&(admin.id.clone(), Role::Owner))
            && roles.contains(&(owner.id.clone(), Role::Admin)),
        "{roles:?}"
    );
    let _: Value = ok(&o, R::GroupLeave { group: gid.clone() }).await;
    let _: Value = ok(&a, R::GroupDissolve { group: gid.clone() }).await;
    let err = a
        .send_text(&Target::Conversation(gid.clone()), "a1", "anyone?")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GroupDissolved));
    assert_eq!(
        refused(
            &a,
            R::GroupAdd {
                group: gid.clone(),
                users: vec![member.id.clone()]
            }
        )
        .await,
        ErrorCode::GroupDissolved
    );
    let history: MessagePage = ok(
        &a,
        R::Sync {
            conversation: gid.clone(),
            after_seq: 0,
            limit: None,
        },
    )
    .await;
    assert!(matches!(
        history.messages.last().unwrap().event,
        Some(SystemEvent::GroupDissolved { .. })
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_groups_size_limit_and_listing() {
    let server = start_with(|c| c.max_group_members = 3).await;
    let (a, b, c, d) = (
        server.user("ann").await,
        server.user("ben").await,
        server.user("cid").await,
        server.user("dan").await,
    );
    let (ca, cb, cc, cd) = (
        server.connect(&a).await,
        server.connect(&b).await,
        server.connect(&c).await,
        server.connect(&d).await,
    );
    let public: GroupInfo = ok(&ca, create("open", &[], true)).await;
    let private: GroupInfo = ok(&ca, create("closed", &[], false)).await;
    let joined: GroupInfo = ok(
        &cb,
        R::GroupJoin {
            group: public.id.clone(),
        },
    )
    .await;
    assert_eq!(joined.member_count, 2);
    assert_eq!(
        refused(
            &cb,
            R::GroupJoin {
                group: public.id.clone()
            }
        )
        .await,
        ErrorCode::AlreadyMember
    );
    assert_eq!(
        refused(
            &cb,
            R::GroupJoin {
                group: private.id.clone()
            }
        )
        .await,
        ErrorCode::UnknownConversation
    );
    let _: GroupInfo = ok(
        &cc,
        R::GroupJoin {
            group: public.id.clone(),
        },
    )
    .await;
    assert_eq!(
        refused(
            &cd,
            R::GroupJoin {
                group: public.id.clone()
            }
        )
        .await,
        ErrorCode::GroupFull
    );
    assert_eq!(
        refused(&ca, create("too big", &[&b, &c, &d], false)).await,
        ErrorCode::GroupFull
    );
    assert_eq!(
        refused(
            &ca,
            R::GroupAdd {
                group: private.id.clone(),
                users: vec!["424242".into()]
            }
        )
        .await,
        ErrorCode::UnknownUser
    );
    let mine: GroupsResult = ok(&ca, R::Groups).await;
    let names: Vec<&str> = mine.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["open", "closed"]);
    assert_eq!(ok::<GroupsResult>(&cd, R::Groups).await.groups.len(), 0);
    // A removed member of a group the size limit allowed leaves room for another.
    let _: Value = ok(
        &ca,
        R::GroupRemove {
            group: public.id.clone(),
            user: c.id.clone(),
        },
    )
    .await;
    let _: GroupInfo = ok(
        &cd,
        R::GroupJoin {
            group: public.id.clone(),
        },
    )
    .await;
    server.stop().await;
}
