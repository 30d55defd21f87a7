//! Wiring: builds the store, bus, registry and services from a [`Config`], serves them, and
//! shuts them down in order.
//!
//! Shutdown by ownership: [`Server::run`] takes the shutdown future; when it resolves, new
//! requests are refused with 503 `shutting_down`, every session is told to close with 1001, and
//! the server waits (up to the grace period) for sessions, then stops the listener, waits for
//! in-flight requests, and closes the store, which commits what is queued.
//!
//! Connections are accepted and admitted by `transport::listener` (caps and deadlines).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::bus::node::Node;
use crate::bus::{self, BusConfig};
use crate::config::Config;
use crate::media::image::ImageLimits;
use crate::media::object::ObjectStorage;
use crate::media::service::{Media, MediaLimits};
use crate::media::storage::{LocalStorage, MediaStorage};
use crate::metrics::Metrics;
use crate::registry::{NodeId, Registry};
use crate::services::accounts::Accounts;
use crate::services::admin::Admin;
use crate::services::budget::BudgetLimits;
use crate::services::directory::Directory;
use crate::services::groups::{GroupLimits, Groups};
use crate::services::messaging::{Messaging, MessagingLimits};
use crate::services::rooms::{RoomLimits, Rooms};
use crate::services::social::Social;
use crate::state::App;
use crate::store::Store;
use crate::store::{self, StoreConfig};
use crate::transport;
use crate::transport::listener::Listener;
use crate::transport::tls::{Tls, TlsError};

