//! How bus events and connection lists travel over NATS: a small binary encoding (a tag byte,
//! fixed-width little-endian integers, length-prefixed strings, the frame's bytes last and
//! untouched, so the receiving node queues exactly what the sender encoded).
//!
//! NATS is trusted infrastructure, but a decoder never panics: a message it cannot read is
//! dropped and counted by the caller.

use banter_protocol::CloseCode;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::bus::{
    Audience, ConnId, Delivery, Event, Forwarded, Invalidation, NodeId, RoomCount, RoomCounts,
};
use crate::store::{Appended, EntryKind, NewMessage, StoredMessage, UserId};

const DELIVER: u8 = 1;
const KICK: u8 = 2;
const INVALIDATE: u8 = 3;
const ROOM_COUNTS: u8 = 4;

const USERS: u8 = 1;
const ROOM: u8 = 2;
const SESSION: u8 = 3;

const RELATION: u8 = 1;
const RELATIONS_BETWEEN: u8 = 2;
const CONVERSATION: u8 = 3;
const DIRECT: u8 = 4;

/// A message that is not an event this version can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unreadable bus message")]
pub struct Unreadable;

/// Encodes `event` for the wire.
pub fn encode(event: &Event) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    match event {
        Event::Deliver(d) => {
            out.put_u8(DELIVER);
            match &d.audience {
                Audience::Users(users) => {
                    out.put_u8(USERS);
                    put_users(&mut out, users);
                }
                Audience::Room(room) => {
                    out.put_u8(ROOM);
                    put_str(&mut out, room);
                }
                Audience::Session { user, session } => {
                    out.put_u8(SESSION);
                    out.put_i64_le(*user);
                    out.put_i64_le(*session);
                }
            }
            match d.entry {
                Some((conv, seq)) => {
                    out.put_u8(1);
                    out.put_i64_le(conv);
                    out.put_u64_le(seq);
                }
                None => out.put_u8(0),
            }
            put_except(&mut out, d.except);
            out.put_slice(&d.frame);
        }
        Event::Kick {
            user,
            session,
            code,
        } => {
            out.put_u8(KICK);
            out.put_i64_le(*user);
            out.put_i64_le(*session);
            out.put_u16_le(code.code());
        }
        Event::Invalidate(what) => {
            out.put_u8(INVALIDATE);
            match what {
                Invalidation::Relation(a, b) => {
                    out.put_u8(RELATION);
                    out.put_i64_le(*a);
                    out.put_i64_le(*b);
                }
                Invalidation::RelationsBetween { changed, members } => {
                    out.put_u8(RELATIONS_BETWEEN);
                    put_users(&mut out, changed);
                    put_users(&mut out, members);
                }
                Invalidation::Conversation(conv) => {
                    out.put_u8(CONVERSATION);
                    out.put_i64_le(*conv);
                }
                Invalidation::Direct(a, b) => {
                    out.put_u8(DIRECT);
                    out.put_i64_le(*a);
                    out.put_i64_le(*b);
                }
            }
        }
        Event::RoomCounts(counts) => {
            out.put_u8(ROOM_COUNTS);
            out.put_u64_le(counts.node.0);
            out.put_u32_le(u32::try_from(counts.rooms.len()).expect("bounded by max_rooms"));
            for r in counts.rooms.iter() {
                put_str(&mut out, &r.room);
                out.put_u32_le(r.count);
                put_users(&mut out, &r.joined);
                put_users(&mut out, &r.left);
            }
        }
    }
    out.freeze()
}

