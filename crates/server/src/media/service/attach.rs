//! Attaching an uploaded file to a message: the checks, the share with the conversation, and
//! the fallback line old clients show.

use banter_protocol::{Attachment, AttachmentKind, AttachmentRequest, ErrorCode};

use super::{Media, check_name};
use crate::error::{Error, Result};
use crate::store::{ConvId, UserId};

impl Media {
    /// Checks an attachment `user` sends into `conv` and shares the file there, so that its
    /// members may read it. The shared file stays readable to them even if the send then
    /// fails (the sender chose to show it to them).
    pub async fn attach(
        &self,
        user: UserId,
        conv: ConvId,
        req: &AttachmentRequest,
        caption: &str,
    ) -> Result<Attachment> {
        if let Some(name) = &req.name {
            check_name(name)?;
        }
        // Under the content's stripe, so that the sweep cannot take the bytes between the
        // check and the share.
        let _stripe = self.stripe(&req.id).await;
        let record = self.readable_record(user, &req.id).await?;
        let fits = match req.kind {
            AttachmentKind::Image => record.thumbnail.is_some(),
            AttachmentKind::Voice | AttachmentKind::Audio => {
                record.mime.starts_with("audio/") || record.mime == "video/webm"
            }
            AttachmentKind::Video => record.mime.starts_with("video/"),
            AttachmentKind::File => true,
        };
        if !fits {
            return Err(Error::with(
                ErrorCode::InvalidMedia,
                format!(
                    "a file of type {} cannot be sent as {}",
                    record.mime,
                    req.kind.as_str()
                ),
            ));
        }
        let name = match &req.name {
            Some(n) => Some(n.clone()),
            None => self.store.upload_name(user, &req.id).await?.flatten(),
        };
        self.store.share_media(conv, &record.hash).await?;
        Ok(Attachment {
            kind: req.kind,
            id: record.hash,
            mime: record.mime,
            size: record.size,
            name,
            caption: caption.to_owned(),
            width: record.width,
            height: record.height,
            duration_ms: req.duration_ms,
            thumbnail: record.thumbnail.is_some(),
            color: record.color,
        })
    }
}

/// The line a client that does not know attachments shows for one.
pub fn fallback_line(a: &Attachment) -> String {
    let what = match a.kind {
        AttachmentKind::Image => "Image",
        AttachmentKind::File => "File",
        AttachmentKind::Voice => "Voice message",
        AttachmentKind::Audio => "Audio",
        AttachmentKind::Video => "Video",
    };
    match &a.name {
        Some(name) => format!("[{what}: {name}]"),
        None => format!("[{what}]"),
    }
}
