//! Stickers end to end against a real server: the set and its images over HTTP (public, served
//! as media), a sticker sent into a conversation and seen by the peer live and in history, the
//! fallback text for old clients, recall but no edit, and the refusals.

mod common;

use banter_client::Event;
use banter_client::protocol::{ClientRequest, ErrorCode, Message, MessagePage, SendAck};
use banter_client::{Target, protocol::StickerList};
use common::media::request;
use common::{next_matching, ok, refused, start_with};

fn sticker_send(to: &str, key: &str, sticker: &str, text: &str) -> ClientRequest {
    ClientRequest::Send {
        to: Some(to.to_owned()),
        conversation: None,
        client_msg_id: key.into(),
        text: text.into(),
        attachment: None,
        sticker: Some(sticker.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_set_and_its_images_are_public_and_served_as_media() {
    let server = start_with(|_| {}).await;
    // No token: an <img> loads a sticker without one.
    let list: StickerList = server.api.stickers().await.unwrap();
    assert!(list.stickers.len() >= 8, "{list:?}");
    assert!(
        list.stickers
            .iter()
            .any(|s| s.id == "laugh" && s.emoji == "😂")
    );
    for s in &list.stickers {
        let r = request(
            &server.addr,
            "GET",
            &format!("/v1/stickers/{}", s.id),
            "",
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{}", s.id);
        assert_eq!(r.header("content-type"), Some("image/svg+xml"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            r.header("content-security-policy"),
            Some("sandbox; default-src 'none'")
        );
        assert!(r.body.starts_with(b"<svg "), "{}", s.id);
        let etag = r.header("etag").expect("an ETag").to_owned();
        let again = request(
            &server.addr,
            "GET",
            &format!("/v1/stickers/{}", s.id),
            "",
            &[&format!("If-None-Match: {etag}")],
            b"",
        )
        .await;
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
    }
    for bad in ["nope", "..%2Fsmile", "smile.svg", "SMILE"] {
        let r = request(
            &server.addr,
            "GET",
            &format!("/v1/stickers/{bad}"),
            "",
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, 404, "{bad}");
        assert_eq!(r.json()["error"]["code"], "unknown_sticker", "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticker_reaches_the_peer_live_and_in_history_and_can_be_recalled() {
    let server = start_with(|_| {}).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let a = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;

    let ack: SendAck = ok(&a, sticker_send(&bob.id, "st-1", "laugh", "")).await;
    let got = next_matching(&mut b, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(got.seq, ack.seq);
    let sticker = got
        .sticker
        .as_deref()
        .expect("the message carries the sticker");
    assert_eq!(
        (
            sticker.id.as_str(),
            sticker.name.as_str(),
            sticker.emoji.as_str()
        ),
        ("laugh", "Laugh", "😂")
    );
    assert_eq!(got.text, "[Sticker: Laugh 😂]", "old clients see text");
    assert!(got.attachment.is_none());

    // A retry is the original ack; history shows the same sticker.
    let again: SendAck = ok(&a, sticker_send(&bob.id, "st-1", "laugh", "")).await;
    assert_eq!(again.seq, ack.seq);
    let history = |conv: &str| ClientRequest::History {
        conversation: conv.to_owned(),
        before_seq: None,
        limit: None,
    };
    let page: MessagePage = ok(&b, history(&ack.conversation)).await;
    let stored: Vec<&Message> = page
        .messages
        .iter()
        .filter(|m| m.sticker.is_some())
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].sticker.as_deref().unwrap().id, "laugh");

    // Stickers are recalled, never edited.
    let edit = ClientRequest::Edit {
        conversation: ack.conversation.clone(),
        seq: ack.seq,
        text: "changed".into(),
        client_msg_id: None,
    };
    assert_eq!(refused(&a, edit).await, ErrorCode::UnknownMessage);
    let recall = ClientRequest::Recall {
        conversation: ack.conversation.clone(),
        seq: ack.seq,
        client_msg_id: None,
    };
    let _: SendAck = ok(&a, recall).await;
    let page: MessagePage = ok(&b, history(&ack.conversation)).await;
    let original = page.messages.iter().find(|m| m.seq == ack.seq).unwrap();
    assert!(original.recalled);
    assert!(original.sticker.is_none(), "{original:?}");
    assert!(original.text.is_empty(), "{original:?}");

    // Through the SDK too.
    let ack: SendAck = a
        .send_sticker(&Target::User(bob.id.clone()), "st-2", "heart")
        .await
        .unwrap();
    let got = next_matching(&mut b, |e| match e {
        Event::Message(m) if m.seq == ack.seq => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(got.sticker.as_deref().unwrap().id, "heart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stickers_and_stickers_with_text_are_refused_and_store_nothing() {
    let server = start_with(|_| {}).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let a = server.connect(&alice).await;
    for (key, sticker, text, want) in [
        ("bad-1", "nope", "", ErrorCode::UnknownSticker),
        ("bad-2", "../smile", "", ErrorCode::UnknownSticker),
        ("bad-3", "", "", ErrorCode::UnknownSticker),
        ("bad-4", "smile", "and words", ErrorCode::InvalidField),
    ] {
        assert_eq!(
            refused(&a, sticker_send(&bob.id, key, sticker, text)).await,
            want,
            "{key}"
        );
    }
    let with_file = ClientRequest::Send {
        to: Some(bob.id.clone()),
        conversation: None,
        client_msg_id: "bad-5".into(),
        text: String::new(),
        attachment: Some(banter_client::protocol::AttachmentRequest {
            kind: banter_client::protocol::AttachmentKind::Image,
            id: "0".repeat(64),
            name: None,
            duration_ms: None,
        }),
        sticker: Some("smile".into()),
    };
    assert_eq!(refused(&a, with_file).await, ErrorCode::InvalidField);
    // Nothing was stored: the first real send opens the conversation at seq 1.
    let ack: SendAck = ok(&a, sticker_send(&bob.id, "good", "smile", "")).await;
    assert_eq!(ack.seq, 1);
}
