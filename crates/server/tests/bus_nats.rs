//! The Bus delivery suite on NATS: clusters of three nodes on the NATS server running on this
//! machine (`BANTER_TEST_NATS`), each cluster under a fresh name.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use banter_server::bus::Bus;
use banter_server::bus::nats::NatsBus;
use banter_server::bus::node::Node;
use banter_server::bus::suite::{Harness, MAX_PER_USER};

use common::nats;

/// Forms NATS clusters and removes them when the check is over.
#[derive(Default)]
struct Nats {
    clusters: Mutex<Vec<String>>,
}

#[async_trait]
impl Harness for Nats {
    fn max_nodes(&self) -> usize {
        3
    }

    async fn open(&self, nodes: &[Arc<Node>]) -> Vec<Arc<dyn Bus>> {
        let cluster = nats::fresh_cluster();
        self.clusters
            .lock()
            .expect("harness lock")
            .push(cluster.clone());
        let url = nats::url();
        let mut buses: Vec<Arc<dyn Bus>> = Vec::new();
        for node in nodes {
            let bus = NatsBus::connect(&url, &cluster, Arc::clone(node), MAX_PER_USER)
                .await
                .unwrap_or_else(|e| {
                    panic!("{e}\nstart NATS with `scripts/services.sh` (or set BANTER_TEST_NATS)")
                });
            buses.push(Arc::new(bus));
        }
        buses
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        nats::remove_clusters(std::mem::take(
            &mut *self.clusters.lock().expect("harness lock"),
        ));
    }
}

banter_server::bus_delivery_suite!(Nats::default());
