//! Every JSON body of the HTTP API, parsed from arbitrary bytes: parsing must never panic, and a
//! body that parses must survive a round trip. Input: one byte choosing the body type, then the
//! body.
#![no_main]

use banter_protocol::{ChangePasswordRequest, LoginRequest, RegisterRequest};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned>(body: &[u8]) {
    let Ok(parsed) = serde_json::from_slice::<T>(body) else {
        return;
    };
    let json = serde_json::to_value(&parsed).expect("a parsed body serializes");
    let again: T = serde_json::from_value(json.clone()).expect("a serialized body parses");
    assert_eq!(
        json,
        serde_json::to_value(&again).unwrap(),
        "round trip changed the body"
    );
}

fuzz_target!(|data: &[u8]| {
    let [kind, body @ ..] = data else {
        return;
    };
    match kind % 3 {
        0 => round_trip::<RegisterRequest>(body),
        1 => round_trip::<LoginRequest>(body),
        _ => round_trip::<ChangePasswordRequest>(body),
    }
});
