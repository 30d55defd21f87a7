//! Prometheus metrics of one server instance, rendered as text at `/metrics`.
//!
//! Plain atomics rather than the `metrics` facade: the facade installs a process-global recorder,
//! and our tests run several servers in one process that must not share counters (see
//! ARCHITECTURE.md). Every update is a relaxed atomic add: no lock on any hot path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use banter_protocol::ErrorCode;

/// Upper bounds (µs) of the commit latency histogram buckets.
const LATENCY_BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];
/// Upper bounds of the commit batch size histogram buckets.
const BATCH_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

/// A fixed-bucket Prometheus histogram.
struct Histogram<const N: usize> {
    bounds: [u64; N],
    /// Cumulative is computed at render; each slot counts its own bucket, the last one +Inf.
    counts: [AtomicU64; N],
    inf: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [u64; N]) -> Self {
        Self {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            inf: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: u64) {
        match self.bounds.iter().position(|b| value <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.inf.fetch_add(1, Relaxed),
        };
        self.sum.fetch_add(value, Relaxed);
    }

    /// Observes a duration in µs.
    fn observe_us(&self, took: Duration) {
        self.observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    fn render(&self, out: &mut String, name: &str, help: &str, scale: f64) {
        _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            total += count.load(Relaxed);
            _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {total}",
                *bound as f64 / scale
            );
        }
        total += self.inf.load(Relaxed);
        _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        _ = writeln!(out, "{name}_sum {}", self.sum.load(Relaxed) as f64 / scale);
        _ = writeln!(out, "{name}_count {total}");
    }
}

/// All counters of one server.
pub struct Metrics {
    connections: AtomicI64,
    connections_total: AtomicU64,
    rooms: AtomicI64,
    outbound_bytes: AtomicI64,
    messages_in: AtomicU64,
    deliveries: AtomicU64,
    queue_overflows: AtomicU64,
    tcp_connections: AtomicI64,
    refused_per_ip: AtomicU64,
    refused_full: AtomicU64,
    timed_out: AtomicU64,
    accept_errors: AtomicU64,
    commit_latency: Histogram<12>,
    commit_batch: Histogram<12>,
    writers: WriterMetrics,
    errors: [AtomicU64; ErrorCode::ALL.len()],
    auth: AuthMetrics,
}

/// Group appends handed between nodes (`services::messaging::writers`).
struct WriterMetrics {
    forward_latency: Histogram<12>,
    forwarded: AtomicU64,
    forward_failures: AtomicU64,
    written_for_peers: AtomicU64,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        Self {
            forward_latency: Histogram::new(LATENCY_BUCKETS_US),
            forwarded: AtomicU64::new(0),
            forward_failures: AtomicU64::new(0),
            written_for_peers: AtomicU64::new(0),
        }
    }
}

/// Password hashing, login throttling and the token cache.
#[derive(Default)]
struct AuthMetrics {
    hash_queue: AtomicI64,
    hashing: AtomicI64,
    hashing_max: AtomicI64,
    hashes: AtomicU64,
    hash_refusals: AtomicU64,
    logins_throttled: AtomicU64,
    registrations_throttled: AtomicU64,
    token_cache_hits: AtomicU64,
    token_cache_misses: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            rooms: AtomicI64::new(0),
            outbound_bytes: AtomicI64::new(0),
            messages_in: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            queue_overflows: AtomicU64::new(0),
            tcp_connections: AtomicI64::new(0),
            refused_per_ip: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            commit_latency: Histogram::new(LATENCY_BUCKETS_US),
            commit_batch: Histogram::new(BATCH_BUCKETS),
            writers: WriterMetrics::default(),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            auth: AuthMetrics::default(),
        }
    }
}

impl Metrics {
    /// A WebSocket connection opened.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    /// A WebSocket connection closed.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    /// A chatroom was created (`1`) or freed (`-1`).
    pub fn rooms_changed(&self, by: i64) {
        self.rooms.fetch_add(by, Relaxed);
    }

    /// Chatrooms open now.
    pub fn open_rooms(&self) -> i64 {
        self.rooms.load(Relaxed)
    }

    /// The bytes encoded for connections but not written to their sockets yet changed by `by`.
    pub fn outbound_bytes_changed(&self, by: i64) {
        self.outbound_bytes.fetch_add(by, Relaxed);
    }

