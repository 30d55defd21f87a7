//! The one configuration type, and how it is assembled.
//!
//! Order of precedence, lowest first: the defaults in [`Config::default`] (each written once,
//! here), an optional TOML file, `BANTER_*` environment variables, command-line flags. The
//! environment and flags are parsed together by clap into [`Overrides`]; the TOML file is parsed
//! into the same type, so every option has exactly one name in every source.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod overrides;
mod policies;
mod secret;

pub use overrides::Overrides;
pub use policies::{DirectMessagePolicy, GroupAddPolicy, SignupPolicy, SqliteSync};
pub use secret::{AdminToken, BusUrl, StoreUrl};

pub use crate::net::Listen;

/// The media types accepted by default: images, documents, audio, video and archives.
pub const DEFAULT_MEDIA_TYPES: &str = "image/jpeg,image/png,image/gif,image/webp,\
application/pdf,text/plain,\
application/vnd.openxmlformats-officedocument.wordprocessingml.document,\
application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,\
application/vnd.openxmlformats-officedocument.presentationml.presentation,\
application/vnd.oasis.opendocument.text,application/vnd.oasis.opendocument.spreadsheet,\
audio/mpeg,audio/ogg,audio/x-wav,audio/x-flac,audio/aac,audio/m4a,audio/opus,\
video/mp4,video/webm,video/quicktime,video/x-matroska,\
application/zip,application/gzip,application/x-7z-compressed";

