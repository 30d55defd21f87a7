//! 1:1 messaging against a real server through the SDK: delivery to every device, offline
//! catch-up, idempotent retries, ordering under interleaving, conversation list, read cursors
//! and history, pages bounded by bytes, and edits keyed by the client's `client_msg_id`.

mod common;

use std::collections::HashMap;

use banter_client::protocol::Message;
use banter_client::{Connection, Event, Target};
use common::{start_server, start_with};

/// The next pushed message on `conn` (panics on anything else).
async fn next_message(conn: &mut Connection) -> Message {
    match conn.next_event().await {
        Some(Event::Message(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_and_every_device_sees_it() {
    let server = start_server().await;
    let alice = server.user("alice").await;
    let alice2 = server.login("alice").await;
    let bob = server.user("bob").await;
    let bob2 = server.login("bob").await;
    let a1 = server.connect(&alice).await;
    let mut a2 = server.connect(&alice2).await;
    let mut b1 = server.connect(&bob).await;
    let mut b2 = server.connect(&bob2).await;
    assert_eq!(a1.hello().user, alice.id);

    let ack = a1
        .send_text(&Target::User(bob.id.clone()), "c1", "hello bob")
        .await
        .unwrap();
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    for conn in [&mut b1, &mut b2, &mut a2] {
        let m = next_message(conn).await;
        assert_eq!(
            (
                m.text.as_str(),
                m.seq,
                m.sender.as_str(),
                m.conversation.as_str()
            ),
            ("hello bob", 1, alice.id.as_str(), ack.conversation.as_str())
        );
        assert_eq!(m.id, ack.message_id);
    }
    // Bob answers into the conversation by id; Alice's devices and Bob's other device see it.
    let reply = b1
        .send_text(
            &Target::Conversation(ack.conversation.clone()),
            "r1",
            "hi alice",
        )
        .await
        .unwrap();
    assert_eq!(reply.seq, 2);
    for conn in [&mut a2, &mut b2] {
        let m = next_message(conn).await;
        assert_eq!((m.text.as_str(), m.seq), ("hi alice", 2));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_recipient_gets_500_messages_in_order_via_sync() {
    let server = start_server().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let a = server.connect(&alice).await;
    let to_bob = Target::User(bob.id.clone());
    for i in 0..500 {
        a.send_text(&to_bob, &format!("m{i}"), &format!("message {i}"))
            .await
            .unwrap();
    }
    // Bob was never online: he logs in as a new device and the messenger catches up.
    let bob_phone = server.login("bob").await;
    let mut messenger = server.messenger(&bob_phone).await;
    for i in 0..500u64 {
        let m = messenger.next_message().await.unwrap();
        assert_eq!((m.seq, m.text.clone()), (i + 1, format!("message {i}")));
    }
    let conn = messenger.connection().unwrap();
    let list = conn.conversations(None).await.unwrap().conversations;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].last_seq, list[0].unread), (500, 500));
    assert_eq!(list[0].peer.as_deref(), Some(alice.id.as_str()));
    assert_eq!(list[0].peer_username.as_deref(), Some("alice"));
    // Raw paging: pages of 200 with has_more.
    let page = conn.sync(&list[0].id, 0, Some(200)).await.unwrap();
    assert_eq!((page.messages.len(), page.has_more), (200, true));
    let page = conn.sync(&list[0].id, 400, Some(200)).await.unwrap();
    assert_eq!((page.messages.len(), page.has_more), (100, false));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_dropped_connection_stores_and_delivers_once() {
    let server = start_server().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut b = server.connect(&bob).await;
    let to_bob = Target::User(bob.id.clone());

    let first = server.connect(&alice).await;
    let original = first
        .send_text(&to_bob, "retry-me", "only once")
        .await
        .unwrap();
    // The connection drops before the client trusts the ack; it reconnects and retries.
    first.close().await;
    let second = server.connect(&alice).await;
    let retried = second
        .send_text(&to_bob, "retry-me", "only once")
        .await
        .unwrap();
    assert!(retried.duplicate);
    assert_eq!(
        (retried.seq, &retried.message_id, retried.ts),
        (original.seq, &original.message_id, original.ts),
        "the original acknowledgement"
    );
    // Also through the messenger, which retries with the same id across reconnects.
    let mut messenger = server.messenger(&alice).await;
    messenger.disconnect();
    let again = messenger
        .send_with_id(&to_bob, "retry-me", "only once")
        .await
        .unwrap();
    assert_eq!((again.seq, again.duplicate), (1, true));
    let next = second.send_text(&to_bob, "next", "second").await.unwrap();
    assert_eq!(next.seq, 2);

    // Bob received exactly one copy, then the next message.
    assert_eq!(next_message(&mut b).await.text, "only once");
    assert_eq!(next_message(&mut b).await.text, "second");
    let conv: i64 = original.conversation.parse().unwrap();
    assert_eq!(server.stored_rows(conv), 2);
    let page = b.sync(&original.conversation, 0, None).await.unwrap();
    assert_eq!(page.messages.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_messages_arrive_complete_and_ordered_on_six_devices() {
    const PER_DEVICE: usize = 1000 / 6 + 1; // 6 senders × 167 = 1,002 messages
    let server = start_server().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut logins = vec![alice.clone(), bob.clone()];
    for _ in 0..2 {
        logins.push(server.login("alice").await);
        logins.push(server.login("bob").await);
    }
    let mut devices = Vec::new();
    for login in &logins {
        devices.push(server.messenger(login).await);
    }
    // Open the conversation so every device can address it.
    let conv = devices[0]
        .send(&Target::User(bob.id.clone()), "opening")
        .await
        .unwrap()
        .conversation;
    let total = 1 + PER_DEVICE * devices.len();
    let mut tasks = Vec::new();
    for (d, mut device) in devices.into_iter().enumerate() {
        let target = Target::Conversation(conv.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(total);
            let mut sent = 0;
            // Each device alternates sending and receiving, so sends from all six interleave.
            while seen.len() < total {
                if sent < PER_DEVICE {
                    device
                        .send(&target, &format!("d{d} #{sent}"))
                        .await
                        .unwrap();
                    sent += 1;
                }
                while let Ok(Ok(m)) = tokio::time::timeout(
                    std::time::Duration::from_millis(if sent < PER_DEVICE { 1 } else { 5_000 }),
                    device.next_message(),
                )
                .await
                {
                    seen.push(m);
                    if sent < PER_DEVICE || seen.len() == total {
                        break;
                    }
                }
            }
            seen
        }));
    }
    let mut reference: Option<Vec<(u64, String)>> = None;
    for task in tasks {
        let seen: Vec<(u64, String)> = task
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.seq, m.text))
            .collect();
        let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (1..=total as u64).collect::<Vec<_>>(),
            "complete, in order, once"
        );
        match &reference {
            None => reference = Some(seen),
            Some(r) => assert_eq!(r, &seen, "every device sees the same conversation"),
        }
    }
    let texts: HashMap<String, ()> = reference
        .unwrap()
        .into_iter()
        .map(|(_, t)| (t, ()))
        .collect();
    assert_eq!(texts.len(), total, "every message is distinct");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_cursor_unread_counts_and_history() {
    let server = start_server().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let bob2 = server.login("bob").await;
    let a = server.connect(&alice).await;
    let b = server.connect(&bob).await;
    let mut b2 = server.connect(&bob2).await;
    let mut conv = String::new();
    for i in 0..10 {
        conv = a
            .send_text(
                &Target::User(bob.id.clone()),
                &format!("m{i}"),
                &format!("{i}"),
            )
            .await
            .unwrap()
            .conversation;
    }
    let before = b.conversations(None).await.unwrap().conversations;
    assert_eq!((before[0].unread, before[0].read_seq), (10, 0));
    assert_eq!(before[0].last_message.as_ref().unwrap().text, "9");

    assert_eq!(b.read(&conv, 7).await.unwrap().read_seq, 7);
    assert_eq!(
        b.read(&conv, 3).await.unwrap().read_seq,
        7,
        "never moves back"
    );
    // Bob's other device is told.
    loop {
        match b2.next_event().await.unwrap() {
            Event::Read {
                conversation,
                user,
                seq,
            } => {
                assert_eq!((conversation, user, seq), (conv.clone(), bob.id.clone(), 7));
                break;
            }
            Event::Message(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    let after = b.conversations(None).await.unwrap().conversations;
    assert_eq!((after[0].unread, after[0].read_seq), (3, 7));
    // Alice's cursor is her own, and her own messages are read by her.
    let alice_view = &a.conversations(None).await.unwrap().conversations[0];
    assert_eq!((alice_view.unread, alice_view.read_seq), (0, 10));
    // Only conversations changed since a timestamp.
    let since = after[0].updated_at;
    assert!(
        b.conversations(Some(since))
            .await
            .unwrap()
            .conversations
            .is_empty()
    );

    // History pages backwards, each page oldest first.
    let newest = b.history(&conv, None, Some(4)).await.unwrap();
    let seqs: Vec<u64> = newest.messages.iter().map(|m| m.seq).collect();
    assert_eq!((seqs, newest.has_more), (vec![7, 8, 9, 10], true));
    let older = b.history(&conv, Some(7), Some(4)).await.unwrap();
    let seqs: Vec<u64> = older.messages.iter().map(|m| m.seq).collect();
    assert_eq!((seqs, older.has_more), (vec![3, 4, 5, 6], true));
    let oldest = b.history(&conv, Some(3), Some(4)).await.unwrap();
    let seqs: Vec<u64> = oldest.messages.iter().map(|m| m.seq).collect();
    assert_eq!((seqs, oldest.has_more), (vec![1, 2], false));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_keep_their_order_share_commits_and_precede_later_requests() {
    const SENDS: usize = 50;
    let server = start_server().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut b = server.connect(&bob).await;
    let mut socket = common::RawSocket::open_ready(&server.addr, &alice.token).await;
    // Open the conversation first, so the burst below is sends only.
    let mut texts = vec![common::send_request("first", &bob.id, "k-first", "0")];
    socket.send_texts(&texts).await;
    socket.next_frame().await.expect("first ack");
    let before = server.metric("banter_commit_batch_size_count").await;

    // Fifty sends in one write, one of them invalid, then a request that reads their effect.
    texts.clear();
    for i in 1..=SENDS {
        let key = if i == 25 {
            String::new()
        } else {
            format!("k{i}")
        };
        texts.push(common::send_request(
            &format!("s{i}"),
            &bob.id,
            &key,
            &i.to_string(),
        ));
    }
    texts.push(r#"{"id":"list","type":"conversations"}"#.to_owned());
    socket.send_texts(&texts).await;

    let mut seqs = Vec::new();
    for i in 1..=SENDS + 1 {
        let frame = socket.next_frame().await.expect("a reply");
        let reply: serde_json::Value = serde_json::from_slice(&frame.payload).unwrap();
        if i == SENDS + 1 {
            assert_eq!(reply["id"], "list", "replies in request order: {reply}");
            let last = &reply["result"]["conversations"][0]["last_message"];
            assert_eq!(last["text"], SENDS.to_string(), "{reply}");
        } else if i == 25 {
            assert_eq!(reply["id"], "s25", "{reply}");
            assert_eq!(reply["error"]["code"], "invalid_client_msg_id", "{reply}");
        } else {
            assert_eq!(reply["id"], format!("s{i}"), "replies in request order");
            seqs.push(reply["result"]["seq"].as_u64().unwrap());
        }
    }
    // Seq 1 is the first message; the 49 valid sends follow it gap-free, in send order.
    assert_eq!(seqs, (2..=SENDS as u64).collect::<Vec<_>>());
    let committed = server.metric("banter_commit_batch_size_count").await - before;
    assert!(
        committed < seqs.len() as u64,
        "{} pipelined sends took {committed} commits",
        seqs.len()
    );
    // Bob sees them in order.
    let texts: Vec<String> = {
        let mut out = Vec::new();
        while out.len() < SENDS {
            out.push(next_message(&mut b).await.text);
        }
        out
    };
    let expected: Vec<String> = (0..=SENDS)
        .filter(|i| *i != 25)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(texts, expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_pipelined_right_before_a_close_are_still_stored_and_delivered() {
    let server = start_server().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut b = server.connect(&bob).await;
    let mut socket = common::RawSocket::open_ready(&server.addr, &alice.token).await;
    let texts: Vec<String> = (1..=20)
        .map(|i| common::send_request(&format!("s{i}"), &bob.id, &format!("k{i}"), &i.to_string()))
        .collect();
    socket.send_texts(&texts).await;
    socket.send_frame(8, &1000u16.to_be_bytes()).await;
    // The server closes normally (replies that were ready before the close may precede it).
    let (code, replies) = socket.close_code().await;
    assert_eq!(code, Some(1000));
    assert!(replies <= 20);
    let mut got = Vec::new();
    while got.len() < 20 {
        got.push(next_message(&mut b).await.text);
    }
    assert_eq!(got, (1..=20).map(|i| i.to_string()).collect::<Vec<_>>());
    server.stop().await;
}

/// Serialized size of a page's messages, as the server counts them (each plus a comma).
fn encoded(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|m| serde_json::to_vec(m).unwrap().len() + 1)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_bounded_by_encoded_bytes_and_page_through_everything() {
    const BUDGET: usize = 64 * 1024;
    let server = start_with(|c| c.max_page_bytes = BUDGET).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let a = server.connect(&alice).await;
    let to_bob = Target::User(bob.id.clone());
    // 40 messages of 4,000 bytes that escape to 6 bytes each (~24 KB encoded): by text length
    // ten would fit in 64 KiB, encoded only two do.
    let text = "\u{7}".repeat(4_000);
    let mut conv = String::new();
    for i in 0..40 {
        conv = a
            .send_text(&to_bob, &format!("m{i}"), &text)
            .await
            .unwrap()
            .conversation;
    }
    let b = server.connect(&bob).await;
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = b.sync(&conv, after, Some(500)).await.unwrap();
        assert!(
            !page.messages.is_empty(),
            "a page is never empty while entries remain"
        );
        assert!(encoded(&page.messages) <= BUDGET, "sync page over budget");
        seen.extend(page.messages.iter().map(|m| m.seq));
        after = page.messages.last().unwrap().seq;
        if !page.has_more {
            break;
        }
        assert_eq!(page.messages.len(), 2, "two 24 KB messages fit in 64 KiB");
    }
    assert_eq!(
        seen,
        (1..=40).collect::<Vec<_>>(),
        "sync pages cover everything once"
    );
    let mut before = None;
    let mut seen = Vec::new();
    loop {
        let page = b.history(&conv, before, Some(500)).await.unwrap();
        assert!(
            encoded(&page.messages) <= BUDGET,
            "history page over budget"
        );
        seen.splice(0..0, page.messages.iter().map(|m| m.seq));
        before = Some(page.messages[0].seq);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(
        seen,
        (1..=40).collect::<Vec<_>>(),
        "history pages cover everything once"
    );
    // A message larger than the budget still comes, alone.
    let server_small = start_with(|c| c.max_page_bytes = 1).await;
    let (carol, dave) = (
        server_small.user("carol").await,
        server_small.user("dave").await,
    );
    let c = server_small.connect(&carol).await;
    let to_dave = Target::User(dave.id.clone());
    let ack = c.send_text(&to_dave, "x1", "one").await.unwrap();
    c.send_text(&to_dave, "x2", "two").await.unwrap();
    let page = c.sync(&ack.conversation, 0, None).await.unwrap();
    assert_eq!((page.messages.len(), page.has_more), (1, true));
    server_small.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_back_to_an_earlier_text_take_effect_and_retries_stay_idempotent() {
    use banter_client::protocol::{ClientRequest as R, SendAck};
    let server = start_server().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let a = server.connect(&alice).await;
    let sent = a
        .send_text(&Target::User(bob.id.clone()), "m1", "v0")
        .await
        .unwrap();
    let conv = sent.conversation.clone();
    let edit = |text: &str, key: Option<&str>| R::Edit {
        conversation: conv.clone(),
        seq: sent.seq,
        text: text.into(),
        client_msg_id: key.map(str::to_owned),
    };
    let text_now = || async {
        let page = a.sync(&conv, 0, Some(1)).await.unwrap();
        page.messages[0].text.clone()
    };
    let v1: SendAck = common::ok(&a, edit("v1", Some("e1"))).await;
    let v2: SendAck = common::ok(&a, edit("v2", Some("e2"))).await;
    let back: SendAck = common::ok(&a, edit("v1", Some("e3"))).await;
    assert!(!v1.duplicate && !v2.duplicate);
    assert!(!back.duplicate, "editing back to v1 is a new edit");
    assert_eq!(text_now().await, "v1");
    // A retry of e2 (say after a lost reply) answers the original and changes nothing.
    let retry: SendAck = common::ok(&a, edit("v2", Some("e2"))).await;
    assert_eq!((retry.duplicate, retry.seq), (true, v2.seq));
    assert_eq!(text_now().await, "v1");
    // Without a key every edit is new, even to the same text.
    let x: SendAck = common::ok(&a, edit("v4", None)).await;
    let y: SendAck = common::ok(&a, edit("v1", None)).await;
    let z: SendAck = common::ok(&a, edit("v4", None)).await;
    assert!(!x.duplicate && !y.duplicate && !z.duplicate);
    assert_eq!(text_now().await, "v4");
    // A key that names another request of the sender is refused, not taken for it.
    a.send_text(
        &Target::User(bob.id.clone()),
        &format!("edit:{}:k", sent.message_id),
        "hi",
    )
    .await
    .unwrap();
    let code = common::refused(&a, edit("v5", Some("k"))).await;
    assert_eq!(code, banter_client::protocol::ErrorCode::InvalidClientMsgId);
    assert_eq!(text_now().await, "v4");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_previews_share_the_page_budget() {
    let server = start_with(|c| c.max_page_bytes = 20 * 1024).await;
    let alice = server.user("alice").await;
    let a = server.connect(&alice).await;
    let text = "x".repeat(16 * 1024);
    for name in ["bob", "carol", "dave"] {
        let peer = server.user(name).await;
        a.send_text(&Target::User(peer.id), name, &text)
            .await
            .unwrap();
    }
    let list = a.conversations(None).await.unwrap().conversations;
    assert_eq!(list.len(), 3, "every conversation is listed");
    assert!(list.iter().all(|c| c.last_seq == 1));
    let previews: Vec<bool> = list.iter().map(|c| c.last_message.is_some()).collect();
    assert_eq!(
        previews,
        vec![true, false, false],
        "the newest preview fits in 20 KiB, a second 16 KiB one does not"
    );
    assert_eq!(
        list[0].peer_username.as_deref(),
        Some("dave"),
        "newest first"
    );
    server.stop().await;
}
