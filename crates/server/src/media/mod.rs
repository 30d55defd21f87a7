//! Media: uploads streamed to storage, typed by their bytes, images inspected (decompression
//! bombs refused from the header), thumbnailed and stripped of metadata; downloads authorised
//! per conversation. `service` is what the HTTP handlers and the messaging service call.

pub mod image;
pub mod object;
pub mod service;
pub mod sniff;
pub mod stickers;
pub mod storage;