    /// A message was accepted from a client (new, not a duplicate).
    pub fn message_in(&self) {
        self.messages_in.fetch_add(1, Relaxed);
    }

    /// `n` frames were queued to recipient connections.
    pub fn delivered(&self, n: u64) {
        self.deliveries.fetch_add(n, Relaxed);
    }

    /// A connection's outbound queue overflowed.
    pub fn queue_overflow(&self) {
        self.queue_overflows.fetch_add(1, Relaxed);
    }

    /// A TCP connection was admitted (`+1`) or closed (`-1`).
    pub fn tcp_connection(&self, delta: i64) {
        self.tcp_connections.fetch_add(delta, Relaxed);
    }

    /// A connection was refused at accept because its address holds too many.
    pub fn refused_per_ip(&self) {
        self.refused_per_ip.fetch_add(1, Relaxed);
    }

    /// A connection was refused at accept because the server holds `max_connections`.
    pub fn refused_full(&self) {
        self.refused_full.fetch_add(1, Relaxed);
    }

    /// An HTTP connection was closed at its header, request or idle deadline.
    pub fn timed_out(&self) {
        self.timed_out.fetch_add(1, Relaxed);
    }

    /// `accept` failed (for example out of file descriptors).
    pub fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Relaxed);
    }

    /// A store transaction of `ops` writes committed in `took`.
    pub fn record_commit(&self, ops: usize, took: Duration) {
        self.commit_batch.observe(ops as u64);
        self.commit_latency.observe_us(took);
    }

    /// A group append was made by the group's writer on another node, which answered after
    /// `took`.
    pub fn append_forwarded(&self, took: Duration) {
        self.writers.forwarded.fetch_add(1, Relaxed);
        self.writers.forward_latency.observe_us(took);
    }

    /// A group append that should have gone to another node was made here instead (the
    /// writer unreachable, refusing or silent).
    pub fn append_forward_failed(&self) {
        self.writers.forward_failures.fetch_add(1, Relaxed);
    }

    /// Another node handed this one, its group's writer, an append.
    pub fn append_written_for_peer(&self) {
        self.writers.written_for_peers.fetch_add(1, Relaxed);
    }

    /// An error with `code` was returned to a client.
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Relaxed);
        }
    }

    /// A password hash job joined the queue.
    pub fn hash_queued(&self) {
        self.auth.hash_queue.fetch_add(1, Relaxed);
    }

    /// A password hash job left the queue (taken by a worker, or never admitted).
    pub fn hash_unqueued(&self) {
        self.auth.hash_queue.fetch_sub(1, Relaxed);
    }

    /// A worker began hashing.
    pub fn hash_started(&self) {
        let now = self.auth.hashing.fetch_add(1, Relaxed) + 1;
        self.auth.hashing_max.fetch_max(now, Relaxed);
        self.auth.hashes.fetch_add(1, Relaxed);
    }

    /// A worker finished hashing.
    pub fn hash_finished(&self) {
        self.auth.hashing.fetch_sub(1, Relaxed);
    }

    /// A hash job was refused because the queue was full (`busy`).
    pub fn hash_refused(&self) {
        self.auth.hash_refusals.fetch_add(1, Relaxed);
    }

    /// A login was refused by the throttle, before hashing.
    pub fn login_throttled(&self) {
        self.auth.logins_throttled.fetch_add(1, Relaxed);
    }

    /// A registration was refused by the per-address throttle.
    pub fn registration_throttled(&self) {
        self.auth.registrations_throttled.fetch_add(1, Relaxed);
    }

    /// A token lookup was answered from the cache (`true`) or the store.
    pub fn token_lookup(&self, cached: bool) {
        let counter = if cached {
            &self.auth.token_cache_hits
        } else {
            &self.auth.token_cache_misses
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Current open connections.
    pub fn open_connections(&self) -> i64 {
        self.connections.load(Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let auth = &self.auth;
        let gauges: [(&str, &str, &str, i64); 7] = [
            (
                "banter_connections",
                "gauge",
                "Open WebSocket connections.",
                self.connections.load(Relaxed),
            ),
            (
                "banter_rooms",
                "gauge",
                "Chatrooms in memory (each has an occupant).",
                self.rooms.load(Relaxed),
            ),
            (
                "banter_outbound_buffered_bytes",
                "gauge",
                "Bytes encoded for WebSocket connections and not yet written to their sockets.",
                self.outbound_bytes.load(Relaxed),
            ),
            (
                "banter_tcp_connections",
                "gauge",
                "Open TCP connections admitted (HTTP and WebSocket).",
                self.tcp_connections.load(Relaxed),
            ),
            (
                "banter_password_hash_queue",
                "gauge",
                "Password hash jobs waiting for a worker.",
                auth.hash_queue.load(Relaxed),
            ),
            (
                "banter_password_hashing",
                "gauge",
                "Password hashes running now.",
                auth.hashing.load(Relaxed),
            ),
            (
                "banter_password_hashing_max",
                "gauge",
                "Most password hashes ever running at once (never above the worker count).",
                auth.hashing_max.load(Relaxed),
            ),
        ];
        let counters = [
            (
                "banter_connections_total",
                "WebSocket connections accepted.",
                &self.connections_total,
            ),
            (
                "banter_messages_in_total",
                "Messages accepted from clients.",
                &self.messages_in,
            ),
            (
                "banter_deliveries_total",
                "Frames queued to recipient connections.",
                &self.deliveries,
            ),
            (
                "banter_queue_overflows_total",
                "Connections closed as slow consumers.",
                &self.queue_overflows,
            ),
            (
                "banter_connections_refused_per_ip_total",
                "Connections refused at accept: their address held max_pending_per_ip.",
                &self.refused_per_ip,
            ),
            (
                "banter_connections_refused_full_total",
                "Connections refused at accept: the server held max_connections and its reserve.",
                &self.refused_full,
            ),
            (
                "banter_http_timeouts_total",
                "HTTP connections closed at their header, request or idle deadline.",
                &self.timed_out,
            ),
            (
                "banter_accept_errors_total",
                "Failed accepts (for example out of file descriptors), each followed by a backoff.",
                &self.accept_errors,
            ),
            (
                "banter_password_hashes_total",
                "Password hashes computed.",
                &auth.hashes,
            ),
            (
                "banter_password_hash_refusals_total",
                "Password hash jobs refused with busy (queue full).",
                &auth.hash_refusals,
            ),
            (
                "banter_logins_throttled_total",
                "Logins refused by the per-account or per-address throttle.",
                &auth.logins_throttled,
            ),
            (
                "banter_registrations_throttled_total",
                "Registrations refused by the per-address throttle.",
                &auth.registrations_throttled,
            ),
            (
                "banter_token_cache_hits_total",
                "Token lookups answered from the cache.",
                &auth.token_cache_hits,
            ),
            (
                "banter_token_cache_misses_total",
                "Token lookups that read the store.",
                &auth.token_cache_misses,
            ),
            (
                "banter_appends_forwarded_total",
                "Group appends the group's writer on another node made and answered.",
                &self.writers.forwarded,
            ),
            (
                "banter_append_forward_failures_total",
                "Group appends made here because the writer on another node did not take them.",
                &self.writers.forward_failures,
            ),
            (
                "banter_appends_written_for_peers_total",
                "Group appends other nodes handed to this one, the group's writer.",
                &self.writers.written_for_peers,
            ),
        ];
        for (name, kind, help, value) in gauges {
            _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        for (name, help, value) in counters {
            let v = value.load(Relaxed);
            _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        self.commit_latency.render(
            &mut out,
            "banter_commit_seconds",
            "Store transaction latency.",
            1e6,
        );
        self.commit_batch.render(
            &mut out,
            "banter_commit_batch_size",
            "Writes per store transaction (group commit).",
            1.0,
        );
        self.writers.forward_latency.render(
            &mut out,
            "banter_append_forward_seconds",
            "From handing a group append to its writer on another node to its answer.",
            1e6,
        );
        let name = "banter_errors_total";
        _ = writeln!(
            out,
            "# HELP {name} Errors returned to clients, by code.\n# TYPE {name} counter"
        );
        for (code, count) in ErrorCode::ALL.iter().zip(&self.errors) {
            _ = writeln!(out, "{name}{{code=\"{code}\"}} {}", count.load(Relaxed));
        }
        out
    }
}
