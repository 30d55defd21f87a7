//! The fuzz targets' seed corpus (fuzz/corpus/client_frame) holds a frame of every request type,
//! and every seed parses: seeds that stopped parsing would only exercise the error path.

use std::path::Path;

use banter_protocol::{ClientFrame, ClientRequest};

#[test]
fn every_request_type_has_a_seed_that_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/client_frame");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let frame: ClientFrame = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        let value = serde_json::to_value(&frame.request).unwrap();
        seen.push(value["type"].as_str().unwrap().to_owned());
    }
    for t in ClientRequest::TYPES {
        assert!(seen.iter().any(|s| s == t), "no seed for {t}");
    }
}
