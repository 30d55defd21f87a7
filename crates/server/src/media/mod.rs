//! Uploaded media: what a file is (sniffed from its bytes), image validation, thumbnails and
//! metadata stripping, never trusting the input. The building blocks of issue 14; the upload
//! and download endpoints that use them are not built yet.

pub mod image;
pub mod sniff;
