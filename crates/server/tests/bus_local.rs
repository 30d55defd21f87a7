//! The Bus delivery suite on the in-process bus (one node).

use std::sync::Arc;

use async_trait::async_trait;
use banter_server::bus::Bus;
use banter_server::bus::LocalBus;
use banter_server::bus::node::Node;
use banter_server::bus::suite::Harness;

struct Local;

#[async_trait]
impl Harness for Local {
    fn max_nodes(&self) -> usize {
        1
    }

    async fn open(&self, nodes: &[Arc<Node>]) -> Vec<Arc<dyn Bus>> {
        nodes
            .iter()
            .map(|node| Arc::new(LocalBus::new(Arc::clone(node))) as Arc<dyn Bus>)
            .collect()
    }
}

banter_server::bus_delivery_suite!(Local);