/// Decodes an event encoded by [`encode`]. The frame shares `bytes`' buffer.
pub fn decode(mut bytes: Bytes) -> Result<Event, Unreadable> {
    let b = &mut bytes;
    let event = match u8_(b)? {
        DELIVER => {
            let audience = match u8_(b)? {
                USERS => Audience::Users(users(b)?.into()),
                ROOM => Audience::Room(str_(b)?.into()),
                SESSION => Audience::Session {
                    user: i64_(b)?,
                    session: i64_(b)?,
                },
                _ => return Err(Unreadable),
            };
            let entry = match u8_(b)? {
                0 => None,
                1 => Some((i64_(b)?, u64_(b)?)),
                _ => return Err(Unreadable),
            };
            let except = except(b)?;
            Event::Deliver(Delivery {
                audience,
                entry,
                frame: std::mem::take(b),
                except,
            })
        }
        KICK => {
            let (user, session) = (i64_(b)?, i64_(b)?);
            let code = CloseCode::from_code(u16_(b)?).ok_or(Unreadable)?;
            Event::Kick {
                user,
                session,
                code,
            }
        }
        INVALIDATE => Event::Invalidate(match u8_(b)? {
            RELATION => Invalidation::Relation(i64_(b)?, i64_(b)?),
            RELATIONS_BETWEEN => Invalidation::RelationsBetween {
                changed: users(b)?.into(),
                members: users(b)?.into(),
            },
            CONVERSATION => Invalidation::Conversation(i64_(b)?),
            DIRECT => Invalidation::Direct(i64_(b)?, i64_(b)?),
            _ => return Err(Unreadable),
        }),
        ROOM_COUNTS => {
            let node = NodeId(u64_(b)?);
            need(b, 4)?;
            let n = b.get_u32_le() as usize;
            // Each room takes at least 16 bytes: no allocation beyond what the message holds.
            need(b, n.checked_mul(16).ok_or(Unreadable)?)?;
            let mut rooms = Vec::with_capacity(n);
            for _ in 0..n {
                let room = str_(b)?.into();
                need(b, 4)?;
                let count = b.get_u32_le();
                rooms.push(RoomCount {
                    room,
                    count,
                    joined: users(b)?,
                    left: users(b)?,
                });
            }
            Event::RoomCounts(RoomCounts {
                node,
                rooms: rooms.into(),
            })
        }
        _ => return Err(Unreadable),
    };
    Ok(event)
}

/// Encodes a user's connections (the value of its presence key).
pub fn encode_conns(conns: &[ConnId]) -> Bytes {
    let mut out = BytesMut::with_capacity(conns.len() * 16);
    for &c in conns {
        put_conn(&mut out, c);
    }
    out.freeze()
}

/// Decodes [`encode_conns`].
pub fn decode_conns(mut bytes: Bytes) -> Result<Vec<ConnId>, Unreadable> {
    if !bytes.len().is_multiple_of(16) {
        return Err(Unreadable);
    }
    let mut conns = Vec::with_capacity(bytes.len() / 16);
    while bytes.has_remaining() {
        conns.push(conn(&mut bytes)?);
    }
    Ok(conns)
}

/// Encodes an append forwarded to its conversation's writer, and the connection it was sent
/// on (which its delivery skips).
pub fn encode_append(m: &NewMessage, except: Option<ConnId>) -> Bytes {
    let mut out = BytesMut::with_capacity(57 + m.client_msg_id.len() + m.text.len());
    out.put_i64_le(m.conv);
    out.put_i64_le(m.sender);
    put_str(&mut out, &m.client_msg_id);
    put_str(&mut out, &m.text);
    out.put_u8(m.kind as u8);
    put_except(&mut out, except);
    out.freeze()
}

/// Decodes [`encode_append`].
pub fn decode_append(mut b: Bytes) -> Result<(NewMessage, Option<ConnId>), Unreadable> {
    let m = NewMessage {
        conv: i64_(&mut b)?,
        sender: i64_(&mut b)?,
        client_msg_id: str_(&mut b)?,
        text: str_(&mut b)?,
        kind: kind(&mut b)?,
    };
    let except = except(&mut b)?;
    done(&b)?;
    Ok((m, except))
}

/// Encodes the outcome of a forwarded append (the stored message, whether it was a repeat,
/// whether the writer delivered it).
pub fn encode_appended(a: &Appended, delivered: bool) -> Bytes {
    let m = &a.message;
    let mut out = BytesMut::with_capacity(81 + m.client_msg_id.len() + m.text.len());
    out.put_u8(u8::from(delivered));
    out.put_u8(u8::from(a.duplicate));
    out.put_i64_le(m.id);
    out.put_i64_le(m.conv);
    out.put_u64_le(m.seq);
    out.put_i64_le(m.sender);
    put_str(&mut out, &m.client_msg_id);
    out.put_u8(m.kind as u8);
    put_str(&mut out, &m.text);
    put_opt(&mut out, m.ref_seq);
    put_opt(&mut out, m.edited_at.map(|t| t as u64));
    out.put_u8(u8::from(m.recalled));
    out.put_i64_le(m.ts);
    out.freeze()
}

