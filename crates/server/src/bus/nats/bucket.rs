//! What the presence and room-counter buckets share: opening a JetStream key-value bucket on
//! NATS 2.9, and one compare-and-set write.

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self};
use bytes::Bytes;

/// How many times opening a bucket tries to get or create its stream.
const CREATE_TRIES: u32 = 3;

/// Opens (creating it if needed) the key-value bucket `name`, one value per key. `limits` sets
/// what else the stream bounds (age, count, discard policy).
///
/// The bucket's stream is created here with the settings of a key-value bucket (one value per
/// key, rollups, direct gets, no deletes of messages) rather than by async-nats'
/// `create_key_value`, which first reads account fields that NATS 2.9 does not send.
pub(super) async fn open(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    limits: stream::Config,
) -> Result<kv::Store, async_nats::Error> {
    let config = stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        ..limits
    };
    // Nodes starting together race to create it: NATS 2.9 refuses the loser's create ("subjects
    // overlap with an existing stream"), and the stream is there to get on the next try.
    let mut tries = 1;
    while let Err(e) = js.get_or_create_stream(config.clone()).await {
        if tries == CREATE_TRIES {
            return Err(e.into());
        }
        tries += 1;
    }
    Ok(js.get_key_value(name).await?)
}

/// Why a compare-and-set write did not happen.
pub(super) enum Refused {
    /// Someone wrote the key first: read it again.
    Conflict,
    /// NATS refused or could not be reached.
    Failed(String),
}

/// Writes `value` to `key` if its revision is still `revision` (`None`: if the key does not
/// exist); returns the new revision.
pub(super) async fn write(
    kv: &kv::Store,
    key: &str,
    value: Bytes,
    revision: Option<u64>,
) -> Result<u64, Refused> {
    match revision {
        None => kv.create(key, value).await.map_err(|e| match e.kind() {
            CreateErrorKind::AlreadyExists => Refused::Conflict,
            _ => Refused::Failed(e.to_string()),
        }),
        Some(r) => kv.update(key, value, r).await.map_err(|e| match e.kind() {
            UpdateErrorKind::WrongLastRevision => Refused::Conflict,
            _ => Refused::Failed(e.to_string()),
        }),
    }
}
