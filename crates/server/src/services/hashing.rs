//! The password hashing pool: a fixed number of worker threads behind a bounded queue.
//!
//! Argon2 is deliberately expensive in memory (19 MiB by default) and time, and any stranger can
//! ask for it (a wrong-password login costs as much as a right one). So hashing is a bounded
//! resource: `password_hash_workers` threads, each keeping one Argon2 memory block for good and
//! reusing it for every job, and a queue of at most `password_hash_queue` waiting jobs in front
//! of them. A job that finds the queue full is refused at once with `busy` (retryable), so the
//! memory hashing can take is `workers × password_memory_kib` plus a queue of small jobs,
//! whatever the load.
//!
//! The pool owns no async task: the workers are plain threads that end when the pool (the only
//! sender) is dropped. It never decides policy (throttling lives in [`super::throttle`]).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use banter_protocol::ErrorCode;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// What a client refused with `busy` is told to wait (the queue drains in well under that).
pub(crate) const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Length of the raw Argon2 output stored in new PHC strings (argon2's default).
const OUTPUT_LEN: usize = 32;
/// Bytes of random salt for a new hash.
const SALT_LEN: usize = 16;
/// Nice value of the hashing threads (Linux). Hashing is the work a stranger can ask for; when
/// it competes for the CPU with messaging, messaging wins, and logins wait (or are refused
/// `busy`) instead of every user's pings and sends.
const HASH_THREAD_NICE: i32 = 10;

/// How the pool is sized and what it hashes with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolConfig {
    /// Worker threads (0: one per core).
    pub(crate) workers: usize,
    /// Jobs that may wait for a worker.
    pub(crate) queue: usize,
    /// Argon2id memory cost of new hashes, in KiB.
    pub(crate) memory_kib: u32,
    /// Argon2id iterations of new hashes.
    pub(crate) iterations: u32,
}

/// The pool. Dropping it ends the workers once they finish the job in hand.
pub(crate) struct HashPool {
    jobs: SyncSender<Job>,
    metrics: Arc<Metrics>,
    workers: usize,
}

/// One piece of work and where its answer goes.
struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done>>,
}

enum Work {
    /// A new PHC string for this password.
    Hash(String),
    /// Whether the password matches the PHC string.
    Verify { password: String, phc: String },
}

enum Done {
    Hashed(String),
    Verified(bool),
}

impl HashPool {
    /// Starts the workers.
    pub(crate) fn start(config: PoolConfig, metrics: Arc<Metrics>) -> Self {
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let params = Params::new(config.memory_kib, config.iterations, 1, Some(OUTPUT_LEN))
            .expect("argon2 parameters validated by Config");
        let (jobs, rx) = std::sync::mpsc::sync_channel(config.queue);
        // std's Receiver is single-consumer: the workers take turns holding it. A worker
        // waiting for the lock is idle anyway, and none holds it while hashing.
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..workers {
            let worker = Worker {
                jobs: Arc::clone(&rx),
                params: params.clone(),
                memory: Vec::new(),
                metrics: Arc::clone(&metrics),
            };
            std::thread::Builder::new()
                .name(format!("banter-hash-{n}"))
                .spawn(move || worker.run())
                .expect("the OS can start a hashing thread");
        }
        Self {
            jobs,
            metrics,
            workers,
        }
    }

    /// How many workers hash at most at once.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// A PHC string for `password`, with the configured parameters and a fresh salt.
    pub(crate) async fn hash(&self, password: String) -> Result<String> {
        match self.submit(Work::Hash(password)).await? {
            Done::Hashed(phc) => Ok(phc),
            Done::Verified(_) => Err(internal(&"hash job answered as a verification")),
        }
    }

    /// Whether `password` matches `phc` (a malformed stored hash never matches).
    pub(crate) async fn verify(&self, password: String, phc: String) -> Result<bool> {
        match self.submit(Work::Verify { password, phc }).await? {
            Done::Verified(ok) => Ok(ok),
            Done::Hashed(_) => Err(internal(&"verification answered as a hash")),
        }
    }

    async fn submit(&self, work: Work) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        // Counted before the send, so that the worker's decrement can never come first.
        self.metrics.hash_queued();
        match self.jobs.try_send(Job { work, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.hash_unqueued();
                self.metrics.hash_refused();
                return Err(Error::new(
                    ErrorCode::Busy,
                    "too many password checks are waiting; retry shortly",
                )
                .retry_after(BUSY_RETRY_AFTER));
            }
            Err(TrySendError::Disconnected(_)) => {
                self.metrics.hash_unqueued();
                return Err(internal(&"the hashing workers are gone"));
            }
        }
        answer
            .await
            .map_err(|_| internal(&"a hashing worker dropped a job"))?
    }
}

/// One worker thread and the memory block it keeps.
struct Worker {
    jobs: Arc<Mutex<Receiver<Job>>>,
    params: Params,
    /// Allocated on the first job, then reused by every later one.
    memory: Vec<Block>,
    metrics: Arc<Metrics>,
}

/// Counts this worker as hashing while it lives.
struct Running<'a>(&'a Metrics);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.hash_finished();
    }
}

