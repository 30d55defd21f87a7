//! Every WebSocket request type, parsed from arbitrary JSON the way the session parses a text
//! frame: parsing must never panic, and a frame that parses must survive a round trip.
#![no_main]

use banter_protocol::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = serde_json::from_slice::<ClientFrame>(data) else {
        return;
    };
    let json = serde_json::to_vec(&frame).expect("a parsed frame serializes");
    let again: ClientFrame = serde_json::from_slice(&json).expect("a serialized frame parses");
    assert_eq!(frame, again, "round trip changed the frame");
});
