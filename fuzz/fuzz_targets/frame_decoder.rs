//! The session's WebSocket frame decoder on arbitrary client bytes: it must never panic, must
//! decode the same messages whatever the read boundaries, and must keep its promises (text is
//! UTF-8, nothing over the limit). Input: one byte choosing the limit, one the read size, then
//! the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [limit, chunk, stream @ ..] = data else {
        return;
    };
    // Limits from 16 bytes to 64 KiB, so oversize frames and messages are reachable.
    let max_payload = 16usize << (usize::from(*limit) % 13);
    banter_server::fuzzing::decode_frames(max_payload, stream, usize::from(*chunk) + 1);
});