impl Worker {
    fn run(mut self) {
        lower_priority();
        loop {
            let job = {
                let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
                match jobs.recv() {
                    Ok(job) => job,
                    // The pool was dropped: the server is gone.
                    Err(_) => return,
                }
            };
            self.metrics.hash_unqueued();
            if job.reply.is_closed() {
                // The client went away while the job waited: nobody needs the answer.
                continue;
            }
            let metrics = Arc::clone(&self.metrics);
            metrics.hash_started();
            let running = Running(&metrics);
            let done = match job.work {
                Work::Hash(password) => self.hash(&password).map(Done::Hashed),
                Work::Verify { password, phc } => Ok(Done::Verified(self.verify(&password, &phc))),
            };
            drop(running);
            // A caller that went away meanwhile has no use for the answer.
            _ = job.reply.send(done);
        }
    }

    /// The block for `params`, reusing the worker's own when it is big enough. A stored hash
    /// made with more memory than configured (the operator lowered `password_memory_kib`) gets
    /// a block of its own for that one job.
    fn blocks(&mut self, params: &Params) -> BlockBuf<'_> {
        let own = self.params.block_count();
        let need = params.block_count();
        if need > own {
            return BlockBuf::OneOff(vec![Block::new(); need]);
        }
        if self.memory.len() < own {
            self.memory = vec![Block::new(); own];
        }
        BlockBuf::Own(&mut self.memory[..need])
    }

    fn hash(&mut self, password: &str) -> Result<String> {
        let mut salt = [0u8; SALT_LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
        let params = self.params.clone();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = [0u8; OUTPUT_LEN];
        let mut blocks = self.blocks(&params);
        argon
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks.get())
            .map_err(|e| internal(&e))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| internal(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| internal(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Recomputes the raw hash with the PHC string's own algorithm, version, parameters and
    /// salt, and compares it in constant time (`Output`'s equality is).
    fn verify(&mut self, password: &str, phc: &str) -> bool {
        let Some((argon, params, salt, expected)) = parse_phc(phc) else {
            tracing::warn!("a stored password hash is malformed");
            return false;
        };
        let mut out = [0u8; Output::MAX_LENGTH];
        let out = &mut out[..expected.len()];
        let mut blocks = self.blocks(&params);
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt.as_bytes(), out, blocks.get())
            .is_ok()
            && Output::new(out).is_ok_and(|computed| computed == expected)
    }
}

/// Memory for one job: the worker's own block or a one-off one.
enum BlockBuf<'a> {
    Own(&'a mut [Block]),
    OneOff(Vec<Block>),
}

impl BlockBuf<'_> {
    fn get(&mut self) -> &mut [Block] {
        match self {
            Self::Own(b) => b,
            Self::OneOff(v) => v,
        }
    }
}

/// A salt's raw bytes (at most 64, the PHC limit).
struct RawSalt {
    bytes: [u8; 64],
    len: usize,
}

impl RawSalt {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The hasher, parameters, salt and expected output a PHC string names.
fn parse_phc(phc: &str) -> Option<(Argon2<'static>, Params, RawSalt, Output)> {
    let parsed = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let mut salt = RawSalt {
        bytes: [0; 64],
        len: 0,
    };
    salt.len = parsed.salt?.decode_b64(&mut salt.bytes).ok()?.len();
    let expected = parsed.hash?;
    let argon = Argon2::new(algorithm, version, params.clone());
    Some((argon, params, salt, expected))
}

/// Gives the calling thread [`HASH_THREAD_NICE`] (Linux applies `setpriority` to one thread
/// when given its thread id). Failing is harmless: hashing is still bounded, only not yielding.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASH_THREAD_NICE)
    {
        tracing::debug!(error = %e, "cannot lower the hashing thread's priority");
    }
}

fn internal(e: &dyn std::fmt::Display) -> Error {
    tracing::error!(error = %e, "password hashing failed");
    Error::new(ErrorCode::Internal, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    fn pool(workers: usize, queue: usize) -> HashPool {
        HashPool::start(
            PoolConfig {
                workers,
                queue,
                memory_kib: 64,
                iterations: 1,
            },
            Arc::new(Metrics::default()),
        )
    }

    #[tokio::test]
    async fn hashes_verify_both_ways_with_the_argon2_crate() {
        let pool = pool(1, 4);
        let ours = pool.hash("hunter22".to_owned()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"hunter22", &parsed)
                .is_ok()
        );
        assert!(pool.verify("hunter22".into(), ours.clone()).await.unwrap());
        assert!(!pool.verify("hunter23".into(), ours).await.unwrap());
        // A hash stored before the pool existed (argon2's own PHC, other parameters).
        let params = Params::new(128, 2, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"old secret", &salt)
            .unwrap()
            .to_string();
        assert!(
            pool.verify("old secret".into(), theirs.clone())
                .await
                .unwrap()
        );
        assert!(!pool.verify("old secrex".into(), theirs).await.unwrap());
        assert!(!pool.verify("x".into(), "not a phc".into()).await.unwrap());
    }
}
