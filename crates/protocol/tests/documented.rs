//! PROTOCOL.md must list every error code and close code the code defines.

use banter_protocol::{CloseCode, ErrorCode};

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");

#[test]
fn every_error_code_is_documented() {
    for code in ErrorCode::ALL {
        let row = format!("| `{}` |", code.as_str());
        assert!(DOC.contains(&row), "PROTOCOL.md has no row for {code}");
        // The wire form is the serde form.
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
    }
}

#[test]
fn every_close_code_is_documented() {
    for code in 0..=u16::MAX {
        if let Some(close) = CloseCode::from_code(code) {
            let row = format!("| {} |", close.code());
            assert!(
                DOC.contains(&row),
                "PROTOCOL.md has no row for close {code}"
            );
        }
    }
}

#[test]
fn request_types_list_matches_the_enum() {
    use banter_protocol::{ClientFrame, ClientRequest};
    // serde names every variant when it meets an unknown one.
    let err = serde_json::from_str::<ClientFrame>(r#"{"id":"1","type":"zzz"}"#).unwrap_err();
    let msg = err.to_string();
    let listed: Vec<&str> = msg
        .split("expected one of ")
        .nth(1)
        .expect("serde lists the variants")
        .split(", ")
        .map(|v| v.trim_matches(|c: char| c == '`' || c == ',' || c.is_whitespace()))
        .map(|v| v.split('`').next().unwrap())
        .collect();
    let mut listed = listed;
    let mut ours = ClientRequest::TYPES.to_vec();
    listed.sort_unstable();
    ours.sort_unstable();
    assert_eq!(listed, ours);
    for t in ClientRequest::TYPES {
        assert!(
            DOC.contains(&format!("`{t}`")),
            "PROTOCOL.md does not mention `{t}`"
        );
    }
}

#[test]
fn ok_frames_put_the_tag_first_and_embed_the_result_verbatim() {
    // The SDK reads replies on a fast path keyed on this exact prefix.
    let frame = banter_protocol::ServerFrame::Ok {
        id: "7".into(),
        result: serde_json::value::RawValue::from_string(r#"{"seq":3}"#.into()).unwrap(),
    };
    assert_eq!(
        serde_json::to_string(&frame).unwrap(),
        r#"{"type":"ok","id":"7","result":{"seq":3}}"#
    );
}
