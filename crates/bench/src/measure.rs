//! What a run measures (latency histograms, deliveries over time, loss, duplication, order)
//! and how it reports them: a table on stdout, a JSON file and an SVG chart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::target::{CpuMark, Machine, Target};

/// Latency histogram range: 1 µs to 60 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The text of a bench message: when it was meant to be sent, and its global index.
pub fn payload(epoch: Instant, intended: Instant, index: u64, pad: usize) -> String {
    let us = intended.duration_since(epoch).as_micros();
    format!("{us} {index} {}", "x".repeat(pad))
}

/// Parses [`payload`]: `(intended µs since epoch, index)`.
pub fn parse_payload(text: &str) -> Option<(u64, u64)> {
    let mut it = text.split(' ');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Samples a recorder holds before it adds them to its histogram.
const PENDING: usize = 4096;

/// One receiver's (or sender's) latencies, merged at the end.
///
/// Samples are kept in a small buffer and added to the histogram a buffer at a time: hundreds
/// of receivers each recording into a histogram of their own (270 KiB of counts) cost a cache
/// miss per delivery, and a buffer's samples land in the few lines of counts they fall in.
pub struct Latencies {
    hist: Histogram<u64>,
    pending: Vec<u32>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            hist: histogram(),
            pending: Vec::new(),
        }
    }
}

impl Latencies {
    /// Records a latency measured from the intended send time (so a stalled sender shows up in
    /// the figures instead of hiding: the coordinated-omission correction).
    pub fn record(&mut self, micros: u64) {
        if self.pending.len() == PENDING {
            add(&mut self.hist, &self.pending);
            self.pending.clear();
        }
        self.pending
            .push(u32::try_from(micros).unwrap_or(u32::MAX).max(1));
    }

    /// Adds another recorder's samples.
    pub fn merge(&mut self, other: &Self) {
        _ = self.hist.add(&other.hist);
        add(&mut self.hist, &other.pending);
    }

    /// Every sample, buffered ones included.
    fn all(&self) -> std::borrow::Cow<'_, Histogram<u64>> {
        if self.pending.is_empty() {
            return std::borrow::Cow::Borrowed(&self.hist);
        }
        let mut hist = self.hist.clone();
        add(&mut hist, &self.pending);
        std::borrow::Cow::Owned(hist)
    }

    /// The percentiles as a report section.
    pub fn summary(&self) -> LatencySummary {
        let hist = self.all();
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        LatencySummary {
            samples: hist.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: hist.max() as f64 / 1000.0,
            cdf: [
                0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
            ]
            .iter()
            .map(|q| (*q, ms(*q)))
            .collect(),
        }
    }
}

