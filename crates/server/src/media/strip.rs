//! Removal of privacy-leaking metadata (EXIF with GPS, XMP, IPTC, comments) from uploaded images.
//!
//! Owns the container parsing of the four accepted formats, at the level of segments, chunks and
//! blocks only: pixels are never decoded nor re-encoded, and every kept byte is copied as is. It
//! must never trust a declared length: each is checked against the bytes left before it is used,
//! and every loop advances, so malformed input ends in [`ImageError::Invalid`], never in a panic
//! or a loop without end.

use std::path::Path;

use super::ImageError;

/// Copies `input` to `output` without metadata that can leak privacy, without re-encoding pixels;
/// returns whether anything was removed.
///
/// By `mime` (sniffed by the caller):
/// - JPEG: drops APP1 (EXIF, XMP), APP13 (IPTC), COM segments, and anything after the end of
///   the image (where phones append extra images, each with its own EXIF) together with the APP2
///   "MPF" segment that points at them; everything else is kept byte-exact. The EXIF orientation
///   tag goes with the EXIF block, so a rotated photo may show unrotated (accepted: thumbnails
///   are made upright by [`process`](super::process)).
/// - PNG: drops eXIf, tEXt, iTXt, zTXt chunks, and anything after IEND.
/// - WebP: drops EXIF and XMP chunks and anything after the RIFF container, clears the
///   EXIF/XMP flags in VP8X and rewrites the RIFF size.
/// - GIF: drops comment extensions and XMP application extensions.
///
/// The whole file is held in memory: callers bound the upload size before this runs.
/// Blocking: run it in `spawn_blocking`.
pub fn strip_metadata(input: &Path, mime: &str, output: &Path) -> Result<bool, ImageError> {
    let bytes = std::fs::read(input)?;
    let stripped = strip_bytes(&bytes, mime)?;
    let removed = stripped != bytes;
    std::fs::write(output, &stripped)?;
    Ok(removed)
}

/// [`strip_metadata`] in memory: `bytes` without their metadata.
fn strip_bytes(bytes: &[u8], mime: &str) -> Result<Vec<u8>, ImageError> {
    match mime {
        "image/jpeg" => strip_jpeg(bytes),
        "image/png" => strip_png(bytes),
        "image/webp" => strip_webp(bytes),
        "image/gif" => strip_gif(bytes),
        _ => Err(invalid(format!("unsupported type {mime:?}"))),
    }
}

/// An [`ImageError::Invalid`] with `reason`.
fn invalid(reason: impl Into<String>) -> ImageError {
    ImageError::Invalid(reason.into())
}

/// `bytes[start..start + len]`, or Invalid if that runs past the end.
fn slice(bytes: &[u8], start: usize, len: usize) -> Result<&[u8], ImageError> {
    start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| invalid("length runs past the end of the file"))
}

/// The big-endian `u16` at `at`.
fn be16(bytes: &[u8], at: usize) -> Result<usize, ImageError> {
    let b = slice(bytes, at, 2)?;
    Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
}

/// The `u32` at `at`, big-endian or little-endian.
fn read32(bytes: &[u8], at: usize, big_endian: bool) -> Result<usize, ImageError> {
    let b: [u8; 4] = slice(bytes, at, 4)?
        .try_into()
        .map_err(|_| invalid("short field"))?;
    let n = if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    };
    usize::try_from(n).map_err(|_| invalid("length does not fit"))
}

/// JPEG markers without a length field (TEM, RST0..7).
fn is_standalone(marker: u8) -> bool {
    marker == 0x01 || (0xd0..=0xd7).contains(&marker)
}

/// Start of scan: the entropy-coded data follows the segment.
const SOS: u8 = 0xda;
/// End of image.
const EOI: u8 = 0xd9;

/// Whether a JPEG segment (`marker` with its `payload`) is metadata to drop.
fn is_jpeg_metadata(marker: u8, payload: &[u8]) -> bool {
    match marker {
        0xe1 | 0xed | 0xfe => true, // APP1 (EXIF, XMP), APP13 (IPTC), COM
        0xe2 => payload.starts_with(b"MPF\0"), // index of the images appended after EOI
        _ => false,
    }
}

