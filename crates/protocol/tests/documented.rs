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