/// Decodes [`encode_appended`].
pub fn decode_appended(mut b: Bytes) -> Result<Forwarded, Unreadable> {
    let delivered = flag(&mut b)?;
    let duplicate = flag(&mut b)?;
    let message = StoredMessage {
        id: i64_(&mut b)?,
        conv: i64_(&mut b)?,
        seq: u64_(&mut b)?,
        sender: i64_(&mut b)?,
        client_msg_id: str_(&mut b)?,
        kind: kind(&mut b)?,
        text: str_(&mut b)?,
        ref_seq: opt(&mut b)?,
        edited_at: opt(&mut b)?.map(|t| t as i64),
        recalled: flag(&mut b)?,
        ts: i64_(&mut b)?,
    };
    done(&b)?;
    Ok(Forwarded {
        appended: Appended { message, duplicate },
        delivered,
    })
}

fn put_opt(out: &mut BytesMut, v: Option<u64>) {
    match v {
        Some(v) => {
            out.put_u8(1);
            out.put_u64_le(v);
        }
        None => out.put_u8(0),
    }
}

fn opt(b: &mut Bytes) -> Result<Option<u64>, Unreadable> {
    Ok(if flag(b)? { Some(u64_(b)?) } else { None })
}

fn flag(b: &mut Bytes) -> Result<bool, Unreadable> {
    match u8_(b)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Unreadable),
    }
}

fn kind(b: &mut Bytes) -> Result<EntryKind, Unreadable> {
    let k = u8_(b)?;
    let kind = EntryKind::from_i64(i64::from(k));
    if kind as u8 == k {
        Ok(kind)
    } else {
        Err(Unreadable)
    }
}

fn done(b: &Bytes) -> Result<(), Unreadable> {
    if b.has_remaining() {
        Err(Unreadable)
    } else {
        Ok(())
    }
}

