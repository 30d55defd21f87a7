//! A connection's bounded outbound queue of encoded frames.
//!
//! Fan-out pushes without waiting; a full queue is the caller's signal that the connection is a
//! slow consumer. Unlike a channel, an empty outbox holds no allocation: most connections of a
//! large server are idle, and a channel's first block of slots (about 1.5 KB with its header)
//! was a third of an idle connection's memory (docs/BENCHMARKS.md, `connections`).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::Poll;

use bytes::Bytes;
use futures_util::task::AtomicWaker;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds its capacity already.
    Full,
    /// The connection has finished.
    Closed,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    /// The connection's task, waiting for frames.
    waker: AtomicWaker,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    closed: bool,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            capacity: capacity.max(1),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues `frame` and wakes the connection.
    pub fn push(&self, frame: Bytes) -> Result<(), Refused> {
        {
            let mut state = self.state.lock().expect("outbox lock");
            if state.closed {
                return Err(Refused::Closed);
            }
            if state.frames.len() >= self.capacity {
                return Err(Refused::Full);
            }
            state.frames.push_back(frame);
        }
        self.waker.wake();
        Ok(())
    }

    /// Moves up to `max` frames into `into`, waiting while there are none.
    pub async fn take(&self, into: &mut Vec<Bytes>, max: usize) -> usize {
        poll_fn(|cx| {
            self.waker.register(cx.waker());
            let mut state = self.state.lock().expect("outbox lock");
            if state.frames.is_empty() {
                return Poll::Pending;
            }
            let n = state.frames.len().min(max);
            into.extend(state.frames.drain(..n));
            if state.frames.is_empty() {
                // Drained: give the memory back until the next burst.
                state.frames = VecDeque::new();
            }
            Poll::Ready(n)
        })
        .await
    }

    /// Refuses further frames and drops the queued ones.
    pub fn close(&self) {
        let mut state = self.state.lock().expect("outbox lock");
        state.closed = true;
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_ordered_and_closable() {
        let outbox = Outbox::new(3);
        for i in 0..3u8 {
            outbox.push(Bytes::from(vec![i])).unwrap();
        }
        assert_eq!(outbox.push(Bytes::from_static(b"x")), Err(Refused::Full));
        let mut got = Vec::new();
        assert_eq!(outbox.take(&mut got, 2).await, 2);
        assert_eq!(outbox.take(&mut got, 8).await, 1);
        assert_eq!(got, vec![vec![0u8], vec![1], vec![2]]);
        outbox.push(Bytes::from_static(b"y")).unwrap();
        outbox.close();
        assert_eq!(outbox.push(Bytes::from_static(b"z")), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_push_wakes_the_waiting_taker() {
        let outbox = std::sync::Arc::new(Outbox::new(8));
        let taker = {
            let outbox = std::sync::Arc::clone(&outbox);
            tokio::spawn(async move {
                let mut got = Vec::new();
                outbox.take(&mut got, 8).await;
                got
            })
        };
        // On this single-threaded runtime the yield lets the taker run until it waits.
        tokio::task::yield_now().await;
        assert!(
            !taker.is_finished(),
            "the taker waits while the outbox is empty"
        );
        outbox.push(Bytes::from_static(b"hi")).unwrap();
        assert_eq!(taker.await.unwrap(), vec![Bytes::from_static(b"hi")]);
    }
}
