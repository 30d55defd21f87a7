//! Safe processing of uploaded images: bounded decoding, thumbnails and metadata stripping.
//!
//! Owns everything that touches an uploaded image's bytes. It must never trust a declared size:
//! the canvas is checked against [`ImageLimits`] from the header alone, before a single pixel is
//! decoded, and the decoder runs with `image::Limits` as a second fence. Everything here is
//! CPU-heavy and blocking, so async callers run it in `spawn_blocking`; nothing here may panic on
//! any input.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;
use ::image::metadata::Orientation;
use ::image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbaImage};

// The container parsing is its own file; it is part of this module's API.
#[path = "strip.rs"]
mod strip;
pub use strip::strip_metadata;

/// JPEG quality of thumbnails of opaque images: small files, artefacts hard to see at 320 px.
const THUMBNAIL_JPEG_QUALITY: u8 = 80;

/// MIME type of a thumbnail of an opaque image.
const JPEG: &str = "image/jpeg";
/// MIME type of a thumbnail of an image with transparent pixels.
const PNG: &str = "image/png";

/// Bounds for decoding.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Largest canvas accepted, in pixels (width × height).
    pub max_pixels: u64,
    /// Longest side accepted, in pixels.
    pub max_side: u32,
    /// Most memory the decoder may allocate, in bytes.
    pub max_alloc_bytes: u64,
    /// Longest side of a thumbnail, in pixels.
    pub thumbnail_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_side: 16_384,
            max_alloc_bytes: 512 * 1024 * 1024,
            thumbnail_side: 320,
        }
    }
}

/// What an accepted image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Width of the image as stored (before any EXIF orientation), in pixels.
    pub width: u32,
    /// Height of the image as stored (before any EXIF orientation), in pixels.
    pub height: u32,
    /// Average colour of the thumbnail as `#rrggbb` (transparent pixels weigh nothing), for a
    /// placeholder shown while the image loads.
    pub color: String,
    /// MIME type of the thumbnail written: `image/jpeg` for opaque images, `image/png` when
    /// some pixel is not fully opaque.
    pub thumbnail_mime: &'static str,
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The declared canvas is over [`ImageLimits`] (or the decoder's memory bound).
    #[error("image too large: {width}x{height}")]
    TooLarge {
        /// Declared width, in pixels.
        width: u32,
        /// Declared height, in pixels.
        height: u32,
    },
    /// The file is not a well-formed image of the announced type, or the type is unsupported.
    #[error("invalid image: {0}")]
    Invalid(String),
    /// Reading the input or writing the output failed.
    #[error("image i/o: {0}")]
    Io(#[from] io::Error),
}

/// The formats accepted (by sniffed MIME type): "image/jpeg", "image/png", "image/gif",
/// "image/webp".
pub fn is_supported(mime: &str) -> bool {
    format_of(mime).is_some()
}

/// Maps a supported MIME type to its decoder format; `None` for anything else.
fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Validates `path` as an image of type `mime`, writes its thumbnail to `thumbnail_out` and
/// describes it.
///
/// The format comes from `mime` (sniffed by the caller), never from the file name. Only the
/// header is read before the canvas is checked against `limits`, so a decompression bomb (a tiny
/// file declaring a huge canvas) is refused with [`ImageError::TooLarge`] without allocating.
/// The thumbnail keeps the aspect ratio, is never upscaled, and has the EXIF orientation
/// applied: [`strip_metadata`] removes the EXIF block, so the stripped original loses its
/// orientation tag and may show rotated; that is accepted, the thumbnail is upright. Animated
/// images are represented by their first frame.
///
/// Blocking and CPU-heavy: run it in `spawn_blocking`.
pub fn process(
    path: &Path,
    mime: &str,
    limits: &ImageLimits,
    thumbnail_out: &Path,
) -> Result<ImageInfo, ImageError> {
    let format =
        format_of(mime).ok_or_else(|| ImageError::Invalid(format!("unsupported type {mime:?}")))?;
    let (image, (width, height)) = decode(path, format, limits)?;
    let thumbnail = make_thumbnail(&image, limits.thumbnail_side).to_rgba8();
    let thumbnail_mime = write_thumbnail(&thumbnail, thumbnail_out)?;
    Ok(ImageInfo {
        width,
        height,
        color: average_color(&thumbnail),
        thumbnail_mime,
    })
}

/// Decodes the image upright, after checking its header against `limits`; also returns the
/// stored dimensions.
fn decode(
    path: &Path,
    format: ImageFormat,
    limits: &ImageLimits,
) -> Result<(DynamicImage, (u32, u32)), ImageError> {
    let mut reader = ImageReader::with_format(BufReader::new(File::open(path)?), format);
    // Only the memory bound while the header is read, so that a canvas over our limits is
    // reported as TooLarge with its size rather than as a decoder error.
    reader.limits(decoder_limits(limits, None));
    let mut decoder = reader.into_decoder().map_err(|e| from_decoding(e, None))?;
    let (width, height) = decoder.dimensions();
    check_canvas(width, height, limits)?;
    let size = Some((width, height));
    decoder
        .set_limits(decoder_limits(limits, Some(limits.max_side)))
        .map_err(|e| from_decoding(e, size))?;
    // An unreadable orientation is not worth refusing the image for.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| from_decoding(e, size))?;
    image.apply_orientation(orientation);
    Ok((image, (width, height)))
}

/// The decoder's own bounds: `limits`' memory bound, and a side bound when given.
fn decoder_limits(limits: &ImageLimits, max_side: Option<u32>) -> Limits {
    let mut bounds = Limits::default();
    bounds.max_alloc = Some(limits.max_alloc_bytes);
    bounds.max_image_width = max_side;
    bounds.max_image_height = max_side;
    bounds
}

/// Refuses a canvas with a side over `max_side` or more than `max_pixels` pixels.
fn check_canvas(width: u32, height: u32, limits: &ImageLimits) -> Result<(), ImageError> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_side || height > limits.max_side || pixels > limits.max_pixels {
        return Err(ImageError::TooLarge { width, height });
    }
    if pixels == 0 {
        return Err(ImageError::Invalid("empty canvas".into()));
    }
    Ok(())
}