fn put_users(out: &mut BytesMut, users: &[UserId]) {
    out.put_u32_le(u32::try_from(users.len()).expect("audiences are far below 2^32"));
    for &u in users {
        out.put_i64_le(u);
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32_le(u32::try_from(s.len()).expect("names are short"));
    out.put_slice(s.as_bytes());
}

fn put_except(out: &mut BytesMut, except: Option<ConnId>) {
    match except {
        Some(conn) => {
            out.put_u8(1);
            put_conn(out, conn);
        }
        None => out.put_u8(0),
    }
}

fn except(b: &mut Bytes) -> Result<Option<ConnId>, Unreadable> {
    Ok(if flag(b)? { Some(conn(b)?) } else { None })
}

fn put_conn(out: &mut BytesMut, conn: ConnId) {
    out.put_u64_le(conn.node.0);
    out.put_u64_le(conn.local);
}

fn need(b: &Bytes, n: usize) -> Result<(), Unreadable> {
    if b.remaining() < n {
        Err(Unreadable)
    } else {
        Ok(())
    }
}

fn u8_(b: &mut Bytes) -> Result<u8, Unreadable> {
    need(b, 1)?;
    Ok(b.get_u8())
}

fn u16_(b: &mut Bytes) -> Result<u16, Unreadable> {
    need(b, 2)?;
    Ok(b.get_u16_le())
}

fn u64_(b: &mut Bytes) -> Result<u64, Unreadable> {
    need(b, 8)?;
    Ok(b.get_u64_le())
}

fn i64_(b: &mut Bytes) -> Result<i64, Unreadable> {
    need(b, 8)?;
    Ok(b.get_i64_le())
}

fn users(b: &mut Bytes) -> Result<Vec<UserId>, Unreadable> {
    need(b, 4)?;
    let n = b.get_u32_le() as usize;
    need(b, n.checked_mul(8).ok_or(Unreadable)?)?;
    Ok((0..n).map(|_| b.get_i64_le()).collect())
}

fn str_(b: &mut Bytes) -> Result<String, Unreadable> {
    need(b, 4)?;
    let n = b.get_u32_le() as usize;
    need(b, n)?;
    String::from_utf8(b.split_to(n).to_vec()).map_err(|_| Unreadable)
}

fn conn(b: &mut Bytes) -> Result<ConnId, Unreadable> {
    Ok(ConnId {
        node: NodeId(u64_(b)?),
        local: u64_(b)?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn round_trip(event: &Event) -> Event {
        decode(encode(event)).expect("readable")
    }

    #[test]
    fn every_event_survives_the_wire() {
        let conn = ConnId {
            node: NodeId(u64::MAX - 3),
            local: 77,
        };
        let events = [
            Event::Deliver(Delivery {
                audience: Audience::Users(Arc::from([1, -2, i64::MAX])),
                entry: Some((5, u64::MAX)),
                frame: Bytes::from_static(b"{\"type\":\"message\"}"),
                except: Some(conn),
            }),
            Event::Deliver(Delivery {
                audience: Audience::Room(Arc::from("lobby ✓")),
                entry: None,
                frame: Bytes::new(),
                except: None,
            }),
            Event::Deliver(Delivery {
                audience: Audience::Session {
                    user: 3,
                    session: 9,
                },
                entry: None,
                frame: Bytes::from_static(b"x"),
                except: None,
            }),
            Event::Kick {
                user: 4,
                session: 8,
                code: CloseCode::AuthRevoked,
            },
            Event::Invalidate(Invalidation::Relation(1, 2)),
            Event::Invalidate(Invalidation::RelationsBetween {
                changed: Arc::from([1]),
                members: Arc::from([2, 3]),
            }),
            Event::Invalidate(Invalidation::Conversation(12)),
            Event::Invalidate(Invalidation::Direct(6, 7)),
            Event::RoomCounts(RoomCounts {
                node: NodeId(9),
                rooms: Arc::from([
                    RoomCount {
                        room: Arc::from("lobby"),
                        count: 3,
                        joined: vec![1, 2],
                        left: vec![],
                    },
                    RoomCount {
                        room: Arc::from("x"),
                        count: 0,
                        joined: vec![],
                        left: vec![5],
                    },
                ]),
            }),
        ];
        for event in &events {
            // Debug output names every field, so equal output means an equal event.
            assert_eq!(format!("{:?}", round_trip(event)), format!("{event:?}"));
        }
    }

    #[test]
    fn truncated_or_foreign_messages_are_unreadable() {
        let whole = encode(&Event::Invalidate(Invalidation::RelationsBetween {
            changed: Arc::from([1, 2]),
            members: Arc::from([3]),
        }));
        for cut in 0..whole.len() {
            assert_eq!(
                decode(whole.slice(..cut)).err(),
                Some(Unreadable),
                "cut at {cut}"
            );
        }
        assert!(decode(Bytes::from_static(&[9, 0, 0])).is_err());
        // A count far beyond the message is refused before anything is allocated for it.
        assert!(decode(Bytes::from_static(&[1, 1, 255, 255, 255, 255])).is_err());
        assert!(decode_conns(Bytes::from_static(&[0; 15])).is_err());
        let conns = [ConnId {
            node: NodeId(1),
            local: 2,
        }];
        assert_eq!(decode_conns(encode_conns(&conns)).unwrap(), conns);
    }

    #[test]
    fn forwarded_appends_and_their_outcomes_survive_the_wire() {
        let m = NewMessage {
            conv: 7,
            sender: -2,
            client_msg_id: "k-1".into(),
            text: "héllo".into(),
            kind: EntryKind::Sticker,
        };
        let sender = ConnId {
            node: NodeId(u64::MAX),
            local: 5,
        };
        for except in [Some(sender), None] {
            let (back, back_except) = decode_append(encode_append(&m, except)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{m:?}"));
            assert_eq!(back_except, except);
        }
        let a = Forwarded {
            appended: Appended {
                message: StoredMessage {
                    id: 99,
                    conv: 7,
                    seq: u64::MAX,
                    sender: -2,
                    client_msg_id: "k-1".into(),
                    kind: EntryKind::Attachment,
                    text: "{}".into(),
                    ref_seq: Some(3),
                    edited_at: Some(1_700_000_000_000),
                    recalled: true,
                    ts: 1_700_000_000_001,
                },
                duplicate: true,
            },
            delivered: true,
        };
        let whole = encode_appended(&a.appended, a.delivered);
        assert_eq!(decode_appended(whole.clone()).unwrap(), a);
        for cut in 0..whole.len() {
            assert!(decode_appended(whole.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = BytesMut::from(&whole[..]);
        longer.put_u8(0);
        assert!(decode_appended(longer.freeze()).is_err());
        // A kind this version does not know is refused, not read as text.
        let mut foreign = BytesMut::from(&encode_append(&m, None)[..]);
        let kind_at = foreign.len() - 2;
        foreign[kind_at] = 200;
        assert!(decode_append(foreign.freeze()).is_err());
    }
}
