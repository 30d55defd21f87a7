//! The cluster side of rooms on one node, with a bus that says it is clustered: counts from
//! other nodes add up and go with their node, the window is filled from what passes the gate
//! (in `seq` order, whichever node sent it), and a node's first occupant is announced at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use banter_protocol::{RoomJoined, RoomMessage, ServerFrame};
use tokio::sync::mpsc;

use super::{RoomLimits, Rooms, cluster};
use crate::bus::node::{Caches, IDLE, Node};
use crate::bus::{
    AttachError, Attached, Audience, Bus, BusError, ConnHandle, ConnId, Delivery, Event,
    Invalidation, LocalBus, NodeId, RoomCount, RoomCounts,
};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::registry::{Kick, Registry};
use crate::services::messaging::encode;
use crate::store::UserId;

struct NoCaches;

impl Caches for NoCaches {
    fn invalidate(&self, _: &Invalidation) {}

    fn invalidate_all(&self) {}
}

/// One node of a pretend cluster: an in-memory counter, and every published event recorded.
struct Clustered {
    local: LocalBus,
    seqs: Mutex<HashMap<String, u64>>,
    published: Mutex<Vec<Event>>,
}

#[async_trait]
impl Bus for Clustered {
    fn node(&self) -> NodeId {
        self.local.node()
    }
    fn publish(&self, event: Event) -> Result<(), BusError> {
        self.published.lock().unwrap().push(event.clone());
        self.local.publish(event)
    }
    async fn attach(&self, user: UserId, conn: ConnHandle) -> Result<Attached, AttachError> {
        self.local.attach(user, conn).await
    }
    async fn detach(&self, user: UserId, conn: ConnId) -> bool {
        self.local.detach(user, conn).await
    }
    fn connections(&self, user: UserId) -> usize {
        self.local.connections(user)
    }
    fn has_room(&self, user: UserId) -> bool {
        self.local.has_room(user)
    }
    fn enter_room(&self, room: &str, conn: &ConnHandle) {
        self.local.enter_room(room, conn);
    }
    fn leave_room(&self, room: &str, conn: ConnId) {
        self.local.leave_room(room, conn);
    }
    fn clustered(&self) -> bool {
        true
    }
    async fn next_room_seq(&self, room: &str) -> Result<Option<u64>, BusError> {
        let mut seqs = self.seqs.lock().unwrap();
        let seq = seqs.entry(room.to_owned()).or_default();
        *seq += 1;
        Ok(Some(*seq))
    }
    async fn room_seq(&self, room: &str) -> Result<Option<u64>, BusError> {
        Ok(Some(
            self.seqs.lock().unwrap().get(room).copied().unwrap_or(0),
        ))
    }
    fn node_deaths(&self) -> Option<mpsc::UnboundedReceiver<NodeId>> {
        None
    }
}

struct Fixture {
    node: Arc<Node>,
    bus: Arc<Clustered>,
    rooms: Arc<Rooms>,
    next: u64,
}

fn fixture(max_rooms: usize) -> Fixture {
    let metrics = Arc::new(Metrics::default());
    let node = Arc::new(Node::new(
        NodeId::random(),
        Registry::new(8, Arc::clone(&metrics)),
        Arc::new(NoCaches),
    ));
    let bus = Arc::new(Clustered {
        local: LocalBus::new(Arc::clone(&node)),
        seqs: Mutex::default(),
        published: Mutex::default(),
    });
    let limits = RoomLimits {
        history: 3,
        occupancy_interval: Duration::from_millis(10),
        max_text_bytes: 1000,
        max_rooms,
        history_bytes: 64 * 1024,
    };
    let rooms = Rooms::new(limits, Arc::clone(&bus) as _, Arc::clone(&node), metrics);
    Fixture {
        node,
        bus,
        rooms,
        next: 0,
    }
}

impl Fixture {
    fn conn(&mut self) -> ConnHandle {
        self.next += 1;
        ConnHandle {
            conn: ConnId {
                node: self.node.id(),
                local: self.next,
            },
            session: 1,
            queue: Arc::new(Outbox::new(64)),
            kick: Arc::new(Kick::default()),
        }
    }

    async fn count(&mut self, room: &str) -> usize {
        let conn = self.conn();
        let joined = self.rooms.join(7, &conn, room).await.unwrap();
        self.rooms.leave(conn.conn, room).unwrap();
        joined.count
    }
}

fn counts(node: u64, room: &str, count: u32) -> RoomCounts {
    RoomCounts {
        node: NodeId(node),
        rooms: Arc::from([RoomCount {
            room: Arc::from(room),
            count,
            joined: vec![],
            left: vec![],
        }]),
    }
}

/// A room message from another node, as its bus delivers it.
fn remote_message(room: &str, seq: u64) -> Event {
    let message = RoomMessage {
        seq,
        id: format!("x{seq}"),
        sender: "9".into(),
        client_msg_id: format!("c{seq}"),
        text: format!("t{seq}"),
        ts: 1,
    };
    Event::Deliver(Delivery {
        audience: Audience::Room(Arc::from(room)),
        entry: Some((0, seq)),
        frame: encode(&ServerFrame::RoomMessage {
            room: room.into(),
            message,
        }),
        except: None,
    })
}

