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

/// A node's connections that vanished from the presence bucket (as when the other nodes judged
/// it dead while NATS was away from it alone) are counted again by its audit, and their user
/// is reported online again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_counts_again_what_the_others_removed() {
    use banter_server::bus::nats::presence::{HEARTBEAT, NODE_TIMEOUT};
    use banter_server::metrics::Metrics;
    use banter_server::outbox::Outbox;
    use banter_server::registry::{ConnHandle, ConnId, Kick, NodeId, Registry};

    struct NoCaches;
    impl banter_server::bus::node::Caches for NoCaches {
        fn invalidate(&self, _: &banter_server::bus::Invalidation) {}
        fn invalidate_all(&self) {}
    }

    let harness = Nats::default();
    let metrics = Arc::new(Metrics::default());
    let nodes: Vec<Arc<Node>> = (0..2)
        .map(|_| {
            Arc::new(Node::new(
                NodeId::random(),
                Registry::new(MAX_PER_USER, Arc::clone(&metrics)),
                Arc::new(NoCaches),
            ))
        })
        .collect();
    let buses = harness.open(&nodes).await;
    let mut changes = buses[0]
        .presence_changes()
        .expect("the NATS bus reports changes");
    let user = 7;
    let handle = ConnHandle {
        conn: ConnId {
            node: nodes[0].id(),
            local: 1,
        },
        session: 1,
        queue: Arc::new(Outbox::new(8)),
        kick: Arc::new(Kick::default()),
    };
    assert!(buses[0].attach(user, handle).await.unwrap().first);
    // Someone else empties the user's entry.
    let cluster = harness.clusters.lock().unwrap()[0].clone();
    let js = async_nats::jetstream::new(nats::connect().await);
    let kv = js
        .get_key_value(banter_server::bus::nats::bucket(&cluster))
        .await
        .expect("the presence bucket");
    kv.put(user.to_string(), bytes::Bytes::new()).await.unwrap();
    let deadline = tokio::time::Instant::now() + NODE_TIMEOUT + HEARTBEAT * 12;
    while buses[1].connections(user) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removal never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let change = tokio::time::timeout_at(deadline, changes.recv())
        .await
        .expect("an audit within 10 heartbeats");
    assert_eq!(change, Some((user, true)), "counted again, and said so");
    while buses[1].connections(user) != 1 {
        assert!(tokio::time::Instant::now() < deadline, "not counted again");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Nodes of a new cluster that start at the same moment all open its buckets (their creates
/// race on NATS), however many rounds of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_all_join() {
    use banter_server::bus::node::Caches;
    use banter_server::metrics::Metrics;
    use banter_server::registry::{NodeId, Registry};

    struct NoCaches;
    impl Caches for NoCaches {
        fn invalidate(&self, _: &banter_server::bus::Invalidation) {}
        fn invalidate_all(&self) {}
    }

    let harness = Nats::default();
    let metrics = Arc::new(Metrics::default());
    let url = nats::url();
    for _ in 0..5 {
        let cluster = nats::fresh_cluster();
        harness.clusters.lock().unwrap().push(cluster.clone());
        let joins = (0..6).map(|_| {
            let node = Arc::new(Node::new(
                NodeId::random(),
                Registry::new(MAX_PER_USER, Arc::clone(&metrics)),
                Arc::new(NoCaches),
            ));
            NatsBus::connect(&url, &cluster, node, MAX_PER_USER)
        });
        for joined in futures_util::future::join_all(joins).await {
            let bus = joined.unwrap_or_else(|e| panic!("a node starting with five others: {e}"));
            bus.close().await;
        }
    }
}
