//! The requests of one connection between being read and being answered.
//!
//! A client may send several requests without waiting for replies. Sends are pipelined: each is
//! admitted (checked, its append queued) in the order read, and its reply waits for its commit
//! while the next ones are admitted, so a burst of sends shares one commit instead of paying one
//! each. Replies leave in request order. Any other request is *exclusive*: it starts only once
//! every earlier reply is out (so it sees their effects) and nothing is admitted while it runs.
//! At most [`DEPTH`] replies wait at once; past that the session stops reading, and TCP pushes
//! back on the client.
//!
//! While the connection's unwritten output is over its high-water mark, the session asks only
//! for the replies of admitted sends (small acks, and their commits must be delivered to others
//! without waiting for this peer to read): an exclusive request neither starts nor runs on
//! (see [`Pipeline::poll_ready`]), so a peer that does not read holds at most the mark plus one
//! bounded reply, however many requests it sent.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use banter_protocol::ClientFrame;
use bytes::Bytes;

use super::dispatch::{Admission, Pending};

/// Most replies waiting for their commits on one connection.
pub(super) const DEPTH: usize = 64;

/// A request being admitted.
pub(super) type Admitting = Pin<Box<dyn Future<Output = Admission> + Send>>;
/// An exclusive request running: its reply and the connection's room list, handed back.
pub(super) type Running = Pin<Box<dyn Future<Output = (Bytes, Vec<String>)> + Send>>;

/// What the pipeline has for the session.
pub(super) enum Ready {
    /// A reply to write.
    Reply(Bytes),
    /// An exclusive request may start now.
    Start(ClientFrame),
    /// The exclusive request finished: its reply, and the room list it borrowed.
    Finished(Bytes, Vec<String>),
    /// A request was admitted; look again.
    Admitted,
}

/// One connection's requests in flight.
#[derive(Default)]
pub(super) struct Pipeline {
    admitting: Option<Admitting>,
    /// Replies in request order, each ready once its commit is.
    waiting: VecDeque<Pending>,
    /// An exclusive request admitted but not started (earlier replies still waiting).
    exclusive: Option<ClientFrame>,
    running: Option<Running>,
}

impl Pipeline {
    /// Whether another request may be read and admitted now.
    pub(super) fn accepts(&self) -> bool {
        self.admitting.is_none()
            && self.exclusive.is_none()
            && self.running.is_none()
            && self.waiting.len() < DEPTH
    }

    /// Starts admitting a request; only when [`Pipeline::accepts`].
    pub(super) fn admit(&mut self, admitting: Admitting) {
        debug_assert!(self.accepts());
        self.admitting = Some(admitting);
    }

    /// Runs the exclusive request handed out by [`Ready::Start`].
    pub(super) fn run(&mut self, running: Running) {
        self.running = Some(running);
    }

    /// The next thing for the session to act on; pending while there is none. Unless
    /// `produce`, an exclusive request is neither started nor polled (it makes no progress, so
    /// builds no reply) until the session asks again with `produce`.
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>, produce: bool) -> Poll<Ready> {
        if let Some(running) = &mut self.running
            && produce
        {
            let (reply, rooms) = std::task::ready!(running.as_mut().poll(cx));
            self.running = None;
            return Poll::Ready(Ready::Finished(reply, rooms));
        }
        if let Some(admitting) = &mut self.admitting
            && let Poll::Ready(admission) = admitting.as_mut().poll(cx)
        {
            self.admitting = None;
            match admission {
                // Behind waiting replies it waits its turn, so replies keep request order.
                Admission::Reply(reply) if self.waiting.is_empty() => {
                    return Poll::Ready(Ready::Reply(reply));
                }
                Admission::Reply(reply) => self.waiting.push_back(Box::pin(async { reply })),
                Admission::Queued(pending) => self.waiting.push_back(pending),
                Admission::Exclusive(frame) => self.exclusive = Some(frame),
            }
            return Poll::Ready(Ready::Admitted);
        }
        // Only the oldest is polled: the writer completes commits whether or not anyone
        // waits, and polling in order is what keeps replies (and deliveries) in order.
        if let Some(head) = self.waiting.front_mut() {
            let reply = std::task::ready!(head.as_mut().poll(cx));
            self.waiting.pop_front();
            return Poll::Ready(Ready::Reply(reply));
        }
        if produce && let Some(frame) = self.exclusive.take() {
            return Poll::Ready(Ready::Start(frame));
        }
        Poll::Pending
    }

    /// Finishes everything in flight, so that committed sends are delivered and an exclusive
    /// request that joined a room gives the list back. Replies are dropped (the connection is
    /// closing); an exclusive request not yet started is dropped unrun.
    pub(super) async fn settle(&mut self) -> Option<Vec<String>> {
        let mut rooms = None;
        loop {
            match poll_fn(|cx| self.poll_settle(cx)).await {
                Some(Ready::Finished(_, r)) => rooms = Some(r),
                Some(_) => {}
                None => return rooms,
            }
        }
    }

    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ready>> {
        if self.admitting.is_none() && self.waiting.is_empty() && self.running.is_none() {
            return Poll::Ready(None);
        }
        self.exclusive = None;
        self.poll_ready(cx, true).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use banter_protocol::ClientRequest;

    use super::*;

    fn poll(pipeline: &mut Pipeline, produce: bool) -> Poll<Ready> {
        pipeline.poll_ready(&mut Context::from_waker(Waker::noop()), produce)
    }

    #[test]
    fn over_the_mark_no_exclusive_request_starts_or_runs() {
        let mut pipeline = Pipeline::default();
        let frame = ClientFrame {
            id: "1".into(),
            request: ClientRequest::Ping,
        };
        pipeline.admit(Box::pin(async move { Admission::Exclusive(frame) }));
        assert!(matches!(
            poll(&mut pipeline, false),
            Poll::Ready(Ready::Admitted)
        ));
        assert!(
            poll(&mut pipeline, false).is_pending(),
            "not started while backed up"
        );
        let Poll::Ready(Ready::Start(frame)) = poll(&mut pipeline, true) else {
            panic!("starts once drained");
        };
        assert_eq!(frame.id, "1");
        pipeline.run(Box::pin(async {
            (Bytes::from_static(b"reply"), Vec::new())
        }));
        assert!(
            poll(&mut pipeline, false).is_pending(),
            "does not run on while backed up"
        );
        assert!(matches!(
            poll(&mut pipeline, true),
            Poll::Ready(Ready::Finished(..))
        ));
    }

    #[test]
    fn over_the_mark_admitted_sends_still_finish() {
        let mut pipeline = Pipeline::default();
        let reply: Pending = Box::pin(async { Bytes::from_static(b"ack") });
        pipeline.admit(Box::pin(async move { Admission::Queued(reply) }));
        assert!(matches!(
            poll(&mut pipeline, false),
            Poll::Ready(Ready::Admitted)
        ));
        assert!(matches!(
            poll(&mut pipeline, false),
            Poll::Ready(Ready::Reply(_))
        ));
    }
}
