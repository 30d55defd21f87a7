//! `media`: upload throughput and image processing. Uploads `--uploads` distinct files of
//! `--megabytes` MiB each to a fresh server over loopback (one at a time: the time from the
//! request's first byte to its answer, so hashing, writing and the fsync are in it), then
//! `--images` distinct JPEGs of `--megapixels` MP (each answer waits for its thumbnail, its
//! metadata stripping and its storage), and times the thumbnail step alone in this process
//! (`banter_server::media::image::process`, the function the server calls) on the same JPEG.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use banter_client::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::measure::{Report, ServerUse};
use crate::population;
use crate::target::{Machine, OutputArgs, Target, TargetArgs};

/// Bytes written per call.
const CHUNK: usize = 1 << 20;

/// `banter bench media`.
#[derive(Debug, Clone, clap::Args)]
pub struct MediaArgs {
    /// Size of each file, in MiB.
    #[arg(long, default_value_t = 200)]
    pub megabytes: usize,
    /// Files uploaded, one after another.
    #[arg(long, default_value_t = 3)]
    pub uploads: usize,
    /// JPEGs uploaded (each distinct), one after another.
    #[arg(long, default_value_t = 5)]
    pub images: usize,
    /// Size of each JPEG, in megapixels (4:3).
    #[arg(long, default_value_t = 12)]
    pub megapixels: u32,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Sends one upload of `len` bytes produced by `fill(offset, buf)`; the time to the answer.
async fn upload(
    addr: &str,
    token: &str,
    len: usize,
    mut fill: impl FnMut(usize, &mut [u8]),
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0;
    while sent < len {
        let n = CHUNK.min(len - sent);
        fill(sent, &mut buf[..n]);
        stream.write_all(&buf[..n]).await?;
        sent += n;
    }
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&reply);
    if !text.starts_with("HTTP/1.1 201") {
        bail!("upload refused: {}", text.lines().next().unwrap_or(""));
    }
    Ok(elapsed)
}

/// A `w` × `h` JPEG of a noisy gradient (photos do not compress to nothing either).
fn photo(w: u32, h: u32) -> anyhow::Result<Vec<u8>> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed & 0x1f) as u32;
        image::Rgb([
            ((x * 255 / w + noise) % 256) as u8,
            ((y * 255 / h + noise) % 256) as u8,
            (((x + y) % 256 + noise) % 256) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Jpeg)?;
    Ok(out.into_inner())
}

/// `jpeg` with a comment segment naming `n` after its start: distinct bytes, same image.
fn variant(jpeg: &[u8], n: usize) -> Vec<u8> {
    let comment = format!("bench image {n}");
    let len = u16::try_from(comment.len() + 2).unwrap_or(u16::MAX);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xfe]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Runs the scenario.
pub async fn run(command: String, args: MediaArgs) -> anyhow::Result<Report> {
    let machine = Machine::read();
    let bytes = args.megabytes * CHUNK;
    let quota = (bytes as u64 + 64 * CHUNK as u64) * (args.uploads as u64 + 1);
    let flags = vec![
        "--listen=127.0.0.1:0".to_owned(),
        format!("--media-max-file-bytes={}", bytes + CHUNK),
        format!("--media-quota-bytes={quota}"),
    ];
    let target = Target::start_with(&args.target, flags).await?;
    let api = Api::new(target.addr.clone());
    let prefix = population::prefix("media");
    let user = population::users(&api, &prefix, 1)
        .await?
        .pop()
        .context("no user")?;
    let cpu_before = target.cpu_seconds();
    let started = Instant::now();
    let mut rates = Vec::new();
    for u in 0..args.uploads {
        // A PDF by its first bytes; each file distinct by its run number.
        let took = upload(&target.addr, &user.token, bytes, |offset, buf| {
            buf.fill(0);
            if offset == 0 {
                buf[..9].copy_from_slice(b"%PDF-1.4\n");
                buf[9..17].copy_from_slice(&(u as u64).to_le_bytes());
            }
        })
        .await?;
        rates.push(args.megabytes as f64 / took.as_secs_f64());
    }
    let w = ((f64::from(args.megapixels) * 1e6 * 4.0 / 3.0).sqrt()) as u32;
    let h = w * 3 / 4;
    let jpeg = photo(w, h)?;
    let mut image_ms = Vec::new();
    for n in 0..args.images {
        let file = variant(&jpeg, n);
        let took = upload(&target.addr, &user.token, file.len(), |offset, buf| {
            buf.copy_from_slice(&file[offset..offset + buf.len()]);
        })
        .await?;
        image_ms.push(took.as_secs_f64() * 1000.0);
    }
    let elapsed = started.elapsed();
    let server = ServerUse::measure(&target, cpu_before, elapsed);
    // The thumbnail step alone, in this process, on the same JPEG.
    let dir = tempfile::tempdir()?;
    let (src, out) = (dir.path().join("photo.jpg"), dir.path().join("thumb"));
    std::fs::write(&src, &jpeg)?;
    let mut thumb_ms = Vec::new();
    for _ in 0..args.images.max(1) {
        let t = Instant::now();
        banter_server::media::image::process(
            &src,
            "image/jpeg",
            &banter_server::media::image::ImageLimits::default(),
            &out,
        )?;
        thumb_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let figures = vec![
        ("file size (MiB)".to_owned(), args.megabytes as f64),
        ("uploads".into(), args.uploads as f64),
        ("upload MiB/s, median".into(), median(rates.clone())),
        (
            "upload MiB/s, min".into(),
            rates.iter().copied().fold(f64::INFINITY, f64::min),
        ),
        ("JPEG width".into(), f64::from(w)),
        ("JPEG height".into(), f64::from(h)),
        ("JPEG size (MiB)".into(), jpeg.len() as f64 / CHUNK as f64),
        (
            "JPEG upload to answer (ms), median".into(),
            median(image_ms),
        ),
        ("thumbnail alone (ms), median".into(), median(thumb_ms)),
    ];
    let report = Report {
        scenario: "media".into(),
        command,
        params: serde_json::json!({
            "megabytes": args.megabytes, "uploads": args.uploads, "images": args.images,
            "megapixels": args.megapixels,
        }),
        machine,
        server_args: target.args.clone(),
        duration_secs: elapsed.as_secs_f64(),
        figures,
        delivery: None,
        latency: None,
        ack_latency: None,
        timeline: Vec::new(),
        server,
    };
    report.print();
    report.save(&args.output.out)?;
    Ok(report)
}