/// Converts a decoder error: a limit hit is [`ImageError::TooLarge`] when the size is known, a
/// truncated file is [`ImageError::Invalid`], other I/O errors stay I/O errors.
fn from_decoding(error: ::image::ImageError, size: Option<(u32, u32)>) -> ImageError {
    match (error, size) {
        (::image::ImageError::Limits(_), Some((width, height))) => {
            ImageError::TooLarge { width, height }
        }
        (::image::ImageError::IoError(e), _) if e.kind() != io::ErrorKind::UnexpectedEof => {
            ImageError::Io(e)
        }
        (e, _) => ImageError::Invalid(e.to_string()),
    }
}

/// Dimensions fitting `width`×`height` in a `side`×`side` box, aspect kept, never upscaled,
/// never zero.
fn thumbnail_size(width: u32, height: u32, side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= side {
        return (width, height);
    }
    let scale = |n: u32| {
        let scaled = (u64::from(n) * u64::from(side) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(side).max(1)
    };
    (scale(width), scale(height))
}

/// Scales `image` down to fit the thumbnail box (a copy when it already fits).
fn make_thumbnail(image: &DynamicImage, side: u32) -> DynamicImage {
    let (width, height) = thumbnail_size(image.width(), image.height(), side.max(1));
    if (width, height) == (image.width(), image.height()) {
        return image.clone();
    }
    image.thumbnail_exact(width, height)
}

/// Whether some pixel is not fully opaque.
fn has_transparency(image: &RgbaImage) -> bool {
    image.pixels().any(|p| p.0[3] < u8::MAX)
}

/// Writes the thumbnail as PNG when it has transparency, else as JPEG; returns the MIME type.
fn write_thumbnail(thumbnail: &RgbaImage, out: &Path) -> Result<&'static str, ImageError> {
    let mut writer = BufWriter::new(File::create(out)?);
    let mime = if has_transparency(thumbnail) {
        let encoder = PngEncoder::new(&mut writer);
        DynamicImage::ImageRgba8(thumbnail.clone())
            .write_with_encoder(encoder)
            .map_err(from_encoding)?;
        PNG
    } else {
        let encoder = JpegEncoder::new_with_quality(&mut writer, THUMBNAIL_JPEG_QUALITY);
        DynamicImage::ImageRgba8(thumbnail.clone())
            .to_rgb8()
            .write_with_encoder(encoder)
            .map_err(from_encoding)?;
        JPEG
    };
    writer.flush()?;
    Ok(mime)
}

/// Converts an encoder error: I/O stays I/O, anything else means the image was unusable.
fn from_encoding(error: ::image::ImageError) -> ImageError {
    match error {
        ::image::ImageError::IoError(e) => ImageError::Io(e),
        e => ImageError::Invalid(e.to_string()),
    }
}

