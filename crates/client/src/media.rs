//! Media over HTTP: upload a file, the hash pre-check, download a file or its thumbnail, the
//! server's stickers; and sending an uploaded file or a sticker over a connection.

use banter_protocol::{AttachmentRequest, MediaInfo, SendAck, StickerList};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use hyper::header::CONTENT_TYPE;

use crate::{Api, ClientError, Connection, Target};

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Api {
    /// Uploads `bytes` (held in memory: for very large files, stream the request body
    /// yourself, see PROTOCOL.md "Media"). Returns the stored file and whether these bytes
    /// were new to the server (`false`: stored before, by anyone).
    pub async fn upload_media(
        &self,
        token: &str,
        name: Option<&str>,
        bytes: Bytes,
    ) -> Result<(MediaInfo, bool), ClientError> {
        let path = match name {
            Some(n) => format!("/v1/media?name={}", encode(n)),
            None => "/v1/media".to_owned(),
        };
        let req = self
            .builder(Method::POST, &path, Some(token))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(bytes))
            .map_err(ClientError::protocol)?;
        let (status, body) = self.fetch(req).await?;
        let info = serde_json::from_slice(&body).map_err(ClientError::protocol)?;
        Ok((info, status == hyper::StatusCode::CREATED))
    }

    /// The hash pre-check: the file whose SHA-256 (lowercase hex) is `id`, if the caller may
    /// send it without uploading it; `unknown_media` otherwise.
    pub async fn media_info(&self, token: &str, id: &str) -> Result<MediaInfo, ClientError> {
        self.call_json(
            Method::GET,
            &format!("/v1/media/{id}/info"),
            Some(token),
            None::<&()>,
        )
        .await
    }

    /// The server's built-in stickers (no token needed).
    pub async fn stickers(&self) -> Result<StickerList, ClientError> {
        self.call_json(Method::GET, "/v1/stickers", None, None::<&()>)
            .await
    }

    /// Downloads a file the caller may read, or its thumbnail.
    pub async fn download_media(
        &self,
        token: &str,
        id: &str,
        thumbnail: bool,
    ) -> Result<Bytes, ClientError> {
        let path = if thumbnail {
            format!("/v1/media/{id}/thumbnail")
        } else {
            format!("/v1/media/{id}")
        };
        let req = self
            .builder(Method::GET, &path, Some(token))
            .body(Full::new(Bytes::new()))
            .map_err(ClientError::protocol)?;
        Ok(self.fetch(req).await?.1)
    }
}

impl Connection {
    /// Sends an uploaded file with a caption (which may be empty).
    pub async fn send_attachment(
        &self,
        target: &Target,
        client_msg_id: &str,
        caption: &str,
        attachment: AttachmentRequest,
    ) -> Result<SendAck, ClientError> {
        self.send(target, client_msg_id, caption, Some(attachment), None)
            .await
    }

    /// Sends one of the server's stickers (an id from [`Api::stickers`]).
    pub async fn send_sticker(
        &self,
        target: &Target,
        client_msg_id: &str,
        sticker: &str,
    ) -> Result<SendAck, ClientError> {
        self.send(target, client_msg_id, "", None, Some(sticker.to_owned()))
            .await
    }
}
