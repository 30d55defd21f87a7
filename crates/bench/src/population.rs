//! Creating the users and connections a scenario needs, concurrently but bounded.

use std::sync::Arc;

use banter_client::{Api, Connection};
use futures_util::{StreamExt as _, stream};
use tokio::sync::Semaphore;

/// Password of every bench user.
const PASSWORD: &str = "bench password 123";
/// Account calls or connection attempts in flight at once.
const PARALLEL: usize = 32;

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct BenchUser {
    /// User id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Bearer token of the first session.
    pub token: String,
}

/// A run-unique username prefix, so runs against a long-lived server do not collide.
pub fn prefix(scenario: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("b{}{nanos:x}", &scenario[..1])
}

/// Registers and logs in `n` users named `<prefix>-<i>`.
pub async fn users(api: &Api, prefix: &str, n: usize) -> anyhow::Result<Vec<BenchUser>> {
    let results: Vec<anyhow::Result<BenchUser>> = stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let username = format!("{prefix}-{i}");
            async move {
                let user = api.register(&username, PASSWORD).await?;
                let login = api.login(&username, PASSWORD, Some("bench")).await?;
                Ok(BenchUser {
                    id: user.id,
                    username,
                    token: login.token,
                })
            }
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Logs `user` in again, as another device.
pub async fn second_session(api: &Api, user: &BenchUser) -> anyhow::Result<String> {
    Ok(api
        .login(&user.username, PASSWORD, Some("bench sender"))
        .await?
        .token)
}

/// Opens one connection per token, in order.
pub async fn connect_all(addr: &str, tokens: &[String]) -> anyhow::Result<Vec<Connection>> {
    connect_spread(&[addr.to_owned()], tokens, 0).await
}

/// Opens one connection per token, in order, token `i` on node `(i + offset) % nodes` (round
/// robin over a cluster's nodes).
pub async fn connect_spread(
    nodes: &[String],
    tokens: &[String],
    offset: usize,
) -> anyhow::Result<Vec<Connection>> {
    let limit = Arc::new(Semaphore::new(PARALLEL));
    let results: Vec<anyhow::Result<Connection>> = stream::iter(tokens.iter().cloned().enumerate())
        .map(|(i, token)| {
            let addr = nodes[(i + offset) % nodes.len()].clone();
            let limit = Arc::clone(&limit);
            async move {
                let _permit = limit.acquire().await?;
                Ok(Connection::connect(&addr, &token).await?)
            }
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}
