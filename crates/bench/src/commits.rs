//! What each node's store did during the measured phase, from the node's `GET /metrics`:
//! commits, appends per commit and the mean commit time (`banter_commit_seconds`,
//! `banter_commit_batch_size`), and, in a cluster, the appends it forwarded to a group's writer
//! on another node and their mean round trip (`banter_append_forward_seconds`). A run's latency
//! counts from when each send was meant to go; these say where a send itself waited.

use serde::Serialize;

use crate::measure;
use crate::target::Target;

/// The counters of one node at one moment (totals since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    commits: f64,
    commit_seconds: f64,
    appends: f64,
    forwards: f64,
    forward_seconds: f64,
}

/// What one node's store did between two readings.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStore {
    /// The node.
    pub addr: String,
    /// Transactions committed.
    pub commits: u64,
    /// Appends they carried, on average.
    pub appends_per_commit: Option<f64>,
    /// Mean time of a commit, ms.
    pub commit_ms_mean: Option<f64>,
    /// Appends forwarded to another node's writer.
    pub forwards: u64,
    /// Mean time from forwarding to the writer's answer, ms.
    pub forward_ms_mean: Option<f64>,
}

/// Reads every node's counters (`None` for a node whose `/metrics` did not answer).
pub async fn read(target: &Target) -> Vec<Option<Counters>> {
    let mut all = Vec::with_capacity(target.addrs.len());
    for addr in &target.addrs {
        let text = banter_client::Api::new(addr.clone())
            .get_text("/metrics")
            .await;
        all.push(match text {
            Ok((200, body)) => Some(parse(&body)),
            _ => None,
        });
    }
    all
}

/// What each node did from `before` to `after` (nodes unread at either end are left out).
pub fn since(
    target: &Target,
    before: &[Option<Counters>],
    after: &[Option<Counters>],
) -> Vec<NodeStore> {
    let mean_ms = |seconds: f64, n: f64| (n > 0.0).then(|| seconds * 1000.0 / n);
    target
        .addrs
        .iter()
        .zip(before.iter().zip(after))
        .filter_map(|(addr, (b, a))| {
            let (b, a) = ((*b)?, (*a)?);
            let commits = a.commits - b.commits;
            let forwards = a.forwards - b.forwards;
            Some(NodeStore {
                addr: addr.clone(),
                commits: commits as u64,
                appends_per_commit: (commits > 0.0).then(|| (a.appends - b.appends) / commits),
                commit_ms_mean: mean_ms(a.commit_seconds - b.commit_seconds, commits),
                forwards: forwards as u64,
                forward_ms_mean: mean_ms(a.forward_seconds - b.forward_seconds, forwards),
            })
        })
        .collect()
}

/// Picks the counters out of Prometheus text (0 for one it lacks).
fn parse(text: &str) -> Counters {
    let m = |name: &str| measure::metric(text, name).unwrap_or(0.0);
    Counters {
        commits: m("banter_commit_seconds_count"),
        commit_seconds: m("banter_commit_seconds_sum"),
        appends: m("banter_commit_batch_size_sum"),
        forwards: m("banter_append_forward_seconds_count"),
        forward_seconds: m("banter_append_forward_seconds_sum"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sums_and_counts_and_nothing_else() {
        let text = "# TYPE banter_commit_seconds histogram\n\
            banter_commit_seconds_bucket{le=\"0.005\"} 3\n\
            banter_commit_seconds_sum 0.25\n\
            banter_commit_seconds_count 100\n\
            banter_commit_batch_size_sum 250\n\
            banter_append_forward_seconds_sum 0.5\n\
            banter_append_forward_seconds_count 50\n\
            banter_connections 7\n";
        let c = parse(text);
        assert_eq!(
            c,
            Counters {
                commits: 100.0,
                commit_seconds: 0.25,
                appends: 250.0,
                forwards: 50.0,
                forward_seconds: 0.5,
            }
        );
    }
}