/// Strips a JPEG: walks the segments and scans, keeping what is not metadata, up to EOI.
fn strip_jpeg(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return Err(invalid("not a JPEG"));
    }
    let mut out = bytes[..2].to_vec();
    let mut pos = 2;
    let mut seen_scan = false;
    while pos < bytes.len() {
        // A segment starts with 0xFF, possibly repeated as fill; fill is kept with the segment.
        let start = pos;
        if bytes[pos] != 0xff {
            return Err(invalid("expected a JPEG marker"));
        }
        while bytes.get(pos) == Some(&0xff) {
            pos += 1;
        }
        let marker = *bytes.get(pos).ok_or_else(|| invalid("truncated marker"))?;
        pos += 1;
        if marker == EOI {
            if !seen_scan {
                return Err(invalid("JPEG ends before any scan"));
            }
            out.extend_from_slice(&bytes[start..pos]);
            return Ok(out);
        }
        if is_standalone(marker) {
            out.extend_from_slice(&bytes[start..pos]);
            continue;
        }
        let len = be16(bytes, pos)?;
        if len < 2 {
            return Err(invalid("JPEG segment length below 2"));
        }
        let payload = slice(bytes, pos + 2, len - 2)?;
        pos += len;
        if !is_jpeg_metadata(marker, payload) {
            out.extend_from_slice(&bytes[start..pos]);
        }
        if marker == SOS {
            seen_scan = true;
            let end = entropy_end(bytes, pos);
            out.extend_from_slice(&bytes[pos..end]);
            pos = end;
        }
    }
    if !seen_scan {
        return Err(invalid("JPEG ends before any scan"));
    }
    // Truncated after a scan: keep what there is, as decoders show a partial image.
    Ok(out)
}

/// End of the entropy-coded data starting at `pos`: the next 0xFF that begins a marker (not a
/// stuffed 0xFF00, nor a restart marker), or the end of the file.
fn entropy_end(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() {
        if bytes[pos] == 0xff {
            match bytes.get(pos + 1) {
                None => return bytes.len(),
                Some(&next) if next == 0x00 || (0xd0..=0xd7).contains(&next) => pos += 2,
                Some(_) => return pos,
            }
        } else {
            pos += 1;
        }
    }
    bytes.len()
}

/// The PNG file signature.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Strips a PNG: copies every chunk but text and EXIF ones, up to and including IEND.
fn strip_png(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Err(invalid("not a PNG"));
    }
    let mut out = PNG_SIGNATURE.to_vec();
    let mut pos = PNG_SIGNATURE.len();
    loop {
        let len = read32(bytes, pos, true)?;
        if len > 0x7fff_ffff {
            return Err(invalid("PNG chunk length over 2^31-1"));
        }
        // Length, type, data, CRC.
        let total = len
            .checked_add(12)
            .ok_or_else(|| invalid("PNG chunk too long"))?;
        let chunk = slice(bytes, pos, total)?;
        let kind = &chunk[4..8];
        if !matches!(kind, b"eXIf" | b"tEXt" | b"iTXt" | b"zTXt") {
            out.extend_from_slice(chunk);
        }
        pos += total;
        if kind == b"IEND" {
            return Ok(out);
        }
    }
}

/// The VP8X flags that announce EXIF (0x08) and XMP (0x04) chunks.
const VP8X_METADATA_FLAGS: u8 = 0x08 | 0x04;

/// Strips a WebP: copies every RIFF chunk but EXIF and XMP, clears their VP8X flags, rewrites
/// the RIFF size.
fn strip_webp(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    if slice(bytes, 0, 4)? != b"RIFF" || slice(bytes, 8, 4)? != b"WEBP" {
        return Err(invalid("not a WebP"));
    }
    let riff_end = read32(bytes, 4, false)?
        .checked_add(8)
        .ok_or_else(|| invalid("RIFF size too large"))?;
    // The RIFF must hold at least its own header (a smaller size field is a damaged file).
    if riff_end < 12 {
        return Err(invalid("RIFF size smaller than its header"));
    }
    let riff = slice(bytes, 0, riff_end)?;
    let mut out = riff[..12].to_vec();
    let mut pos = 12;
    while pos < riff.len() {
        let size = read32(riff, pos + 4, false)?;
        slice(riff, pos + 8, size)?;
        // Chunks are padded to an even size; tolerate a missing pad byte at the very end.
        let total = (8 + size + (size & 1)).min(riff.len() - pos);
        let chunk = &riff[pos..pos + total];
        match &chunk[..4] {
            b"EXIF" | b"XMP " => {}
            b"VP8X" if size >= 1 => {
                out.extend_from_slice(chunk);
                let flags = out.len() - total + 8;
                out[flags] &= !VP8X_METADATA_FLAGS;
            }
            _ => out.extend_from_slice(chunk),
        }
        pos += total;
    }
    let riff_size = u32::try_from(out.len() - 8).map_err(|_| invalid("RIFF too large"))?;
    out[4..8].copy_from_slice(&riff_size.to_le_bytes());
    Ok(out)
}