/// How often entries stuck behind a publishing gap are looked at.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How often idle rate-limiter state is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("cannot open store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The bus (NATS) could not be joined.
    #[error("cannot join the cluster: {0}")]
    Bus(#[from] crate::bus::nats::NatsError),
    /// The TLS certificate or key could not be loaded.
    #[error("cannot load TLS certificate: {0}")]
    Tls(#[from] TlsError),
    /// The media store could not be opened.
    #[error("cannot open the media store {path}: {source}")]
    Media {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
    node: Arc<Node>,
    store: Arc<dyn Store>,
    tls: Option<Arc<Tls>>,
}

/// Binds the listening socket, naming the address in the error.
async fn bind_listener(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// The messaging service's limits from the configuration.
fn messaging_limits(config: &Config) -> MessagingLimits {
    MessagingLimits {
        max_text_bytes: config.max_text_bytes,
        max_page: config.max_page,
        send_rate_per_sec: config.send_rate_per_sec,
        send_burst: config.send_burst,
        direct_policy: config.direct_message_policy,
        recall_window_ms: i64::try_from(config.recall_window_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX),
        max_page_bytes: config.max_page_bytes,
        requests: BudgetLimits {
            user_rate: config.request_rate_per_sec,
            user_burst: config.request_burst,
            conn_rate: config.connection_request_rate_per_sec,
            conn_burst: config.connection_request_burst,
        },
    }
}

/// Which bus the configuration asks for.
fn bus_config(config: &Config) -> BusConfig {
    if config.bus.is_set() {
        BusConfig::Nats {
            url: config.bus.expose().to_owned(),
            cluster: config.cluster.clone(),
            max_per_user: config.max_connections_per_user,
        }
    } else {
        BusConfig::Local
    }
}

/// The groups service's limits from the configuration.
fn group_limits(config: &Config) -> GroupLimits {
    GroupLimits {
        max_members: config.max_group_members,
        add_policy: config.group_add_policy,
        max_groups_per_user: config.max_groups_per_user,
    }
}

/// The chatrooms' limits from the configuration.
fn room_limits(config: &Config) -> RoomLimits {
    RoomLimits {
        history: config.room_history,
        occupancy_interval: Duration::from_millis(config.room_occupancy_interval_ms),
        max_text_bytes: config.max_text_bytes,
        max_rooms: config.max_rooms,
        history_bytes: config.room_history_bytes,
    }
}

impl Server {
    /// Opens the store and binds the listener.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        // Before the store is opened: a bad pair is refused without touching the database.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key)?)),
            _ => None,
        };
        let metrics = Arc::new(Metrics::default());
        let store = store::open(&StoreConfig::from_config(&config), Arc::clone(&metrics)).await?;
        let directory = Arc::new(Directory::new(Arc::clone(&store)));
        let node = Arc::new(Node::new(
            NodeId::random(),
            Registry::new(config.max_connections_per_user, Arc::clone(&metrics)),
            Arc::clone(&directory) as _,
        ));
        let bus = bus::open(&bus_config(&config), Arc::clone(&node)).await?;
        let media_path = config.media_path();
        let storage: Arc<dyn MediaStorage> = if config.media_store.is_empty() {
            Arc::new(LocalStorage::open(&media_path))
        } else {
            Arc::new(
                ObjectStorage::open(&config.media_store, &media_path).map_err(|source| {
                    StartError::Media {
                        path: config.media_store.clone().into(),
                        source,
                    }
                })?,
            )
        };
        let media = Arc::new(Media::new(
            Arc::clone(&store),
            storage,
            media_limits(&config),
        ));
        let listener = bind_listener(config.listen.0).await?;
        let messaging = Arc::new(Messaging::new(
            Arc::clone(&store),
            Arc::clone(&bus),
            Arc::clone(&metrics),
            Arc::clone(&directory),
            Arc::clone(&media),
            messaging_limits(&config),
        ));
        let accounts = Arc::new(Accounts::new(
            Arc::clone(&store),
            Arc::clone(&bus),
            Arc::clone(&metrics),
            &config,
        ));
        let groups = Arc::new(Groups::new(
            Arc::clone(&store),
            Arc::clone(&directory),
            Arc::clone(&messaging),
            group_limits(&config),
        ));
        let admin = Admin::new(
            Arc::clone(&store),
            Arc::clone(&accounts),
            Arc::clone(&groups),
            Arc::clone(&bus),
            Arc::clone(&metrics),
            &config,
        );
        let app = Arc::new(App {
            accounts,
            admin,
            groups,
            social: Social::new(Arc::clone(&store), Arc::clone(&bus), Arc::clone(&directory)),
            rooms: Rooms::new(
                room_limits(&config),
                Arc::clone(&bus),
                Arc::clone(&node),
                Arc::clone(&metrics),
            ),
            messaging,
            media,
            admission: Arc::new(Admission::new(&config)),
            config,
            bus,
            metrics,
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            store: Arc::clone(&store),
            next_conn: AtomicU64::new(0),
        });
        Ok(Self {
            listener,
            app,
            node,
            store,
            tls,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The store, for tests that assert on what was persisted.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The built-in TLS pair, if configured: its [`Tls::reload`] swaps in the files' current
    /// contents (the binary calls it on SIGHUP).
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.clone()
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            app,
            node,
            store,
            tls,
        } = self;
        let grace = app.config.shutdown_grace();
        let background = Background::start(&app, &node);
        tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "banter listening");
        // The listener keeps accepting while sessions drain, so that new requests get a typed
        // 503 (`shutting_down`) instead of a refused connection; it stops once they are done.
        let drained = CancellationToken::new();
        let router = transport::router(Arc::clone(&app));
        let listener = Listener::new(listener, Arc::clone(&app), router, tls);
        let served = tokio::spawn(listener.run(drained.clone()));
        let token = app.shutdown.clone();
        tokio::select! {
            () = shutdown => token.cancel(),
            () = token.cancelled() => {}
        }
        tracing::info!("shutting down");
        app.sessions.close();
        if tokio::time::timeout(grace, app.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("sessions still open after the grace period");
        }
        drained.cancel();
        let http = match tokio::time::timeout(grace, served).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_) => {
                tracing::warn!("HTTP requests still running after the grace period");
                Ok(())
            }
        };
        background.stop().await;
        app.bus.close().await;
        store.close().await;
        tracing::info!("stopped");
        http
    }
}

