//! [`Overrides`]: every option as a flag, a `BANTER_*` variable and a TOML key, declared from one
//! list together with [`Config::apply`].

use std::path::PathBuf;

use serde::Deserialize;

use super::*;

/// Declares [`Overrides`] (every field optional, one clap flag and `BANTER_*` variable each) and
/// [`Config::apply`], from one list, so a new option cannot be forgotten in one of the places.
macro_rules! overrides {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty, $env:literal; )*) => {
        /// Options given on the command line, in `BANTER_*` variables, or in the TOML file. Each
        /// unset field keeps the value from the layer below. Defaults: see `Config::default`.
        #[derive(Debug, Clone, Default, clap::Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Overrides {
            /// TOML configuration file (values in it sit below environment and flags).
            #[arg(long, env = "BANTER_CONFIG")]
            #[serde(skip)]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env, hide_env_values = true)]
                pub $field: Option<$ty>,
            )*
        }

        impl Config {
            /// Replaces every field that `o` sets.
            pub fn apply(&mut self, o: Overrides) {
                // `.into()`: an optional field (`Option<T>`) is set from a `T`.
                $( if let Some(v) = o.$field { self.$field = v.into(); } )*
            }
        }
    };
}

overrides! {
    /// Address to listen on: IP and port, or host name and port (localhost:8080).
    listen: Listen, "BANTER_LISTEN";
    /// Data directory (SQLite database).
    data_dir: PathBuf, "BANTER_DATA_DIR";
    /// Store: a postgres:// URL (unset: the embedded SQLite store in the data directory).
    store: StoreUrl, "BANTER_STORE";
    /// Bus: a nats:// URL for a cluster (unset: a single node).
    bus: BusUrl, "BANTER_BUS";
    /// Cluster name (the NATS subject prefix).
    cluster: String, "BANTER_CLUSTER";
    /// Login token lifetime in seconds.
    token_ttl_secs: u64, "BANTER_TOKEN_TTL_SECS";
    /// Most live sessions per user (a login past it revokes the oldest).
    max_sessions_per_user: u32, "BANTER_MAX_SESSIONS_PER_USER";
    /// Argon2id memory cost in KiB.
    password_memory_kib: u32, "BANTER_PASSWORD_MEMORY_KIB";
    /// Argon2id iterations.
    password_iterations: u32, "BANTER_PASSWORD_ITERATIONS";
    /// Password hashing threads (0: one per core).
    password_hash_workers: usize, "BANTER_PASSWORD_HASH_WORKERS";
    /// Password hashes that may wait for a worker (beyond: 503 busy).
    password_hash_queue: usize, "BANTER_PASSWORD_HASH_QUEUE";
    /// Login attempts per username before backoff.
    login_failures_per_account: u32, "BANTER_LOGIN_FAILURES_PER_ACCOUNT";
    /// Login attempts per IP address before backoff.
    login_failures_per_address: u32, "BANTER_LOGIN_FAILURES_PER_ADDRESS";
    /// First login backoff in ms (doubles per further failure).
    login_backoff_ms: u64, "BANTER_LOGIN_BACKOFF_MS";
    /// Longest login backoff in ms.
    login_backoff_max_ms: u64, "BANTER_LOGIN_BACKOFF_MAX_MS";
    /// Registrations per IP address per hour.
    register_per_address_per_hour: u32, "BANTER_REGISTER_PER_ADDRESS_PER_HOUR";
    /// Registration burst per IP address.
    register_burst: u32, "BANTER_REGISTER_BURST";
    /// Server ping period in ms.
    heartbeat_interval_ms: u64, "BANTER_HEARTBEAT_INTERVAL_MS";
    /// Close a connection silent for this many ms (close code 4002).
    heartbeat_timeout_ms: u64, "BANTER_HEARTBEAT_TIMEOUT_MS";
    /// WebSocket handshake deadline in ms.
    handshake_timeout_ms: u64, "BANTER_HANDSHAKE_TIMEOUT_MS";
    /// Largest WebSocket frame payload in bytes (larger: close 1009).
    max_frame_bytes: usize, "BANTER_MAX_FRAME_BYTES";
    /// Largest message text in bytes.
    max_text_bytes: usize, "BANTER_MAX_TEXT_BYTES";
    /// Largest HTTP body in bytes.
    max_body_bytes: usize, "BANTER_MAX_BODY_BYTES";
    /// Sustained sends per second per user.
    send_rate_per_sec: u32, "BANTER_SEND_RATE_PER_SEC";
    /// Burst of sends above the sustained rate.
    send_burst: u32, "BANTER_SEND_BURST";
    /// Sustained state-changing requests (other than sends) per second per user.
    request_rate_per_sec: u32, "BANTER_REQUEST_RATE_PER_SEC";
    /// Burst of state-changing requests per user.
    request_burst: u32, "BANTER_REQUEST_BURST";
    /// Sustained state-changing requests per second per connection.
    connection_request_rate_per_sec: u32, "BANTER_CONNECTION_REQUEST_RATE_PER_SEC";
    /// Burst of state-changing requests per connection.
    connection_request_burst: u32, "BANTER_CONNECTION_REQUEST_BURST";
    /// Concurrent WebSocket connections per user.
    max_connections_per_user: usize, "BANTER_MAX_CONNECTIONS_PER_USER";
    /// Outbound frames queued per connection before it is closed as a slow consumer (4003).
    outbound_queue_frames: usize, "BANTER_OUTBOUND_QUEUE_FRAMES";
    /// A busy connection writes at most once per this many microseconds (0: no spacing).
    write_coalesce_us: u64, "BANTER_WRITE_COALESCE_US";
    /// Largest sync/history page.
    max_page: u32, "BANTER_MAX_PAGE";
    /// Most bytes of encoded messages in one sync/history page.
    max_page_bytes: usize, "BANTER_MAX_PAGE_BYTES";
    /// Most write operations per SQLite transaction (group commit).
    write_batch_max: usize, "BANTER_WRITE_BATCH_MAX";
    /// SQLite synchronous mode: full or normal.
    sqlite_synchronous: SqliteSync, "BANTER_SQLITE_SYNCHRONOUS";
    /// Read-only SQLite connections.
    sqlite_readers: usize, "BANTER_SQLITE_READERS";
    /// PostgreSQL connections per node.
    postgres_pool_size: usize, "BANTER_POSTGRES_POOL_SIZE";
    /// Check the database with PRAGMA quick_check at start (true or false).
    sqlite_quick_check: bool, "BANTER_SQLITE_QUICK_CHECK";
    /// Serve the web client at / (true or false).
    web_client: bool, "BANTER_WEB_CLIENT";
    /// Shutdown grace period in ms.
    shutdown_grace_ms: u64, "BANTER_SHUTDOWN_GRACE_MS";
    /// Who may open direct conversations: anyone or friends.
    direct_message_policy: DirectMessagePolicy, "BANTER_DIRECT_MESSAGE_POLICY";
    /// Seconds during which a message may be recalled.
    recall_window_secs: u64, "BANTER_RECALL_WINDOW_SECS";
    /// Largest group.
    max_group_members: usize, "BANTER_MAX_GROUP_MEMBERS";
    /// Whom a member may add to a group: friends or anyone.
    group_add_policy: GroupAddPolicy, "BANTER_GROUP_ADD_POLICY";
    /// Most live groups one user may be a member of.
    max_groups_per_user: usize, "BANTER_MAX_GROUPS_PER_USER";
    /// Recent messages kept per chatroom.
    room_history: usize, "BANTER_ROOM_HISTORY";
    /// Most bytes of encoded recent messages kept per chatroom.
    room_history_bytes: usize, "BANTER_ROOM_HISTORY_BYTES";
    /// Chatroom occupancy broadcast interval in ms.
    room_occupancy_interval_ms: u64, "BANTER_ROOM_OCCUPANCY_INTERVAL_MS";
    /// Most chatrooms at once (empty rooms are freed).
    max_rooms: usize, "BANTER_MAX_ROOMS";
    /// Open TCP connections in all (beyond: 429 and closed at once).
    max_connections: usize, "BANTER_MAX_CONNECTIONS";
    /// Connections past max_connections that may only ask /healthz, /readyz, /metrics.
    health_reserve_connections: usize, "BANTER_HEALTH_RESERVE_CONNECTIONS";
    /// Connections per IP that are not authenticated WebSocket sessions.
    max_pending_per_ip: usize, "BANTER_MAX_PENDING_PER_IP";
    /// Authenticated WebSocket sessions per IP.
    max_sessions_per_ip: usize, "BANTER_MAX_SESSIONS_PER_IP";
    /// Deadline for a request's headers in ms.
    http_header_timeout_ms: u64, "BANTER_HTTP_HEADER_TIMEOUT_MS";
    /// Deadline for a request's body and response in ms, once its headers are in.
    http_request_timeout_ms: u64, "BANTER_HTTP_REQUEST_TIMEOUT_MS";
    /// Idle keep-alive HTTP connections are closed after this many ms.
    http_idle_timeout_ms: u64, "BANTER_HTTP_IDLE_TIMEOUT_MS";
    /// Media directory (empty: <data_dir>/media).
    media_dir: PathBuf, "BANTER_MEDIA_DIR";
    /// Media object store URL: s3://bucket/prefix, file:///dir or memory:// (empty: media_dir).
    media_store: String, "BANTER_MEDIA_STORE";
    /// Largest media file in bytes.
    media_max_file_bytes: u64, "BANTER_MEDIA_MAX_FILE_BYTES";
    /// Media bytes per user in all.
    media_quota_bytes: u64, "BANTER_MEDIA_QUOTA_BYTES";
    /// Accepted media types, comma-separated (sniffed from the bytes).
    media_types: String, "BANTER_MEDIA_TYPES";
    /// Seconds after which a media file sent nowhere is removed.
    media_unreferenced_secs: u64, "BANTER_MEDIA_UNREFERENCED_SECS";
    /// Uploads in progress per user.
    media_uploads_per_user: u32, "BANTER_MEDIA_UPLOADS_PER_USER";
    /// Downloads in progress per user.
    media_downloads_per_user: u32, "BANTER_MEDIA_DOWNLOADS_PER_USER";
    /// Largest image canvas in pixels.
    media_max_image_pixels: u64, "BANTER_MEDIA_MAX_IMAGE_PIXELS";
    /// Who may register: open, invite or closed.
    signup: SignupPolicy, "BANTER_SIGNUP";
    /// Admin API credential, 32-256 bytes (empty: admin API off).
    admin_token: AdminToken, "BANTER_ADMIN_TOKEN";
    /// Built-in TLS: PEM certificate chain (with --tls-key; SIGHUP reloads).
    tls_cert: PathBuf, "BANTER_TLS_CERT";
    /// Built-in TLS: PEM private key (with --tls-cert).
    tls_key: PathBuf, "BANTER_TLS_KEY";
}