/// Length of the GIF header and logical screen descriptor.
const GIF_HEADER_LEN: usize = 13;

/// Size in bytes of the colour table announced by a packed-fields byte, if any.
fn gif_color_table(packed: u8) -> usize {
    if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    }
}

/// End of the data sub-blocks starting at `pos` (just past the zero-length terminator).
fn gif_sub_blocks_end(bytes: &[u8], mut pos: usize) -> Result<usize, ImageError> {
    loop {
        let len = usize::from(
            *bytes
                .get(pos)
                .ok_or_else(|| invalid("truncated GIF block"))?,
        );
        pos += 1;
        if len == 0 {
            return Ok(pos);
        }
        slice(bytes, pos, len)?;
        pos += len;
    }
}

/// Whether a GIF extension starting at `pos` (its 0x21 introducer) is metadata to drop: a
/// comment, or an XMP application extension.
fn is_gif_metadata(bytes: &[u8], pos: usize) -> bool {
    match bytes.get(pos + 1) {
        Some(0xfe) => true,
        Some(0xff) => bytes.get(pos + 2..pos + 14) == Some(b"\x0bXMP DataXMP".as_slice()),
        _ => false,
    }
}

/// Strips a GIF: copies every block but comment and XMP extensions, up to the trailer.
fn strip_gif(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    let header = slice(bytes, 0, GIF_HEADER_LEN)?;
    if !header.starts_with(b"GIF87a") && !header.starts_with(b"GIF89a") {
        return Err(invalid("not a GIF"));
    }
    let mut pos = GIF_HEADER_LEN + gif_color_table(header[10]);
    let mut out = slice(bytes, 0, pos)?.to_vec();
    loop {
        let start = pos;
        match bytes.get(pos) {
            Some(0x3b) => {
                out.push(0x3b);
                return Ok(out);
            }
            Some(0x21) => {
                slice(bytes, pos, 2)?;
                pos = gif_sub_blocks_end(bytes, pos + 2)?;
                if !is_gif_metadata(bytes, start) {
                    out.extend_from_slice(&bytes[start..pos]);
                }
            }
            Some(0x2c) => {
                let descriptor = slice(bytes, pos, 10)?;
                // Descriptor, local colour table, LZW minimum code size, then the data.
                pos += 10 + gif_color_table(descriptor[9]) + 1;
                pos = gif_sub_blocks_end(bytes, pos)?;
                out.extend_from_slice(&bytes[start..pos]);
            }
            Some(_) => return Err(invalid("unknown GIF block")),
            None => return Err(invalid("GIF ends without a trailer")),
        }
    }
}

#[cfg(test)]
pub(in crate::media) mod tests {
    use super::super::tests::{encode, solid, with_app1};
    use super::*;
    use ::image::ImageFormat;