/// Everything the server can be told. Field docs are the reference; `docs/banter.example.toml` is
/// generated from [`Config::default`] and checked by a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP and WebSocket listener binds.
    pub listen: Listen,
    /// Directory holding the SQLite database (unused when `store` names PostgreSQL).
    pub data_dir: PathBuf,
    /// Where the data lives: empty (the default) for the embedded SQLite store in `data_dir`,
    /// or a PostgreSQL URL, `postgres://user[:password]@host:port/database`, for one database
    /// that several nodes may share. Logs show it with any password replaced by `***`; prefer
    /// `BANTER_STORE` to a file others can read when it holds one.
    pub store: StoreUrl,
    /// How the nodes of a cluster reach each other: empty (the default) for a single node, or
    /// a NATS URL, `nats://host:4222`, shared by every node of the cluster (which then also
    /// share one PostgreSQL `store`). See docs/OPERATIONS.md, "Running a cluster".
    pub bus: BusUrl,
    /// The cluster's name: nodes with the same `bus` and name form one cluster (the prefix of
    /// its NATS subjects and bucket). Letters, digits, `-` and `_`.
    pub cluster: String,
    /// Lifetime of a login token, in seconds.
    pub token_ttl_secs: u64,
    /// Most live sessions (logged-in devices) per user; a login past it revokes the oldest.
    pub max_sessions_per_user: u32,
    /// Argon2id memory cost in KiB (OWASP minimum: 19456).
    pub password_memory_kib: u32,
    /// Argon2id iterations.
    pub password_iterations: u32,
    /// Threads that hash passwords, each holding one `password_memory_kib` block for good
    /// (0: one per CPU core). Hashing memory is this × `password_memory_kib`, whatever the load.
    pub password_hash_workers: usize,
    /// Password hashes that may wait for a worker; beyond this, logins, registrations and
    /// password changes are refused with 503 `busy` (`Retry-After: 1`).
    pub password_hash_queue: usize,
    /// Login attempts for one username without a success before each further one waits out a
    /// backoff (refused with 429 `rate_limited` before any hashing).
    pub login_failures_per_account: u32,
    /// Login attempts from one IP address without a success before each further one waits out
    /// a backoff (successes do not reset it; they only do not count).
    pub login_failures_per_address: u32,
    /// The first login backoff, in milliseconds; it doubles with each further failure.
    pub login_backoff_ms: u64,
    /// The longest login backoff, in milliseconds.
    pub login_backoff_max_ms: u64,
    /// Registrations one IP address may make per hour, sustained.
    pub register_per_address_per_hour: u32,
    /// Registrations one IP address may burst above the hourly rate.
    pub register_burst: u32,
    /// How often the server pings each WebSocket, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// A connection from which nothing arrived for this long is closed (4002), in milliseconds.
    pub heartbeat_timeout_ms: u64,
    /// A connection must finish the WebSocket handshake within this many milliseconds.
    pub handshake_timeout_ms: u64,
    /// Largest WebSocket frame payload accepted, in bytes (larger: close 1009).
    pub max_frame_bytes: usize,
    /// Largest message text, in bytes.
    pub max_text_bytes: usize,
    /// Largest HTTP request body, in bytes.
    pub max_body_bytes: usize,
    /// Sustained message sends per second per user (all devices together).
    pub send_rate_per_sec: u32,
    /// Sends a user may burst above the sustained rate.
    pub send_burst: u32,
    /// Sustained requests per second per user (all devices together) of every type that
    /// changes state other than sends: profile, friends and blocks, groups, rooms, read,
    /// typing, recall and edit.
    pub request_rate_per_sec: u32,
    /// Such requests a user may burst above the sustained rate.
    pub request_burst: u32,
    /// Sustained state-changing requests per second on one connection (so one device cannot
    /// spend the whole user's budget).
    pub connection_request_rate_per_sec: u32,
    /// Such requests one connection may burst above its sustained rate.
    pub connection_request_burst: u32,
    /// Concurrent WebSocket connections per user.
    pub max_connections_per_user: usize,
    /// Frames queued for one connection before it counts as a slow consumer (closed with 4003).
    pub outbound_queue_frames: usize,
    /// A busy connection writes pushed frames at most once per this many microseconds; frames
    /// arriving meanwhile join the next write (0: write whenever anything is queued). A
    /// connection that has not written for that long writes at once, and replies never wait.
    /// Trades up to that much push latency under load for fewer system calls in fan-out.
    pub write_coalesce_us: u64,
    /// Largest page returned by `sync` and `history`.
    pub max_page: u32,
    /// Most bytes of encoded messages in one `sync` or `history` page (a page always holds at
    /// least one message; `has_more` tells that more exist). Also bounds the message previews of
    /// one `conversations` reply.
    pub max_page_bytes: usize,
    /// Most write operations committed in one SQLite transaction (group commit).
    pub write_batch_max: usize,
    /// SQLite `synchronous` pragma: `full` (fsync every commit) or `normal` (survives process
    /// crashes, may lose the last commits on power loss).
    pub sqlite_synchronous: SqliteSync,
    /// Read-only SQLite connections serving queries.
    pub sqlite_readers: usize,
    /// PostgreSQL connections each node keeps at most (when `store` names PostgreSQL). Every
    /// node of a cluster opens up to this many: keep nodes × this below the server's
    /// `max_connections` (minus its reserved ones and other clients).
    pub postgres_pool_size: usize,
    /// Run SQLite's `PRAGMA quick_check` at start and refuse a damaged database. It reads the
    /// whole database once (see docs/OPERATIONS.md for its cost); `false` skips it.
    pub sqlite_quick_check: bool,
    /// Serve the web client at `/` (else only the API, health and metrics answer).
    pub web_client: bool,
    /// How long shutdown waits for connections and commits to finish, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// Who may open a direct conversation: `anyone` (blocks still apply) or `friends`.
    pub direct_message_policy: DirectMessagePolicy,
    /// Seconds after sending during which the sender may recall a message.
    pub recall_window_secs: u64,
    /// Largest group, owner included.
    pub max_group_members: usize,
    /// Whom a member may put into a group (at creation or by `group_add`): `friends` (the
    /// default: only the adder's friends) or `anyone`. Blocks apply under both.
    pub group_add_policy: GroupAddPolicy,
    /// Most live (not dissolved) groups one user may be a member of.
    pub max_groups_per_user: usize,
    /// Messages of recent history each chatroom keeps (in memory).
    pub room_history: usize,
    /// Most bytes of encoded messages in a chatroom's recent history (the older ones go first).
    pub room_history_bytes: usize,
    /// Chatroom occupancy changes are broadcast at most this often, in milliseconds.
    pub room_occupancy_interval_ms: u64,
    /// Most chatrooms at once on this node; joining a new room beyond it is refused
    /// (`invalid_room`). A room is freed, with its history, when its last occupant leaves.
    pub max_rooms: usize,
    /// Open TCP connections in all (HTTP and WebSocket). Beyond it a new connection gets a
    /// best-effort 429 `too_many_connections` and is closed at once. Keep it below the
    /// process's open-file limit (`ulimit -n`), leaving room for the database and the reserve.
    pub max_connections: usize,
    /// Connections admitted past `max_connections` that may only ask `/healthz`, `/readyz` and
    /// `/metrics` (anything else: 429 `too_many_connections`), so probes still answer when the
    /// server is full.
    pub health_reserve_connections: usize,
    /// Connections per client IP address that are not (yet) authenticated WebSocket sessions:
    /// HTTP requests, idle keep-alive connections, upgrades in progress. Beyond it a new
    /// connection from that address gets a best-effort 429 and is closed at once.
    pub max_pending_per_ip: usize,
    /// Authenticated WebSocket sessions per client IP address (429 `too_many_connections` at
    /// the upgrade beyond it).
    pub max_sessions_per_ip: usize,
    /// A request's headers must be complete within this many milliseconds of the connection's
    /// start, or of its first byte on a kept-alive connection; otherwise the connection is closed.
    pub http_header_timeout_ms: u64,
    /// Once its headers are in, a request's body must arrive and its response be written
    /// within this many milliseconds; otherwise the connection is closed.
    pub http_request_timeout_ms: u64,
    /// A kept-alive HTTP connection with no request for this many milliseconds is closed.
    pub http_idle_timeout_ms: u64,
    /// Where media files are stored: empty (the default) for `<data_dir>/media`. In a cluster
    /// every node must see the same directory (a shared file system).
    pub media_dir: PathBuf,
    /// Where media bytes are stored instead of `media_dir`: empty (the default) for the
    /// directory; `s3://bucket/prefix` for S3 or an S3-compatible store (credentials, region
    /// and endpoint from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`), which every node of a cluster can share;
    /// `file:///directory`; or `memory://` (lost at exit: tests and demos). Uploads in
    /// progress still use `media_dir/tmp`.
    pub media_store: String,
    /// Largest media file one upload may carry, in bytes (beyond: 413 `media_too_large`).
    pub media_max_file_bytes: u64,
    /// Bytes of media one user's uploads may take in all (beyond: 413 `quota_exceeded`).
    pub media_quota_bytes: u64,
    /// Media types accepted, comma-separated, as sniffed from the file's bytes (never taken
    /// from its name or headers). `image/svg+xml` may be added; an SVG with script is refused
    /// all the same and SVGs are never served inline.
    pub media_types: String,
    /// A media file sent into no conversation is removed this many seconds after its last
    /// upload.
    pub media_unreferenced_secs: u64,
    /// Uploads one user may have in progress at once (beyond: 429 `rate_limited`).
    pub media_uploads_per_user: u32,
    /// Downloads one user may have in progress at once on this server, over all their
    /// connections, thumbnails included (beyond: 429 `rate_limited`); a download counts until
    /// its last byte is sent.
    pub media_downloads_per_user: u32,
    /// Largest image canvas, in pixels (width × height), that is decoded for a thumbnail;
    /// larger images are refused (400 `invalid_media`) from their header, before decoding.
    pub media_max_image_pixels: u64,
    /// Who may register with `POST /v1/accounts`: `open` (anyone), `invite` (only with an
    /// operator's invitation code) or `closed` (only operators create accounts).
    pub signup: SignupPolicy,
    /// The operator credential for the admin API (`/v1/admin/...`, `banter admin`), sent as
    /// `Authorization: Bearer <token>`; 32–256 bytes. Empty (the default): the admin API is
    /// off and answers 404. Prefer `BANTER_ADMIN_TOKEN` to a file others can read.
    pub admin_token: AdminToken,
    /// Built-in TLS: a PEM file with the certificate chain (end-entity first). With `tls_key`,
    /// the listener speaks only TLS (https, wss); SIGHUP re-reads both files. Unset (the
    /// default): plain HTTP, for a reverse proxy in front to terminate TLS.
    pub tls_cert: Option<PathBuf>,
    /// Built-in TLS: a PEM file with the private key for `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Listen(([127, 0, 0, 1], 8080).into()),
            data_dir: PathBuf::from("banter-data"),
            store: StoreUrl::default(),
            bus: BusUrl::default(),
            cluster: "banter".to_owned(),
            token_ttl_secs: 30 * 24 * 3600,
            max_sessions_per_user: 100,
            password_memory_kib: 19_456,
            password_iterations: 2,
            password_hash_workers: 0,
            password_hash_queue: 64,
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            login_backoff_ms: 1_000,
            login_backoff_max_ms: 300_000,
            register_per_address_per_hour: 30,
            register_burst: 10,
            heartbeat_interval_ms: 20_000,
            heartbeat_timeout_ms: 60_000,
            handshake_timeout_ms: 10_000,
            max_frame_bytes: 64 * 1024,
            max_text_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            send_rate_per_sec: 50,
            send_burst: 200,
            request_rate_per_sec: 20,
            request_burst: 100,
            connection_request_rate_per_sec: 10,
            connection_request_burst: 50,
            max_connections_per_user: 10,
            outbound_queue_frames: 1024,
            write_coalesce_us: 10_000,
            max_page: 500,
            max_page_bytes: 256 * 1024,
            write_batch_max: 2048,
            sqlite_synchronous: SqliteSync::Full,
            sqlite_readers: 4,
            postgres_pool_size: 16,
            sqlite_quick_check: true,
            web_client: true,
            shutdown_grace_ms: 10_000,
            direct_message_policy: DirectMessagePolicy::Anyone,
            recall_window_secs: 120,
            max_group_members: 1_000,
            group_add_policy: GroupAddPolicy::Friends,
            max_groups_per_user: 500,
            room_history: 100,
            room_history_bytes: 64 * 1024,
            room_occupancy_interval_ms: 500,
            max_rooms: 10_000,
            max_connections: 10_000,
            health_reserve_connections: 8,
            max_pending_per_ip: 64,
            max_sessions_per_ip: 1_000,
            http_header_timeout_ms: 10_000,
            http_request_timeout_ms: 30_000,
            http_idle_timeout_ms: 30_000,
            media_dir: PathBuf::new(),
            media_store: String::new(),
            media_max_file_bytes: 100 * 1024 * 1024,
            media_quota_bytes: 1024 * 1024 * 1024,
            media_types: DEFAULT_MEDIA_TYPES.to_owned(),
            media_unreferenced_secs: 86_400,
            media_uploads_per_user: 4,
            media_downloads_per_user: 8,
            media_max_image_pixels: 50_000_000,
            signup: SignupPolicy::Open,
            admin_token: AdminToken::default(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Config {
    /// Where media files live (`media_dir`, or `<data_dir>/media`).
    pub fn media_path(&self) -> PathBuf {
        if self.media_dir.as_os_str().is_empty() {
            self.data_dir.join("media")
        } else {
            self.media_dir.clone()
        }
    }

    /// The accepted media types (`media_types`, split at commas, trimmed, lowercase).
    pub fn media_type_list(&self) -> Vec<String> {
        self.media_types
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// The heartbeat ping period.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// Silence after which a connection is closed.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
    }

    /// The deadline for a request's headers.
    pub fn http_header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout_ms)
    }

    /// The deadline for a request's body and response, once its headers are in.
    pub fn http_request_timeout(&self) -> Duration {
        Duration::from_millis(self.http_request_timeout_ms)
    }

    /// How long a kept-alive connection may wait for its next request.
    pub fn http_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.http_idle_timeout_ms)
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Builds the configuration from defaults, an optional TOML file and the overrides gathered
    /// from the environment and the command line.
    pub fn load(cli: Overrides) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(path) = &cli.config {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let mut file: Overrides =
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?;
            // A relative path in the file means one beside the file, wherever the server starts.
            if let Some(base) = path.parent() {
                for file_path in [&mut file.data_dir, &mut file.tls_cert, &mut file.tls_key] {
                    beside(base, file_path);
                }
            }
            config.apply(file);
        }
        config.apply(cli);
        config.validate()?;
        Ok(config)
    }

    /// The defaults as TOML: the body of `docs/banter.example.toml`.
    pub fn default_toml() -> String {
        toml::to_string(&Self::default()).expect("the default config serializes")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (
                self.heartbeat_interval_ms > 0,
                "heartbeat_interval_ms must be > 0",
            ),
            (
                self.heartbeat_timeout_ms > self.heartbeat_interval_ms,
                "heartbeat_timeout_ms must exceed heartbeat_interval_ms",
            ),
            (self.send_rate_per_sec > 0, "send_rate_per_sec must be > 0"),
            (self.send_burst > 0, "send_burst must be > 0"),
            (
                self.outbound_queue_frames > 0,
                "outbound_queue_frames must be > 0",
            ),
            (self.max_page > 0, "max_page must be > 0"),
            (self.max_page_bytes > 0, "max_page_bytes must be > 0"),
            (
                self.request_rate_per_sec > 0 && self.request_burst > 0,
                "request_rate_per_sec and request_burst must be > 0",
            ),
            (
                self.connection_request_rate_per_sec > 0 && self.connection_request_burst > 0,
                "connection_request_rate_per_sec and connection_request_burst must be > 0",
            ),
            (
                self.max_group_members >= 2,
                "max_group_members must be >= 2",
            ),
            (
                self.max_groups_per_user > 0,
                "max_groups_per_user must be > 0",
            ),
            (self.max_rooms > 0, "max_rooms must be > 0"),
            (
                self.media_max_file_bytes > 0
                    && self.media_uploads_per_user > 0
                    && self.media_downloads_per_user > 0,
                "media_max_file_bytes, media_uploads_per_user and media_downloads_per_user must be > 0",
            ),
            (
                self.media_unreferenced_secs > 0 && self.media_max_image_pixels > 0,
                "media_unreferenced_secs and media_max_image_pixels must be > 0",
            ),
            (
                self.room_occupancy_interval_ms > 0,
                "room_occupancy_interval_ms must be > 0",
            ),
            (self.max_connections > 0, "max_connections must be > 0"),
            (
                self.max_pending_per_ip > 0,
                "max_pending_per_ip must be > 0",
            ),
            (
                self.max_sessions_per_ip > 0,
                "max_sessions_per_ip must be > 0",
            ),
            (
                self.http_header_timeout_ms > 0
                    && self.http_request_timeout_ms > 0
                    && self.http_idle_timeout_ms > 0,
                "http_header_timeout_ms, http_request_timeout_ms and http_idle_timeout_ms must be > 0",
            ),
            (self.write_batch_max > 0, "write_batch_max must be > 0"),
            (self.sqlite_readers > 0, "sqlite_readers must be > 0"),
            (
                self.postgres_pool_size >= 2,
                "postgres_pool_size must be at least 2 (one writer, one reader)",
            ),
            (
                self.max_connections_per_user > 0,
                "max_connections_per_user must be > 0",
            ),
            (
                self.password_memory_kib >= 8,
                "password_memory_kib must be >= 8",
            ),
            (
                self.password_iterations >= 1,
                "password_iterations must be >= 1",
            ),
            (
                self.password_hash_queue > 0,
                "password_hash_queue must be > 0",
            ),
            (
                self.login_failures_per_account > 0 && self.login_failures_per_address > 0,
                "login_failures_per_account and login_failures_per_address must be > 0",
            ),
            (
                self.login_backoff_max_ms >= self.login_backoff_ms,
                "login_backoff_max_ms must be >= login_backoff_ms",
            ),
            (
                self.register_per_address_per_hour > 0 && self.register_burst > 0,
                "register_per_address_per_hour and register_burst must be > 0",
            ),
            (
                self.max_text_bytes < self.max_frame_bytes,
                "max_text_bytes must be below max_frame_bytes",
            ),
            (
                !self.admin_token.is_set()
                    || (secret::ADMIN_TOKEN_MIN..=secret::ADMIN_TOKEN_MAX)
                        .contains(&self.admin_token.expose().len()),
                "admin_token must be empty (admin API off) or 32 to 256 bytes",
            ),
            (
                self.store.is_valid(),
                "store must be empty (the embedded SQLite store) or a postgres:// or postgresql:// URL",
            ),
            (
                self.bus.is_valid(),
                "bus must be empty (a single node) or a nats:// URL",
            ),
            (
                !self.bus.is_set() || self.store.is_set(),
                "a cluster (bus set) needs a shared store: set store to a postgres:// URL",
            ),
            (
                crate::bus::nats::valid_prefix(&self.cluster),
                "cluster must be 1 to 64 letters, digits, '-' or '_'",
            ),
            (
                self.tls_cert.is_some() == self.tls_key.is_some(),
                "tls_cert and tls_key must be given together (or neither)",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(ConfigError::Invalid(why)),
            None => Ok(()),
        }
    }
}

/// Makes a relative `path` relative to `base` instead.
fn beside(base: &Path, path: &mut Option<PathBuf>) {
    if let Some(path) = path
        && path.is_relative()
    {
        *path = base.join(&*path);
    }
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this type.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(&'static str),
}

#[cfg(test)]
mod tests;
