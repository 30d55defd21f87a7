//! Which server a [`Messenger`](crate::Messenger) tries next, and how long it waits first.
//!
//! A messenger is given a list of equivalent endpoints: the nodes of a cluster, which share one
//! database, so any of them serves the same account and history (or a single address). It stays
//! on one endpoint while that works. When the connection drops, or a connect fails in a way
//! another node might not, it moves to the next endpoint in the list (round robin, starting
//! after the one that failed) at once; only when every endpoint has failed in a row does it
//! wait, with exponential backoff and jitter, before the next round. Waiting per round rather
//! than per attempt means a dead node costs one refused connect, not a delay; the jitter keeps
//! the clients of a node that went away from coming back to the others in lockstep.
//!
//! This module only decides; it does no I/O and owns no connection.

use std::time::Duration;

use crate::ClientError;

/// First wait after a full round of failed endpoints; doubles up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest wait between two rounds.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The endpoint list with the position and backoff state of one messenger.
#[derive(Debug)]
pub(crate) struct Endpoints {
    list: Vec<String>,
    current: usize,
    /// Failed attempts in a row since the last successful connect.
    failures: usize,
    /// The wait after the next full round of failures (before jitter).
    backoff: Duration,
}

impl Endpoints {
    /// Starts at the first endpoint; an empty list is refused.
    pub(crate) fn new<S: AsRef<str>>(list: &[S]) -> Result<Self, ClientError> {
        if list.is_empty() {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no server endpoint given",
            )));
        }
        Ok(Self {
            list: list.iter().map(|s| s.as_ref().to_owned()).collect(),
            current: 0,
            failures: 0,
            backoff: BACKOFF_START,
        })
    }

    /// The endpoint connected to, or the one the next attempt goes to.
    pub(crate) fn current(&self) -> &str {
        &self.list[self.current]
    }

    /// Every endpoint, in the order they are tried.
    pub(crate) fn all(&self) -> &[String] {
        &self.list
    }

    /// How many endpoints there are.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// A connect to the current endpoint worked: the next failure starts a fresh round.
    pub(crate) fn connected(&mut self) {
        self.failures = 0;
        self.backoff = BACKOFF_START;
    }

    /// A working connection dropped: the next attempt goes to the next endpoint, at once.
    pub(crate) fn dropped(&mut self) {
        self.advance();
    }

    /// An attempt at the current endpoint failed: moves to the next one, and says how long to
    /// wait first when this failure completed a round of the whole list.
    pub(crate) fn failed(&mut self) -> Option<Duration> {
        self.advance();
        self.failures += 1;
        if !self.failures.is_multiple_of(self.list.len()) {
            return None;
        }
        let wait = jittered(self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        Some(wait)
    }

    fn advance(&mut self) {
        self.current = (self.current + 1) % self.list.len();
    }
}

/// "Equal jitter": half of `backoff` for sure, plus a random part of the other half, so the
/// wait never collapses to nothing yet clients spread out.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(rand::random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_is_refused() {
        let none: [&str; 0] = [];
        assert!(Endpoints::new(&none).is_err());
    }

    #[test]
    fn failures_go_round_robin_and_wait_only_after_a_full_round() {
        let mut e = Endpoints::new(&["a", "b", "c"]).unwrap();
        assert_eq!(e.current(), "a");
        assert_eq!(e.failed(), None);
        assert_eq!(e.current(), "b");
        assert_eq!(e.failed(), None);
        assert_eq!(e.current(), "c");
        let first = e.failed().expect("a full round waits");
        assert!(
            first >= BACKOFF_START / 2 && first <= BACKOFF_START,
            "{first:?}"
        );
        assert_eq!(e.current(), "a");
        assert_eq!((e.failed(), e.failed()), (None, None));
        let second = e.failed().expect("the next round waits longer");
        assert!(
            second >= BACKOFF_START && second <= BACKOFF_START * 2,
            "{second:?}"
        );
    }

    #[test]
    fn a_drop_moves_on_at_once_and_a_connect_resets_the_backoff() {
        let mut e = Endpoints::new(&["a", "b"]).unwrap();
        for _ in 0..20 {
            e.failed();
        }
        assert_eq!(e.backoff, BACKOFF_MAX);
        e.connected();
        assert_eq!(e.backoff, BACKOFF_START);
        assert_eq!(e.current(), "a");
        e.dropped();
        assert_eq!(e.current(), "b");
        // After the drop, b failing is not yet a full round; a failing too is.
        assert_eq!(e.failed(), None);
        assert_eq!(e.current(), "a");
        assert!(e.failed().is_some());
        assert_eq!(e.current(), "b");
    }

    #[test]
    fn one_endpoint_waits_after_every_failure() {
        let mut e = Endpoints::new(&["only"]).unwrap();
        assert!(e.failed().is_some());
        assert!(e.failed().is_some());
        assert_eq!(e.current(), "only");
        e.dropped();
        assert_eq!(e.current(), "only");
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(400));
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }
}
