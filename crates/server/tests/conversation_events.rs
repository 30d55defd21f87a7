//! Typing notices, read receipts, recall and edit: what a conversation carries besides new
//! messages, against a real server through the SDK, asserting what the other party sees.

mod common;

use std::time::Duration;

use banter_client::protocol::{
    ClientRequest as R, ErrorCode, GroupInfo, MessageKind, MessagePage, ReceiptsResult, SendAck,
};
use banter_client::{Event, Target};
use common::{next_matching, ok, refused, start_server, start_with};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_ephemeral_and_rate_limited() {
    let server = start_server().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let (a, mut b) = (server.connect(&alice).await, server.connect(&bob).await);
    let conv = a
        .send_text(&Target::User(bob.id.clone()), "1", "hi")
        .await
        .unwrap()
        .conversation;
    let _: Value = ok(
        &a,
        R::Typing {
            conversation: conv.clone(),
        },
    )
    .await;
    let (c, u) = next_matching(&mut b, |e| match e {
        Event::Typing { conversation, user } => Some((conversation, user)),
        _ => None,
    })
    .await;
    assert_eq!((c, u), (conv.clone(), alice.id.clone()));
    let _: Value = ok(
        &a,
        R::Typing {
            conversation: conv.clone(),
        },
    )
    .await;
    assert_eq!(
        refused(
            &a,
            R::Typing {
                conversation: conv.clone()
            }
        )
        .await,
        ErrorCode::RateLimited
    );
    let page: MessagePage = ok(
        &b,
        R::Sync {
            conversation: conv.clone(),
            after_seq: 0,
            limit: None,
        },
    )
    .await;
    assert_eq!(page.messages.len(), 1, "typing is never stored");
    let eve = server.user("eve").await;
    let e = server.connect(&eve).await;
    assert_eq!(
        refused(&e, R::Typing { conversation: conv }).await,
        ErrorCode::UnknownConversation
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_and_unread_counts() {
    let server = start_server().await;
    let (alice, bob, carol) = (
        server.user("alice").await,
        server.user("bob").await,
        server.user("carol").await,
    );
    let (mut a, b, c) = (
        server.connect(&alice).await,
        server.connect(&bob).await,
        server.connect(&carol).await,
    );
    let conv = a
        .send_text(&Target::User(bob.id.clone()), "1", "one")
        .await
        .unwrap()
        .conversation;
    a.send_text(&Target::Conversation(conv.clone()), "2", "two")
        .await
        .unwrap();
    let _: Value = ok(
        &b,
        R::Read {
            conversation: conv.clone(),
            seq: 2,
        },
    )
    .await;
    // The direct peer gets the receipt.
    let (cv, user, seq) = next_matching(&mut a, |e| match e {
        Event::Read {
            conversation,
            user,
            seq,
        } => Some((conversation, user, seq)),
        _ => None,
    })
    .await;
    assert_eq!((cv, user, seq), (conv.clone(), bob.id.clone(), 2));
    // In a group, cursors are available per member.
    let g: GroupInfo = ok(
        &a,
        R::GroupCreate {
            name: "team".into(),
            description: None,
            public: false,
            members: vec![bob.id.clone(), carol.id.clone()],
        },
    )
    .await;
    for i in 0..3 {
        a.send_text(
            &Target::Conversation(g.id.clone()),
            &format!("g{i}"),
            "hello",
        )
        .await
        .unwrap();
    }
    let _: Value = ok(
        &c,
        R::Read {
            conversation: g.id.clone(),
            seq: 3,
        },
    )
    .await;
    let r: ReceiptsResult = ok(
        &a,
        R::Receipts {
            conversation: g.id.clone(),
        },
    )
    .await;
    let cursors: Vec<(String, u64)> = r
        .receipts
        .iter()
        .map(|x| (x.user.clone(), x.read_seq))
        .collect();
    assert!(
        cursors.contains(&(carol.id.clone(), 3)) && cursors.contains(&(bob.id.clone(), 0)),
        "{cursors:?}"
    );
    // Unread counts in the conversation list: 4 entries (creation + 3), Carol read 3.
    let list = c.conversations(None).await.unwrap().conversations;
    let entry = list.iter().find(|x| x.id == g.id).unwrap();
    assert_eq!(
        (entry.last_seq, entry.unread, entry.name.as_deref()),
        (4, 1, Some("team"))
    );
    let list = b.conversations(None).await.unwrap().conversations;
    assert_eq!(list.iter().find(|x| x.id == g.id).unwrap().unread, 4);
    // The creator and sender made every entry: none is unread for her.
    let list = a.conversations(None).await.unwrap().conversations;
    let mine = list.iter().find(|x| x.id == g.id).unwrap();
    assert_eq!((mine.read_seq, mine.unread), (4, 0));
    assert!(cursors.contains(&(alice.id.clone(), 4)), "{cursors:?}");
    // A member added later has only the entry that added them to read, not the history before
    // it (which they cannot see).
    let dave = server.user("dave").await;
    let _: Value = ok(
        &a,
        R::GroupAdd {
            group: g.id.clone(),
            users: vec![dave.id.clone()],
        },
    )
    .await;
    let d = server.connect(&dave).await;
    let list = d.conversations(None).await.unwrap().conversations;
    let theirs = list.iter().find(|x| x.id == g.id).unwrap();
    assert_eq!((theirs.last_seq, theirs.read_seq, theirs.unread), (5, 4, 1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_and_edit_reach_the_other_party_and_survive_sync() {
    let server = start_server().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let (a, mut b) = (server.connect(&alice).await, server.connect(&bob).await);
    let to_bob = Target::User(bob.id.clone());
    let first = a.send_text(&to_bob, "m1", "typo hree").await.unwrap();
    let second = a
        .send_text(&to_bob, "m2", "oops, wrong chat")
        .await
        .unwrap();
    let conv = first.conversation.clone();

    let edit: SendAck = ok(
        &a,
        R::Edit {
            conversation: conv.clone(),
            seq: 1,
            text: "typo here".into(),
            client_msg_id: None,
        },
    )
    .await;
    let recall: SendAck = ok(
        &a,
        R::Recall {
            conversation: conv.clone(),
            seq: second.seq,
            client_msg_id: None,
        },
    )
    .await;
    assert_eq!(
        (edit.seq, recall.seq),
        (3, 4),
        "each is an entry with its own seq"
    );
    let again: SendAck = ok(
        &a,
        R::Recall {
            conversation: conv.clone(),
            seq: second.seq,
            client_msg_id: None,
        },
    )
    .await;
    assert!(
        again.duplicate && again.seq == 4,
        "recalling twice is idempotent"
    );

    // Live: Bob sees both messages, then the edit and the recall.
    let mut live = Vec::new();
    while live.len() < 4 {
        live.push(
            next_matching(&mut b, |e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(
        (live[2].kind, live[2].ref_seq, live[2].text.as_str()),
        (MessageKind::Edit, Some(1), "typo here")
    );
    assert_eq!(
        (live[3].kind, live[3].ref_seq),
        (MessageKind::Recall, Some(2))
    );
    // Synced later: the final state.
    let page: MessagePage = ok(
        &b,
        R::Sync {
            conversation: conv.clone(),
            after_seq: 0,
            limit: None,
        },
    )
    .await;
    let m = &page.messages;
    assert_eq!(
        (m[0].text.as_str(), m[0].edited_at.is_some()),
        ("typo here", true)
    );
    assert_eq!((m[1].text.as_str(), m[1].recalled), ("", true));
    assert_eq!(m.len(), 4);

    // Refusals: someone else's message, a recalled one, a non-text entry, bad text.
    assert_eq!(
        refused(
            &b,
            R::Recall {
                conversation: conv.clone(),
                seq: 1,
                client_msg_id: None,
            }
        )
        .await,
        ErrorCode::UnknownMessage
    );
    assert_eq!(
        refused(
            &a,
            R::Edit {
                conversation: conv.clone(),
                seq: 2,
                text: "x".into(),
                client_msg_id: None,
            }
        )
        .await,
        ErrorCode::UnknownMessage
    );
    assert_eq!(
        refused(
            &a,
            R::Recall {
                conversation: conv.clone(),
                seq: 3,
                client_msg_id: None,
            }
        )
        .await,
        ErrorCode::UnknownMessage
    );
    assert_eq!(
        refused(
            &a,
            R::Edit {
                conversation: conv.clone(),
                seq: 99,
                text: "x".into(),
                client_msg_id: None,
            }
        )
        .await,
        ErrorCode::UnknownMessage
    );
    assert_eq!(
        refused(
            &a,
            R::Edit {
                conversation: conv.clone(),
                seq: 1,
                text: " ".into(),
                client_msg_id: None,
            }
        )
        .await,
        ErrorCode::EmptyMessage
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_window_is_enforced() {
    let server = start_with(|c| c.recall_window_secs = 0).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let a = server.connect(&alice).await;
    let sent = a
        .send_text(&Target::User(bob.id.clone()), "m1", "hi")
        .await
        .unwrap();
    // The window is zero: wall-clock time passing is the condition under test.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let code = refused(
        &a,
        R::Recall {
            conversation: sent.conversation.clone(),
            seq: 1,
            client_msg_id: None,
        },
    )
    .await;
    assert_eq!(code, ErrorCode::RecallWindowPassed);
    // Editing has no window.
    let _: SendAck = ok(
        &a,
        R::Edit {
            conversation: sent.conversation,
            seq: 1,
            text: "hello".into(),
            client_msg_id: None,
        },
    )
    .await;
    server.stop().await;
}
