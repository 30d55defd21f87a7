//! Uploaded media: validation, thumbnails and metadata stripping, never trusting the input.

pub mod image;
