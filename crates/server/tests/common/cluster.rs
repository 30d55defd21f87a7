//! A cluster for tests: `n` real servers in this process, on one PostgreSQL scratch database and
//! the shared NATS under a fresh cluster name, each on its own loopback port. What the cluster
//! keeps on NATS and the database are removed when it drops.

use banter_server::Config;

use super::postgres::{Database, admin_url};
use super::{TestServer, nats, start_with};

/// A running cluster.
pub struct TestCluster {
    pub nodes: Vec<TestServer>,
    pub name: String,
    pub db: Database,
    /// On the shared NATS (whose buckets are removed at the end), not on a test's own.
    shared: bool,
}

impl TestCluster {
    /// Starts `n` nodes with the test configuration.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, |_| {}).await
    }

    /// Starts `n` nodes (at the same moment) with the test configuration adjusted by `adjust`.
    pub async fn start_with(n: usize, adjust: impl Fn(&mut Config) + Clone) -> Self {
        Self::start_on(&nats::url(), n, adjust).await
    }

    /// Starts `n` nodes on the NATS at `nats`.
    pub async fn start_on(nats: &str, n: usize, adjust: impl Fn(&mut Config) + Clone) -> Self {
        let db = Database::create(&admin_url()).await;
        let name = nats::fresh_cluster();
        let starts = (0..n).map(|_| {
            let (url, name, adjust) = (db.url.clone(), name.clone(), adjust.clone());
            start_with(move |c| {
                c.store = url.as_str().into();
                c.bus = nats.into();
                c.cluster = name;
                adjust(c);
            })
        });
        let nodes = futures_util::future::join_all(starts).await;
        let shared = nats == nats::url();
        Self {
            nodes,
            name,
            db,
            shared,
        }
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i % self.nodes.len()]
    }

    /// Every node's address, for clients that fail over.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Stops every node gracefully.
    pub async fn stop(mut self) {
        for node in std::mem::take(&mut self.nodes) {
            node.stop().await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.shared {
            nats::remove_clusters(vec![self.name.clone()]);
        }
    }
}
