//! Entry points for the `cargo fuzz` targets in `fuzz/` (built only with the `fuzzing` cargo
//! feature; not an API). The session's WebSocket frame decoder is compiled here a second time,
//! from its own file, so that it stays private to the session everywhere else.

// Loaded twice on purpose (see above); only the decoder is used here.
#[allow(dead_code, unreachable_pub, clippy::duplicate_mod)]
#[path = "session/frame.rs"]
mod frame;

use bytes::BytesMut;

use self::frame::{Decoder, FrameError, Inbound};

/// What a decoder made of a byte stream: every message in order, then the refusal if any.
type Decoded = (Vec<Inbound>, Option<FrameError>);

/// Decodes `bytes` twice, once whole and once in reads of `chunk` bytes, and panics if the two
/// disagree or if a message breaks the decoder's promises (text is UTF-8, no message longer
/// than `max_payload`). Returns how many messages were decoded.
pub fn decode_frames(max_payload: usize, bytes: &[u8], chunk: usize) -> usize {
    let whole = decode_in_reads(max_payload, bytes, bytes.len().max(1));
    let split = decode_in_reads(max_payload, bytes, chunk.max(1));
    assert_eq!(
        whole, split,
        "the result depends on how the bytes were read"
    );
    for message in &whole.0 {
        match message {
            Inbound::Text(text) => {
                assert!(text.len() <= max_payload, "a text message over the limit");
                assert!(
                    std::str::from_utf8(text).is_ok(),
                    "a text message not UTF-8"
                );
            }
            Inbound::Ping(payload) => assert!(payload.len() <= 125, "an oversize ping"),
            Inbound::Binary | Inbound::Pong | Inbound::Close => {}
        }
    }
    whole.0.len()
}

/// Feeds `bytes` to a fresh decoder `chunk` bytes at a time, as reads off a socket would, and
/// decodes after each read until it needs more or refuses.
fn decode_in_reads(max_payload: usize, bytes: &[u8], chunk: usize) -> Decoded {
    let mut decoder = Decoder::new(max_payload);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for read in bytes.chunks(chunk) {
        buf.extend_from_slice(read);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(e) => return (messages, Some(e)),
            }
        }
    }
    (messages, None)
}