/// The value of metric `name` (without labels) in a server's `/metrics` text.
pub fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Records `samples` (µs) in `hist` (past its 60 s bound, as 60 s).
fn add(hist: &mut Histogram<u64>, samples: &[u32]) {
    for &us in samples {
        hist.saturating_record(u64::from(us));
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// (quantile, ms) points for the CDF chart.
    pub cdf: Vec<(f64, f64)>,
}

/// Deliveries counted per second of the run, shared by every receiver task.
pub struct Timeline {
    start: Instant,
    buckets: Vec<AtomicU64>,
}

impl Timeline {
    /// A timeline of at most `seconds` buckets starting now.
    pub fn new(start: Instant, seconds: usize) -> Self {
        Self {
            start,
            buckets: (0..seconds.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The bucket `at` falls in.
    pub fn second_of(&self, at: Instant) -> usize {
        (at.saturating_duration_since(self.start).as_secs() as usize).min(self.buckets.len() - 1)
    }

    /// Adds one receiver's per-second counts.
    pub fn add(&self, per_second: &[u64]) {
        for (bucket, n) in self.buckets.iter().zip(per_second) {
            bucket.fetch_add(*n, Relaxed);
        }
    }

    /// Per-second counts, trailing empty seconds dropped.
    pub fn counts(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        while v.len() > 1 && v.last() == Some(&0) {
            v.pop();
        }
        v
    }
}

/// Delivery correctness, summed over receivers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivery {
    /// Deliveries expected.
    pub expected: u64,
    /// Distinct deliveries received.
    pub received: u64,
    /// Expected but never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Received with a seq lower than one already received on the same connection.
    pub out_of_order: u64,
}

/// The server's resource use during the run: summed over the nodes, and node by node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerUse {
    /// CPU seconds used during the measured phase.
    pub cpu_seconds: Option<f64>,
    /// CPU use as a share of one core.
    pub cpu_cores: Option<f64>,
    /// RSS at the end, bytes.
    pub rss_bytes: Option<u64>,
    /// Peak RSS, bytes (the sum of each node's peak).
    pub peak_rss_bytes: Option<u64>,
    /// Each node's share, when there is more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeUse>,
    /// What each node's store did (the message scenarios, without `--ramp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub store: Vec<crate::commits::NodeStore>,
}

/// One node's resource use during the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeUse {
    /// Its address.
    pub addr: String,
    /// CPU seconds used during the measured phase.
    pub cpu_seconds: Option<f64>,
    /// CPU use as a share of one core.
    pub cpu_cores: Option<f64>,
    /// RSS at the end, bytes.
    pub rss_bytes: Option<u64>,
    /// Peak RSS, bytes.
    pub peak_rss_bytes: Option<u64>,
}

impl ServerUse {
    /// Measures from `cpu_before` (taken at the start of the measured phase) over `elapsed`.
    pub fn measure(target: &Target, cpu_before: CpuMark, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64();
        let cpu: Vec<Option<f64>> = target
            .cpu_seconds()
            .0
            .into_iter()
            .zip(cpu_before.0)
            .map(|(a, b)| a.zip(b).map(|(a, b)| a - b))
            .collect();
        let cpu_seconds: Option<f64> = cpu.iter().copied().sum();
        let nodes = if target.addrs.len() > 1 {
            let (rss, peak) = (target.node_rss_bytes(), target.node_peak_rss_bytes());
            (0..target.addrs.len())
                .map(|i| NodeUse {
                    addr: target.addrs[i].clone(),
                    cpu_seconds: cpu[i],
                    cpu_cores: cpu[i].map(|c| c / secs),
                    rss_bytes: rss[i],
                    peak_rss_bytes: peak[i],
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            cpu_seconds,
            cpu_cores: cpu_seconds.map(|c| c / secs),
            rss_bytes: target.rss_bytes(),
            peak_rss_bytes: target.peak_rss_bytes(),
            nodes,
            store: Vec::new(),
        }
    }
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The command line that produced it.
    pub command: String,
    /// Scenario parameters.
    pub params: serde_json::Value,
    /// Machine and revision.
    pub machine: Machine,
    /// The server's flags.
    pub server_args: Vec<String>,
    /// Length of the measured phase in seconds.
    pub duration_secs: f64,
    /// Headline figures (name → value), printed as the summary table.
    pub figures: Vec<(String, f64)>,
    /// Delivery correctness.
    pub delivery: Option<Delivery>,
    /// End-to-end latency (send intent to receipt).
    pub latency: Option<LatencySummary>,
    /// Acknowledgement latency (send intent to ack).
    pub ack_latency: Option<LatencySummary>,
    /// Deliveries per second over the run.
    pub timeline: Vec<u64>,
    /// Server resources.
    pub server: ServerUse,
}

impl Report {
    /// Prints the summary table.
    pub fn print(&self) {
        println!(
            "\n== banter bench {} ({})",
            self.scenario, self.machine.date
        );
        println!("{}", self.command);
        println!(
            "machine: {} cores, {:.1} GiB, {}; revision {}",
            self.machine.cores,
            self.machine.memory_bytes as f64 / (1u64 << 30) as f64,
            self.machine.cpu,
            self.machine.git_revision
        );
        let mut rows: Vec<(String, String)> = self
            .figures
            .iter()
            .map(|(k, v)| (k.clone(), format_value(*v)))
            .collect();
        if let Some(d) = &self.delivery {
            rows.push((
                "lost / duplicated / out of order".into(),
                format!("{} / {} / {}", d.lost, d.duplicated, d.out_of_order),
            ));
        }
        for (name, l) in [
            ("latency", &self.latency),
            ("ack latency", &self.ack_latency),
        ] {
            if let Some(l) = l {
                rows.push((
                    format!("{name} p50/p90/p99/p99.9/max ms"),
                    format!(
                        "{:.2} / {:.2} / {:.2} / {:.2} / {:.2}",
                        l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                    ),
                ));
            }
        }
        let n = self.server.nodes.len();
        let sum = if n > 1 {
            format!(", {n} nodes summed")
        } else {
            String::new()
        };
        if let Some(c) = self.server.cpu_cores {
            rows.push((format!("server CPU (cores){sum}"), format!("{c:.2}")));
        }
        if let Some(r) = self.server.peak_rss_bytes {
            rows.push((
                format!("server peak RSS (MiB){sum}"),
                format!("{:.1}", r as f64 / 1048576.0),
            ));
        }
        if n > 1 {
            rows.push((
                format!("per node ({n}): CPU cores / peak RSS MiB"),
                self.server
                    .nodes
                    .iter()
                    .map(|u| {
                        format!(
                            "{:.2} / {:.1}",
                            u.cpu_cores.unwrap_or(f64::NAN),
                            u.peak_rss_bytes.unwrap_or(0) as f64 / 1048576.0
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        if !self.server.store.is_empty() {
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
            rows.push((
                "store per node: commits / appends each / ms; forwards / ms".to_owned(),
                self.server
                    .store
                    .iter()
                    .map(|s| {
                        format!(
                            "{} / {} / {}; {} / {}",
                            s.commits,
                            ms(s.appends_per_commit),
                            ms(s.commit_ms_mean),
                            s.forwards,
                            ms(s.forward_ms_mean)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" | "),
            ));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            println!("  {k:<width$}  {v}");
        }
    }

    /// Writes `<out>/<scenario>-<revision>-<time>.json` and `.svg`; returns the JSON path.
    pub fn save(&self, out: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(out)?;
        let stamp = self.machine.date.replace([':', '-'], "");
        let base = out.join(format!(
            "{}-{}-{stamp}",
            self.scenario, self.machine.git_revision
        ));
        let json = base.with_extension("json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        crate::chart::draw(self, &base.with_extension("svg"))?;
        println!("  results: {} (+ .svg)", json.display());
        Ok(json)
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_samples_count_as_if_recorded_one_by_one() {
        let (mut a, mut b, mut direct) = (Latencies::default(), Latencies::default(), histogram());
        // Past two buffers in `a`, part of one in `b`, and values the histogram saturates.
        for i in 0..(2 * PENDING as u64 + 77) {
            let us = (i * 7919) % 90_000_000;
            let rec = if i % 3 == 0 { &mut b } else { &mut a };
            rec.record(us);
            direct.saturating_record(us.max(1));
        }
        a.merge(&b);
        let (got, want) = (
            a.summary(),
            Latencies {
                hist: direct,
                pending: Vec::new(),
            }
            .summary(),
        );
        assert_eq!(got.samples, 2 * PENDING as u64 + 77);
        assert_eq!(got.samples, want.samples);
        assert_eq!(got.cdf, want.cdf);
        assert_eq!(got.max_ms, want.max_ms);
    }
}