#[tokio::test]
async fn other_nodes_counts_add_up_and_go_with_their_node() {
    let mut f = fixture(4);
    let here = f.conn();
    f.rooms.join(1, &here, "lobby").await.unwrap();
    assert_eq!(f.count("lobby").await, 2);
    f.node.receive(Event::RoomCounts(counts(11, "lobby", 5)));
    f.node.receive(Event::RoomCounts(counts(12, "lobby", 3)));
    assert_eq!(f.count("lobby").await, 10);
    // A newer count replaces the older one; 0 removes it.
    f.node.receive(Event::RoomCounts(counts(11, "lobby", 2)));
    f.node.receive(Event::RoomCounts(counts(12, "lobby", 0)));
    assert_eq!(f.count("lobby").await, 4);
    f.rooms.node_gone(NodeId(11));
    assert_eq!(f.count("lobby").await, 2);
    // A room known only from another node is there for a joiner here, with its count.
    f.node.receive(Event::RoomCounts(counts(13, "hall", 4)));
    assert_eq!(f.count("hall").await, 5);
    // Own counts coming back are ignored.
    f.node
        .receive(Event::RoomCounts(counts(f.node.id().0, "hall", 50)));
    assert_eq!(f.count("hall").await, 5);
}

#[tokio::test]
async fn rooms_known_from_other_nodes_are_bounded() {
    let mut f = fixture(2);
    let many = 2 * cluster::NODES_MAX + 10;
    for i in 0..many {
        f.node
            .receive(Event::RoomCounts(counts(20, &format!("r{i}"), 1)));
    }
    let known = f.rooms.rooms.lock().unwrap().len();
    assert_eq!(known, 2 * cluster::NODES_MAX);
    // Rooms hosted here are bounded by max_rooms, whatever others have.
    let (a, b, c, d) = (f.conn(), f.conn(), f.conn(), f.conn());
    f.rooms.join(1, &a, "r0").await.unwrap();
    f.rooms.join(1, &b, "r1").await.unwrap();
    f.rooms.join(1, &c, "own").await.unwrap_err();
    f.rooms.join(1, &d, "r2").await.unwrap_err();
    // Leaving one makes room for another.
    f.rooms.leave(a.conn, "r0").unwrap();
    f.rooms.join(1, &d, "r2").await.unwrap();
}

#[tokio::test]
async fn the_window_is_what_passed_the_gate_in_seq_order() {
    let mut f = fixture(4);
    let sender = f.conn();
    f.rooms.join(1, &sender, "lobby").await.unwrap();
    // The first occupant here was announced at once.
    let announced = f.bus.published.lock().unwrap().iter().any(|e| {
        matches!(e, Event::RoomCounts(c) if c.rooms[0].count == 1 && &*c.rooms[0].room == "lobby")
    });
    assert!(announced);
    let ack = f
        .rooms
        .send(1, sender.conn, "lobby", "k1".into(), "mine".into())
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    // Another node's seqs 4 and 3 arrive out of order, 2 (this node's) after them.
    f.node.receive(remote_message("lobby", 3));
    f.node.receive(remote_message("lobby", 4));
    f.node.receive(remote_message("lobby", 2));
    let joiner = f.conn();
    let joined = f.rooms.join(2, &joiner, "lobby").await.unwrap();
    let seqs: Vec<u64> = joined.recent.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [2, 3, 4], "the last `history` of them, in order");
    // A retry of a message still in the window is not sent again.
    f.node.receive(remote_message("lobby", 5));
    let again = f
        .rooms
        .send(9, joiner.conn, "lobby", "c5".into(), "t5".into())
        .await
        .unwrap();
    assert!(again.duplicate && again.seq == 5);
}

#[tokio::test]
async fn a_quiet_hosted_room_keeps_its_order_from_its_first_message() {
    let mut f = fixture(4);
    let reader = f.conn();
    f.rooms.join(1, &reader, "lobby").await.unwrap();
    // Over a minute without messages: the gate forgets the room's order, and the next refresh
    // puts it back where the join found it (nothing sent yet, so at 1).
    f.node
        .sweep_at(Instant::now() + IDLE + Duration::from_secs(1));
    f.rooms.announce_changes(true);
    // Seq 2 (sent on one node) arrives before seq 1 (sent on another at the same moment): it
    // waits for 1 instead of starting the order.
    f.node.receive(remote_message("lobby", 2));
    let window = |joined: RoomJoined| joined.recent.iter().map(|m| m.seq).collect::<Vec<_>>();
    let peek = f.conn();
    assert_eq!(
        window(f.rooms.join(2, &peek, "lobby").await.unwrap()),
        [0u64; 0]
    );
    f.node.receive(remote_message("lobby", 1));
    assert_eq!(
        window(f.rooms.join(2, &peek, "lobby").await.unwrap()),
        [1, 2]
    );
}