/// The server's periodic tasks, owned: started with it and stopped (and awaited) at shutdown,
/// after the sessions that need them are gone.
/// How often files sent nowhere are looked for: half their allowed age, between 1 s and 1 h.
fn media_sweep_period(config: &Config) -> Duration {
    Duration::from_secs((config.media_unreferenced_secs / 2).clamp(1, 3600))
}

fn media_limits(config: &Config) -> MediaLimits {
    MediaLimits {
        max_file_bytes: config.media_max_file_bytes,
        quota_bytes: config.media_quota_bytes,
        types: config.media_type_list(),
        unreferenced_ms: i64::try_from(config.media_unreferenced_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX),
        uploads_per_user: config.media_uploads_per_user,
        downloads_per_user: config.media_downloads_per_user,
        image: ImageLimits {
            max_pixels: config.media_max_image_pixels,
            ..ImageLimits::default()
        },
    }
}

struct Background {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Background {
    fn start(app: &Arc<App>, node: &Arc<Node>) -> Self {
        let this = Self {
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        // Entries stuck behind a publishing gap are released after `bus::node::GAP_TIMEOUT`
        // (room messages after `ROOM_GAP_TIMEOUT`).
        let n = Arc::clone(node);
        this.every(SWEEP_EVERY, move || n.sweep());
        // Idle rate-limiter state is pruned.
        let a = Arc::clone(app);
        this.every(PRUNE_EVERY, move || a.messaging.prune());
        // Presence decided elsewhere (a dead node's users going offline, say) is told.
        if let Some(changes) = app.bus.presence_changes() {
            let a = Arc::clone(app);
            this.forward(changes, move |(user, online)| {
                let a = Arc::clone(&a);
                async move { a.social.presence_changed(user, online).await }
            });
        }
        // Group appends other nodes hand to this one, their writer, are appended here.
        app.bus.serve_appends(Arc::clone(&app.messaging) as _);
        // A dead node's chatroom occupants are no longer counted.
        if let Some(deaths) = app.bus.node_deaths() {
            let a = Arc::clone(app);
            this.forward(deaths, move |node| {
                a.rooms.node_gone(node);
                std::future::ready(())
            });
        }
        // Media files sent nowhere are removed once old enough.
        let a = Arc::clone(app);
        let stop = this.stop.clone();
        let period = media_sweep_period(&app.config);
        this.tasks.spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => {
                        // A long sweep (a large bucket listed) ends with the server.
                        let swept = tokio::select! {
                            () = stop.cancelled() => return,
                            swept = a.media.sweep() => swept,
                        };
                        match swept {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(removed = n, "media sweep"),
                            Err(e) => tracing::warn!(error = %e.message, "media sweep failed"),
                        }
                    }
                }
            }
        });
        // Chatroom occupancy changes go out, coalesced, once per interval.
        let a = Arc::clone(app);
        this.every(app.rooms.occupancy_interval(), move || {
            a.rooms.flush_occupancy();
        });
        this.tasks.close();
        this
    }

    /// Hands what `rx` yields to `handle`, one at a time, until stopped or `rx` ends.
    fn forward<T, F>(
        &self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
        handle: impl Fn(T) -> F + Send + 'static,
    ) where
        T: Send + 'static,
        F: Future<Output = ()> + Send,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    item = rx.recv() => match item {
                        Some(item) => handle(item).await,
                        None => return,
                    },
                }
            }
        });
    }

    /// Runs `tick` every `period` until stopped.
    fn every(&self, period: Duration, tick: impl Fn() + Send + 'static) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => tick(),
                }
            }
        });
    }

    async fn stop(self) {
        self.stop.cancel();
        self.tasks.wait().await;
    }
}