    /// CRC-32 (IEEE) as PNG chunks use it.
    pub(in crate::media) fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = u32::MAX;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// One PNG chunk: length, type, data, CRC.
    pub(in crate::media) fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = u32::try_from(data.len())
            .expect("len")
            .to_be_bytes()
            .to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
        chunk
    }

    /// Writes `bytes`, strips them as `mime`; returns whether anything was removed and the output.
    fn strip(bytes: &[u8], mime: &str) -> (Result<bool, ImageError>, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (input, output) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::write(&input, bytes).expect("write");
        let result = strip_metadata(&input, mime, &output);
        (result, std::fs::read(output).unwrap_or_default())
    }

    /// Whether `needle` occurs in `haystack`.
    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn jpeg_exif_with_gps_is_stripped() {
        let clean = encode(&solid(64, 48, [9, 9, 9]), ImageFormat::Jpeg);
        let dirty = with_app1(&clean, b"Exif\0\0MM\0*\0\0\0\x08GPSLatitude 48.8584 N");
        let (removed, out) = strip(&dirty, "image/jpeg");
        assert!(removed.expect("stripped"));
        assert!(!contains(&out, b"Exif") && !contains(&out, b"GPS"));
        assert_eq!(out, clean);
        let decoded =
            ::image::load_from_memory_with_format(&out, ImageFormat::Jpeg).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
    }

    #[test]
    fn clean_jpeg_is_copied_byte_exact() {
        let clean = encode(&solid(33, 17, [200, 100, 50]), ImageFormat::Jpeg);
        let (removed, out) = strip(&clean, "image/jpeg");
        assert!(!removed.expect("copied"));
        assert_eq!(out, clean);
    }

    #[test]
    fn png_text_chunk_is_stripped() {
        let clean = encode(&solid(20, 10, [1, 2, 3]), ImageFormat::Png);
        // Signature (8) and IHDR (25): insert the text chunk right after IHDR.
        let mut dirty = clean[..33].to_vec();
        dirty.extend(png_chunk(b"tEXt", b"Comment\0taken at home, 48.8584 N"));
        dirty.extend_from_slice(&clean[33..]);
        let (removed, out) = strip(&dirty, "image/png");
        assert!(removed.expect("stripped"));
        assert_eq!(out, clean);
        let decoded =
            ::image::load_from_memory_with_format(&out, ImageFormat::Png).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (20, 10));
        assert!(!strip(&clean, "image/png").0.expect("copied"));
    }

    #[test]
    fn webp_exif_chunk_and_flag_are_stripped() {
        // A hand-made extended WebP: VP8X announcing EXIF, the encoder's image chunk, EXIF.
        let simple = encode(&solid(8, 8, [5, 6, 7]), ImageFormat::WebP);
        let mut vp8x = vec![0x08, 0, 0, 0];
        vp8x.extend_from_slice(&[7, 0, 0, 7, 0, 0]); // canvas 8x8, stored minus one
        let mut body = b"WEBPVP8X".to_vec();
        body.extend_from_slice(&10u32.to_le_bytes());
        body.extend(vp8x);
        body.extend_from_slice(&simple[12..]);
        body.extend_from_slice(b"EXIF\x0b\0\0\0GPSLatitude\0");
        let mut dirty = b"RIFF".to_vec();
        dirty.extend_from_slice(&u32::try_from(body.len()).expect("len").to_le_bytes());
        dirty.extend(body);
        let (removed, out) = strip(&dirty, "image/webp");
        assert!(removed.expect("stripped"));
        assert!(!contains(&out, b"GPS") && !contains(&out, b"EXIF"));
        assert_eq!(out[20] & 0x0c, 0, "EXIF/XMP flags cleared");
        let decoded =
            ::image::load_from_memory_with_format(&out, ImageFormat::WebP).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (8, 8));
    }

    #[test]
    fn gif_is_copied_and_comments_dropped() {
        let clean = encode(&solid(4, 4, [0, 0, 0]), ImageFormat::Gif);
        assert!(!strip(&clean, "image/gif").0.expect("copied"));
        let mut dirty = clean[..clean.len() - 1].to_vec();
        dirty.extend_from_slice(b"\x21\xfe\x05hello\x00\x3b");
        let (removed, out) = strip(&dirty, "image/gif");
        assert!(removed.expect("stripped"));
        assert_eq!(out, clean);
    }

    #[test]
    fn malformed_input_to_strip_is_invalid() {
        let jpeg = encode(&solid(16, 16, [0, 0, 0]), ImageFormat::Jpeg);
        let png = encode(&solid(16, 16, [0, 0, 0]), ImageFormat::Png);
        let webp = encode(&solid(16, 16, [0, 0, 0]), ImageFormat::WebP);
        let gif = encode(&solid(16, 16, [0, 0, 0]), ImageFormat::Gif);
        let cases: [(&[u8], &str); 8] = [
            (b"", "image/jpeg"),
            (b"\xff\xd8\xff\xe1\xff\xff", "image/jpeg"),
            (&jpeg[..20], "image/jpeg"),
            (&png[..png.len() - 6], "image/png"),
            (b"RIFF\xff\xff\xff\xffWEBP", "image/webp"),
            (&webp[..webp.len() - 3], "image/webp"),
            (&gif[..gif.len() - 1], "image/gif"),
            (&png, "image/tiff"),
        ];
        for (bytes, mime) in cases {
            let (result, _) = strip(bytes, mime);
            assert!(
                matches!(result, Err(ImageError::Invalid(_))),
                "{mime}: {result:?}"
            );
        }
        for format in [&jpeg, &png, &webp, &gif] {
            for cut in 0..format.len() {
                for mime in ["image/jpeg", "image/png", "image/webp", "image/gif"] {
                    // Only the absence of a panic matters: some cuts are still well-formed.
                    let _ = strip_bytes(&format[..cut], mime);
                }
            }
        }
    }
}