/// Average colour as `#rrggbb`, each pixel weighted by its alpha; black when fully transparent.
fn average_color(image: &RgbaImage) -> String {
    let mut sums = [0u64; 3];
    let mut weight = 0u64;
    for pixel in image.pixels() {
        let [r, g, b, a] = pixel.0;
        let a = u64::from(a);
        for (sum, channel) in sums.iter_mut().zip([r, g, b]) {
            *sum += u64::from(channel) * a;
        }
        weight += a;
    }
    let channel = |sum: u64| {
        // Rounded to nearest; no weight (all transparent) is black.
        let mean = (sum + weight / 2).checked_div(weight).unwrap_or(0);
        u8::try_from(mean).unwrap_or(u8::MAX)
    };
    let [r, g, b] = sums.map(channel);
    format!("#{r:02x}{g:02x}{b:02x}")
}

#[cfg(test)]
pub(in crate::media) mod tests {
    use super::strip::tests::png_chunk;
    use super::*;
    use ::image::{ImageBuffer, Rgb, Rgba};
    use std::io::Cursor;

    /// Encodes `image` in `format` into memory.
    pub(in crate::media) fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).expect("encode");
        bytes.into_inner()
    }

    /// A solid-colour RGB image.
    pub(in crate::media) fn solid(width: u32, height: u32, color: [u8; 3]) -> DynamicImage {
        DynamicImage::ImageRgb8(ImageBuffer::from_pixel(width, height, Rgb(color)))
    }

    /// Writes `bytes` to a file in a fresh temp dir, runs `process` with default limits.
    fn run(bytes: &[u8], mime: &str) -> (Result<ImageInfo, ImageError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("upload");
        std::fs::write(&input, bytes).expect("write");
        let thumb = dir.path().join("thumb");
        (process(&input, mime, &ImageLimits::default(), &thumb), dir)
    }

    /// Decodes the thumbnail written by `run`, checking that it is of type `mime`.
    fn thumbnail(dir: &tempfile::TempDir, mime: &str) -> DynamicImage {
        let bytes = std::fs::read(dir.path().join("thumb")).expect("thumbnail written");
        let format = ::image::guess_format(&bytes).expect("known format");
        assert_eq!(format.to_mime_type(), mime);
        ::image::load_from_memory_with_format(&bytes, format).expect("thumbnail decodes")
    }

    /// Parses `#rrggbb`.
    fn rgb(color: &str) -> [i32; 3] {
        let channel = |i: usize| i32::from_str_radix(&color[i..i + 2], 16).expect("hex");
        [channel(1), channel(3), channel(5)]
    }

    #[test]
    fn jpeg_gets_a_scaled_jpeg_thumbnail_and_its_colour() {
        let bytes = encode(&solid(640, 480, [255, 0, 0]), ImageFormat::Jpeg);
        let (info, dir) = run(&bytes, "image/jpeg");
        let info = info.expect("accepted");
        assert_eq!((info.width, info.height), (640, 480));
        assert_eq!(info.thumbnail_mime, "image/jpeg");
        let thumb = thumbnail(&dir, "image/jpeg");
        assert_eq!((thumb.width(), thumb.height()), (320, 240));
        let [r, g, b] = rgb(&info.color);
        assert!(r > 230 && g < 30 && b < 30, "colour {}", info.color);
    }

    /// `jpeg` with an APP1 segment holding `payload` inserted right after SOI.
    pub(in crate::media) fn with_app1(jpeg: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xff, 0xe1]);
        out.extend_from_slice(&u16::try_from(payload.len() + 2).expect("len").to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied_to_the_thumbnail() {
        // A big-endian TIFF block with one IFD entry: Orientation (0x0112), SHORT, 6 (90° CW).
        let exif = b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0";
        let bytes = with_app1(&encode(&solid(64, 32, [0, 0, 0]), ImageFormat::Jpeg), exif);
        let (info, dir) = run(&bytes, "image/jpeg");
        // The info describes the file as stored; the thumbnail is upright.
        let info = info.expect("accepted");
        assert_eq!((info.width, info.height), (64, 32));
        let thumb = thumbnail(&dir, "image/jpeg");
        assert_eq!((thumb.width(), thumb.height()), (32, 64));
    }

    #[test]
    fn png_with_alpha_gets_a_png_thumbnail() {
        let image = ImageBuffer::from_pixel(100, 50, Rgba([0u8, 0, 255, 128]));
        let bytes = encode(&DynamicImage::ImageRgba8(image), ImageFormat::Png);
        let (info, dir) = run(&bytes, "image/png");
        let info = info.expect("accepted");
        assert_eq!(info.thumbnail_mime, "image/png");
        assert_eq!(info.color, "#0000ff");
        let thumb = thumbnail(&dir, "image/png");
        assert!(thumb.has_alpha());
        assert_eq!((thumb.width(), thumb.height()), (100, 50));
    }

    #[test]
    fn small_image_is_not_upscaled() {
        let bytes = encode(&solid(40, 30, [0, 128, 0]), ImageFormat::Png);
        let (info, dir) = run(&bytes, "image/png");
        assert_eq!(info.expect("accepted").thumbnail_mime, "image/jpeg");
        let thumb = thumbnail(&dir, "image/jpeg");
        assert_eq!((thumb.width(), thumb.height()), (40, 30));
    }

    #[test]
    fn tall_image_keeps_aspect_and_gif_and_webp_are_accepted() {
        for format in [ImageFormat::Gif, ImageFormat::WebP] {
            let bytes = encode(&solid(100, 1000, [10, 20, 30]), format);
            let (info, dir) = run(&bytes, format.to_mime_type());
            assert_eq!(info.expect("accepted").width, 100);
            let thumb = thumbnail(&dir, "image/jpeg");
            assert_eq!((thumb.width(), thumb.height()), (32, 320));
        }
    }

    #[test]
    fn thumbnail_size_never_reaches_zero() {
        assert_eq!(thumbnail_size(10_000, 1, 320), (320, 1));
        assert_eq!(thumbnail_size(320, 320, 320), (320, 320));
    }

    #[test]
    fn decompression_bomb_is_refused_from_its_header() {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no interlace
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend(png_chunk(b"IHDR", &ihdr));
        // A zlib stream of one empty stored block: tiny, and nowhere near 30 GB of pixels.
        bytes.extend(png_chunk(
            b"IDAT",
            &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff],
        ));
        bytes.extend(png_chunk(b"IEND", &[]));
        let (result, _dir) = run(&bytes, "image/png");
        assert!(
            matches!(
                result,
                Err(ImageError::TooLarge {
                    width: 100_000,
                    height: 100_000
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn side_over_the_limit_is_refused() {
        let bytes = encode(&solid(300, 2, [0, 0, 0]), ImageFormat::Png);
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("upload");
        std::fs::write(&input, bytes).expect("write");
        let limits = ImageLimits {
            max_side: 299,
            ..ImageLimits::default()
        };
        let result = process(&input, "image/png", &limits, &dir.path().join("thumb"));
        assert!(matches!(
            result,
            Err(ImageError::TooLarge {
                width: 300,
                height: 2
            })
        ));
    }

    #[test]
    fn garbage_and_truncated_files_are_invalid() {
        let mut inputs: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "image/png"),
            (b"not an image at all".to_vec(), "image/jpeg"),
            (vec![0xff; 4096], "image/gif"),
            (b"RIFF\xff\xff\xff\xffWEBPVP8 ".to_vec(), "image/webp"),
        ];
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::WebP,
        ] {
            let bytes = encode(&solid(64, 64, [1, 2, 3]), format);
            for cut in [1, 8, 20, 40, bytes.len() / 2]
                .into_iter()
                .filter(|&c| c < bytes.len())
            {
                inputs.push((bytes[..cut].to_vec(), format.to_mime_type()));
            }
        }
        for (bytes, mime) in inputs {
            let (result, _dir) = run(&bytes, mime);
            // A decoder may fill a truncated tail with grey, so some halves are accepted; what
            // matters is that none panics and no refusal is reported as an I/O failure.
            assert!(
                !matches!(result, Err(ImageError::Io(_))),
                "{mime} {}: {result:?}",
                bytes.len()
            );
            if bytes.len() < 41 {
                assert!(
                    matches!(result, Err(ImageError::Invalid(_))),
                    "{mime}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn unsupported_type_is_invalid() {
        assert!(!is_supported("image/tiff"));
        assert!(is_supported("image/webp"));
        let bytes = encode(&solid(8, 8, [0, 0, 0]), ImageFormat::Png);
        let (result, _dir) = run(&bytes, "image/tiff");
        assert!(matches!(result, Err(ImageError::Invalid(_))));
    }
}
