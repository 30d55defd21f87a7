//! Media: files attached to messages, and what the upload endpoint answers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an attached file is, for the client to pick how to show it. The server sniffs the
/// file's type from its bytes; `image` needs an image type it can thumbnail, `voice`, `audio`
/// and `video` an audio or video type, `file` any allowed type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A picture, shown inline from its thumbnail.
    Image,
    /// Any file, shown as a card with its name and size.
    File,
    /// A voice note recorded in the app.
    Voice,
    /// An audio file.
    Audio,
    /// A video file.
    Video,
}

impl AttachmentKind {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::File => "file",
            Self::Voice => "voice",
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }
}

/// The file a `send` attaches: an id from `POST /v1/media`, how to show it, and what only the
/// sender knows (the name to show, a recording's duration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentRequest {
    /// How to show it.
    pub kind: AttachmentKind,
    /// The file's id: the SHA-256 of its bytes, 64 lowercase hex digits.
    pub id: String,
    /// File name to show (no path separators, at most 255 bytes); the upload's name if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Duration in milliseconds, for `voice`, `audio` and `video` (as the sender measured it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A file attached to a message, as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    /// How to show it.
    pub kind: AttachmentKind,
    /// The file's id (SHA-256 of its bytes, hex): `GET /v1/media/{id}` downloads it.
    pub id: String,
    /// Its type, sniffed from its bytes by the server.
    #[serde(rename = "type")]
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// File name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The caption the sender wrote (the message's `text` also carries it, after a fallback
    /// line for clients that do not know attachments).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caption: String,
    /// Image width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Duration in milliseconds (voice, audio, video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `GET /v1/media/{id}/thumbnail` has a thumbnail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumbnail: bool,
    /// A placeholder colour (`#rrggbb`) to show until the thumbnail arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// What `POST /v1/media` (and `GET /v1/media/{id}/info`) answers: the stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MediaInfo {
    /// SHA-256 of the bytes, 64 lowercase hex digits.
    pub id: String,
    /// Type sniffed from the bytes.
    #[serde(rename = "type")]
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// The name given at upload, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// A thumbnail exists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumbnail: bool,
    /// Placeholder colour of an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Bytes the caller's uploads take, after this one.
    pub used_bytes: u64,
    /// The caller's quota.
    pub quota_bytes: u64,
}

/// A sticker of the server's built-in set: `GET /v1/stickers/{id}` serves its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Sticker {
    /// Its id, as a `send` names it.
    pub id: String,
    /// Its name, for the image's alternative text.
    pub name: String,
    /// The emoji closest to it, for clients that show no images.
    pub emoji: String,
}

/// What `GET /v1/stickers` answers: the server's built-in set, in the order to show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StickerList {
    /// The stickers.
    pub stickers: Vec<Sticker>,
}
