//! What a bench-started PostgreSQL node or cluster runs on: a fresh database created on the
//! `--store` server for this run (so populations never collide) and, for a cluster, a fresh
//! cluster name on the `--bus` NATS. Both are removed when the run ends.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use tokio_postgres::NoTls;

/// `--store` when `--nodes` > 1 and none is given: the local PostgreSQL's admin URL.
pub const DEFAULT_STORE: &str = "postgres://root@127.0.0.1:5432/test";
/// `--bus` default: the local NATS.
pub const DEFAULT_BUS: &str = "nats://127.0.0.1:4222";

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A database (and cluster name) of this run's own.
pub struct Scratch {
    admin: String,
    /// The database's name.
    pub database: String,
    /// The URL the nodes get as `--store`.
    pub url: String,
    /// The NATS URL and cluster name, for more than one node.
    pub cluster: Option<(String, String)>,
}

/// Replaces the database name of a `postgres://…/db[?query]` URL.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, rest) = url
        .rsplit_once('/')
        .filter(|(base, _)| base.contains("://") && !base.ends_with('/'))
        .with_context(|| format!("--store must be postgres://user@host:port/db, not {url}"))?;
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok(format!("{base}/{name}{query}"))
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connect to PostgreSQL at {url}"))?;
    tokio::spawn(async move {
        _ = connection.await;
    });
    Ok(client)
}

impl Scratch {
    /// Creates a database on the server at `admin`; with `bus`, also picks a cluster name
    /// (`bench-<pid>-<n>`) and checks that the NATS answers.
    pub async fn create(admin: &str, bus: Option<&str>) -> anyhow::Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let cluster = match bus {
            Some(url) => {
                async_nats::connect(url)
                    .await
                    .with_context(|| format!("connect to NATS at {url}"))?;
                Some((url.to_owned(), format!("bench-{pid}-{n}")))
            }
            None => None,
        };
        let database = format!("banter_bench_{pid}_{n}");
        // The URL first: a bad one must not leave a database nobody drops.
        let url = with_database(admin, &database)?;
        connect(admin)
            .await?
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .with_context(|| format!("create database {database} on {admin}"))?;
        Ok(Self {
            url,
            admin: admin.to_owned(),
            database,
            cluster,
        })
    }

    /// The flags that put a node on this database (and cluster).
    pub fn node_flags(&self) -> Vec<String> {
        let mut flags = vec![format!("--store={}", self.url)];
        if let Some((bus, name)) = &self.cluster {
            flags.push(format!("--bus={bus}"));
            flags.push(format!("--cluster={name}"));
        }
        flags
    }

    /// Drops the database and the cluster's buckets on NATS (call after the nodes
    /// stopped). Runs on a thread of its own, so that it can be called from `Drop` inside a
    /// runtime.
    pub fn remove(&self) {
        let (admin, database) = (self.admin.clone(), self.database.clone());
        let cluster = self.cluster.clone();
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                if let Some((bus, name)) = cluster {
                    let js = async_nats::jetstream::new(async_nats::connect(&bus).await?);
                    // The server's buckets: presence (`banter_server::bus::nats::bucket`) and
                    // the chatrooms' counters.
                    for bucket in ["presence", "rooms"] {
                        _ = js.delete_stream(format!("KV_{name}-{bucket}")).await;
                    }
                }
                connect(&admin)
                    .await?
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop database {}: {e:#}", self.database),
            Err(_) => eprintln!("could not drop database {}: panicked", self.database),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_replaced() {
        let url = super::with_database("postgres://root@127.0.0.1:5432/test", "b1").unwrap();
        assert_eq!(url, "postgres://root@127.0.0.1:5432/b1");
        let url = super::with_database("postgres://u@h/db?sslmode=disable", "b2").unwrap();
        assert_eq!(url, "postgres://u@h/b2?sslmode=disable");
        assert!(super::with_database("postgres://u@h", "b3").is_err());
    }
}
