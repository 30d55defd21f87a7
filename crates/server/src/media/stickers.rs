//! The built-in stickers: a small set of images drawn for Banter, carried inside the binary and
//! served at `GET /v1/stickers/{id}`. A sticker message stores only the sticker's id; its name
//! and emoji come from this table when the message is read.

use banter_protocol::Sticker;

/// One sticker of the set.
pub struct BuiltIn {
    /// The id a `send` names.
    pub id: &'static str,
    /// Its name (the image's alternative text).
    pub name: &'static str,
    /// The closest emoji.
    pub emoji: &'static str,
    /// The image: an SVG without script, links or external references.
    pub svg: &'static str,
}

macro_rules! sticker {
    ($id:literal, $name:literal, $emoji:literal) => {
        BuiltIn {
            id: $id,
            name: $name,
            emoji: $emoji,
            svg: include_str!(concat!("../../stickers/", $id, ".svg")),
        }
    };
}

/// The set, in the order a picker shows it.
pub static STICKERS: [BuiltIn; 10] = [
    sticker!("smile", "Smile", "🙂"),
    sticker!("laugh", "Laugh", "😂"),
    sticker!("love", "Love", "😍"),
    sticker!("wink", "Wink", "😉"),
    sticker!("wow", "Wow", "😮"),
    sticker!("sad", "Sad", "😢"),
    sticker!("cool", "Cool", "😎"),
    sticker!("angry", "Angry", "😠"),
    sticker!("heart", "Heart", "❤️"),
    sticker!("star", "Star", "⭐"),
];

/// The sticker with that id.
pub fn find(id: &str) -> Option<&'static BuiltIn> {
    STICKERS.iter().find(|s| s.id == id)
}

impl BuiltIn {
    /// Its wire form.
    pub fn view(&self) -> Sticker {
        Sticker {
            id: self.id.to_owned(),
            name: self.name.to_owned(),
            emoji: self.emoji.to_owned(),
        }
    }

    /// Its HTTP entity tag: a hash of the drawing, so a redrawn sticker is fetched anew.
    pub fn etag(&self) -> &'static str {
        static ETAGS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            use sha2::{Digest, Sha256};
            STICKERS
                .iter()
                .map(|s| {
                    let hash = Sha256::digest(s.svg.as_bytes());
                    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
                    format!("\"{hex}\"")
                })
                .collect()
        });
        let i = STICKERS
            .iter()
            .position(|s| s.id == self.id)
            .expect("a sticker of the set");
        &ETAGS[i]
    }

    /// The text a client that does not know stickers shows.
    pub fn fallback_line(&self) -> String {
        format!("[Sticker: {} {}]", self.name, self.emoji)
    }
}

#[cfg(test)]
mod tests {
    use super::{STICKERS, find};
    use crate::media::sniff::{sniff, svg_is_active};

    #[test]
    fn every_sticker_is_an_inert_svg_with_a_unique_id() {
        for (i, s) in STICKERS.iter().enumerate() {
            assert_eq!(sniff(s.svg.as_bytes()), "image/svg+xml", "{}", s.id);
            assert!(
                !svg_is_active(s.svg.as_bytes()),
                "{} passes the upload check",
                s.id
            );
            assert!(s.svg.len() < 4096, "{} is small", s.id);
            assert!(STICKERS[..i].iter().all(|t| t.id != s.id), "{} once", s.id);
            assert!(s.id.bytes().all(|b| b.is_ascii_lowercase()), "{}", s.id);
            assert_eq!(find(s.id).map(|f| f.name), Some(s.name));
            assert!(
                STICKERS[..i].iter().all(|t| t.etag() != s.etag()),
                "{}",
                s.id
            );
        }
        assert!(find("../smile").is_none());
        assert!(find("").is_none());
    }
}
