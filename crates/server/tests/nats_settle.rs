//! A subscription is in force once `settle` returns: what another client publishes right after
//! it reaches the subscriber, round after round, on the NATS running on this machine.
//!
//! `Client::flush` in its place only writes the socket; under load the other client's message
//! can reach the server first and miss the subscription (1 round in 5,500 here, with six busy
//! loops on the two cores), which is how a node once missed an invalidation.

mod common;

use std::time::Duration;

use banter_server::bus::nats::settle;
use futures_util::StreamExt;

use common::nats;

const ROUNDS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_in_force_once_settled() {
    let (subscriber, publisher) = (nats::connect().await, nats::connect().await);
    let prefix = nats::fresh_cluster();
    for round in 0..ROUNDS {
        let subject = format!("{prefix}.settle.{round}");
        let mut sub = subscriber.subscribe(subject.clone()).await.unwrap();
        settle(&subscriber).await.unwrap();
        publisher.publish(subject, "x".into()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
        assert!(
            matches!(got, Ok(Some(_))),
            "round {round}: the message missed the subscription"
        );
    }
}
