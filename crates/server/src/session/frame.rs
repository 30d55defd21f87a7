//! The server side of WebSocket framing (RFC 6455 §5), written for connections that are idle
//! most of their life: the decoder keeps no buffer of its own, the caller's read buffer is
//! dropped whenever it holds no partial frame, and outgoing frames are a header beside a shared
//! payload, written with one vectored write. An idle connection therefore holds no I/O buffer at all (see
//! docs/ARCHITECTURE.md, "Deviations", for the measurement behind replacing tokio-websockets
//! here; the client SDK still uses it).
//!
//! No extensions are negotiated, so every reserved bit must be clear. Client frames must be
//! masked; server frames are not.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

/// A complete message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Inbound {
    /// A text message (reassembled if it was fragmented), valid UTF-8.
    Text(Bytes),
    /// A binary message, which Banter does not speak.
    Binary,
    /// A ping; answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong (the answer to our heartbeat ping).
    Pong,
    /// The client's close frame.
    Close,
}

/// Why the client's bytes are not an acceptable WebSocket stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FrameError {
    /// A frame or reassembled message is longer than the limit (close 1009).
    TooBig,
    /// Anything else RFC 6455 forbids (close 4000): unmasked frame, reserved bits or opcodes,
    /// a fragmented or oversize control frame, a stray continuation, invalid UTF-8.
    Protocol(&'static str),
    /// The client's close frame is malformed (close 1002, RFC 6455 §7.4): a one-byte payload,
    /// a code no endpoint may send, or a reason that is not UTF-8.
    BadClose(&'static str),
}

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const MASKED: u8 = 0x80;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Longest payload of a control frame.
const MAX_CONTROL: usize = 125;

/// A client frame's header, checked.
struct Header {
    /// Bytes of the header itself, masking key included.
    len: usize,
    payload_len: usize,
    mask: [u8; 4],
    opcode: u8,
    /// The last frame of its message.
    fin: bool,
}

/// Reassembles client frames into [`Inbound`] messages.
#[derive(Debug)]
pub(super) struct Decoder {
    max_payload: usize,
    /// The fragments so far of a message whose last frame has not arrived, and whether it is
    /// text. Empty (and unallocated) between messages.
    partial: Option<(bool, BytesMut)>,
}

impl Decoder {
    /// A decoder refusing frames and messages longer than `max_payload` bytes.
    pub(super) fn new(max_payload: usize) -> Self {
        Self {
            max_payload,
            partial: None,
        }
    }

    /// Takes the next complete message or control frame off the front of `buf`. `Ok(None)`:
    /// more bytes are needed. Refuses an oversize frame as soon as its header is in.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
        loop {
            let Some(header) = self.header(buf)? else {
                return Ok(None);
            };
            if buf.len() < header.len + header.payload_len {
                return Ok(None);
            }
            buf.advance(header.len);
            let mut payload = buf.split_to(header.payload_len);
            unmask(&mut payload, header.mask);
            let (opcode, fin) = (header.opcode, header.fin);
            match opcode {
                OP_PING => return Ok(Some(Inbound::Ping(payload.freeze()))),
                OP_PONG => return Ok(Some(Inbound::Pong)),
                OP_CLOSE => return check_close(&payload).map(|()| Some(Inbound::Close)),
                _ => {}
            }
            let (text, message) = match (opcode, self.partial.take()) {
                (OP_CONTINUATION, Some((text, mut so_far))) => {
                    if so_far.len() + payload.len() > self.max_payload {
                        return Err(FrameError::TooBig);
                    }
                    so_far.extend_from_slice(&payload);
                    (text, so_far)
                }
                (OP_CONTINUATION, None) => {
                    return Err(FrameError::Protocol(
                        "a continuation with nothing to continue",
                    ));
                }
                (_, Some(_)) => {
                    return Err(FrameError::Protocol(
                        "a new message before the last one's final fragment",
                    ));
                }
                (op, None) => (op == OP_TEXT, payload),
            };
            if !fin {
                self.partial = Some((text, message));
                continue;
            }
            if !text {
                return Ok(Some(Inbound::Binary));
            }
            if std::str::from_utf8(&message).is_err() {
                return Err(FrameError::Protocol("a text message that is not UTF-8"));
            }
            return Ok(Some(Inbound::Text(message.freeze())));
        }
    }

    /// Parses and checks the header at the front of `buf`; `None` if it is not complete yet.
    fn header(&self, buf: &BytesMut) -> Result<Option<Header>, FrameError> {
        let [b0, b1, ..] = buf[..] else {
            return Ok(None);
        };
        if b0 & RSV != 0 {
            return Err(FrameError::Protocol(
                "reserved bits set (no extension was agreed)",
            ));
        }
        if b1 & MASKED == 0 {
            return Err(FrameError::Protocol("an unmasked client frame"));
        }
        let fin = b0 & FIN != 0;
        let opcode = b0 & 0x0F;
        let control = match opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY => false,
            OP_CLOSE | OP_PING | OP_PONG => true,
            _ => return Err(FrameError::Protocol("a reserved opcode")),
        };
        let (len_bytes, len) = match b1 & 0x7F {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(usize::from(n))),
        };
        let header_len = 2 + len_bytes + 4;
        if buf.len() < header_len {
            return Ok(None);
        }
        let len = match len {
            Some(n) => n,
            None if len_bytes == 2 => usize::from(u16::from_be_bytes([buf[2], buf[3]])),
            None => {
                let n = u64::from_be_bytes(buf[2..10].try_into().expect("eight bytes"));
                usize::try_from(n).unwrap_or(usize::MAX)
            }
        };
        if control && (!fin || len > MAX_CONTROL) {
            return Err(FrameError::Protocol(
                "a fragmented control frame or one over 125 bytes",
            ));
        }
        if len > self.max_payload {
            return Err(FrameError::TooBig);
        }
        let mask = buf[header_len - 4..header_len]
            .try_into()
            .expect("four bytes");
        Ok(Some(Header {
            len: header_len,
            payload_len: len,
            mask,
            opcode,
            fin,
        }))
    }
}

/// Checks a close frame's payload: empty, or a code an endpoint may send and a UTF-8 reason.
fn check_close(payload: &[u8]) -> Result<(), FrameError> {
    match payload {
        [] => Ok(()),
        [_] => Err(FrameError::BadClose("a close payload of one byte")),
        [hi, lo, reason @ ..] => {
            if !may_be_sent(u16::from_be_bytes([*hi, *lo])) {
                return Err(FrameError::BadClose("a close code no endpoint may send"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(FrameError::BadClose("a close reason that is not UTF-8"));
            }
            Ok(())
        }
    }
}

/// Close codes an endpoint may put in a close frame (RFC 6455 §7.4 and the IANA registry):
/// the defined 1000–1003 and 1007–1014, and 3000–4999 (libraries, frameworks, applications).
/// Never 0–999, 1004 (reserved), 1005, 1006 and 1015 (only reported locally, never sent),
/// 1016–2999 (unassigned), nor 5000 and above.
fn may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// XORs `payload` with the client's masking key (RFC 6455 §5.3).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes((&*chunk).try_into().expect("four bytes")) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// The header of an unmasked, unfragmented server frame (at most 10 bytes).
#[derive(Debug, Clone, Copy)]
struct Head {
    bytes: [u8; 10],
    len: u8,
}

impl Head {
    fn new(opcode: u8, payload_len: usize) -> Self {
        let mut bytes = [0u8; 10];
        bytes[0] = FIN | opcode;
        let len = match payload_len {
            n @ 0..=125 => {
                bytes[1] = n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                bytes[1] = 126;
                bytes[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                bytes[1] = 127;
                bytes[2..10].copy_from_slice(&(n as u64).to_be_bytes());
                10
            }
        };
        Self { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Server frames waiting to be written. A frame is its header and its payload: the payload
/// `Bytes` is shared, so a fan-out frame encoded once is never copied per connection; the
/// frames go out in one vectored write. Holds no allocation when empty.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    frames: VecDeque<(Head, Bytes)>,
    /// Bytes of the front frame already written.
    offset: usize,
    /// Unwritten bytes in all.
    len: usize,
}

impl Outgoing {
    /// Queues a text frame.
    pub(super) fn text(&mut self, payload: Bytes) {
        self.push(OP_TEXT, payload);
    }

    /// Queues a ping with an empty payload.
    pub(super) fn ping(&mut self) {
        self.push(OP_PING, Bytes::new());
    }

    /// Queues a pong echoing a ping's payload.
    pub(super) fn pong(&mut self, payload: Bytes) {
        self.push(OP_PONG, payload);
    }

    /// Queues a close frame with a code and a reason (cut to fit a control frame).
    pub(super) fn close(&mut self, code: u16, reason: &str) {
        let mut end = reason.len().min(MAX_CONTROL - 2);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = BytesMut::with_capacity(2 + end);
        payload.put_u16(code);
        payload.put_slice(&reason.as_bytes()[..end]);
        self.push(OP_CLOSE, payload.freeze());
    }

    fn push(&mut self, opcode: u8, payload: Bytes) {
        let head = Head::new(opcode, payload.len());
        self.len += usize::from(head.len) + payload.len();
        self.frames.push_back((head, payload));
    }

    /// Unwritten bytes.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `slices` with the unwritten bytes, in order; returns how many it filled.
    pub(super) fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut skip = self.offset;
        for (head, payload) in &self.frames {
            for part in [head.as_slice(), &payload[..]] {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                if n == slices.len() {
                    return n;
                }
                slices[n] = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
            }
        }
        n
    }

    /// Marks `written` bytes as written.
    pub(super) fn advance(&mut self, mut written: usize) {
        self.len -= written;
        while written > 0 {
            let (head, payload) = self.frames.front().expect("advance within len");
            let rest = usize::from(head.len) + payload.len() - self.offset;
            if written < rest {
                self.offset += written;
                return;
            }
            written -= rest;
            self.offset = 0;
            self.frames.pop_front();
        }
        if self.frames.is_empty() {
            // Idle connections keep no write queue.
            self.frames = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(MASKED | n as u8),
            n @ 126..=0xFFFF => {
                out.push(MASKED | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(MASKED | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Inbound>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(msg) = decoder.decode(&mut buf)? {
            out.push(msg);
        }
        Ok(out)
    }

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message containing "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let got = decode_all(&mut Decoder::new(1024), &bytes).unwrap();
        assert_eq!(got, vec![Inbound::Text(Bytes::from_static(b"Hello"))]);
    }

    #[test]
    fn byte_at_a_time_and_all_length_forms() {
        for len in [0, 5, 125, 126, 1000, 65_535, 65_536, 70_000] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let bytes = client_frame(FIN | OP_TEXT, text.as_bytes());
            let mut decoder = Decoder::new(100_000);
            let mut buf = BytesMut::new();
            let mut got = None;
            for (i, b) in bytes.iter().enumerate() {
                buf.put_u8(*b);
                if let Some(msg) = decoder.decode(&mut buf).unwrap() {
                    assert_eq!(i, bytes.len() - 1, "complete only at the last byte");
                    got = Some(msg);
                }
            }
            assert_eq!(got, Some(Inbound::Text(Bytes::from(text))));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn fragments_reassemble_around_control_frames() {
        let mut bytes = client_frame(OP_TEXT, b"Hel");
        bytes.extend(client_frame(FIN | OP_PING, b"p"));
        bytes.extend(client_frame(OP_CONTINUATION, b"lo, "));
        bytes.extend(client_frame(FIN | OP_CONTINUATION, "wörld".as_bytes()));
        bytes.extend(client_frame(FIN | OP_PONG, b""));
        bytes.extend(client_frame(FIN | OP_BINARY, b"\x00"));
        bytes.extend(client_frame(FIN | OP_CLOSE, &1000u16.to_be_bytes()));
        let got = decode_all(&mut Decoder::new(1024), &bytes).unwrap();
        assert_eq!(
            got,
            vec![
                Inbound::Ping(Bytes::from_static(b"p")),
                Inbound::Text(Bytes::from("Hello, wörld")),
                Inbound::Pong,
                Inbound::Binary,
                Inbound::Close,
            ]
        );
    }

    #[test]
    fn bad_frames_are_refused() {
        let protocol = |bytes: Vec<u8>| match decode_all(&mut Decoder::new(1024), &bytes) {
            Err(FrameError::Protocol(_)) => {}
            other => panic!("expected a protocol error, got {other:?}"),
        };
        let mut unmasked = client_frame(FIN | OP_TEXT, b"hi");
        unmasked[1] &= !MASKED;
        protocol(unmasked);
        protocol(client_frame(FIN | 0x40 | OP_TEXT, b"hi"));
        protocol(client_frame(FIN | 0x3, b"hi"));
        protocol(client_frame(FIN | 0xB, b"hi"));
        protocol(client_frame(OP_PING, b"hi"));
        protocol(client_frame(FIN | OP_PING, &[b'x'; 126]));
        protocol(client_frame(FIN | OP_CONTINUATION, b"hi"));
        protocol(client_frame(FIN | OP_TEXT, b"\xff\xfe"));
        let mut interleaved = client_frame(OP_TEXT, b"a");
        interleaved.extend(client_frame(FIN | OP_TEXT, b"b"));
        protocol(interleaved);
    }

    #[test]
    fn close_frames_with_forbidden_codes_or_payloads_are_bad_closes() {
        let decode = |payload: &[u8]| {
            decode_all(
                &mut Decoder::new(1024),
                &client_frame(FIN | OP_CLOSE, payload),
            )
        };
        for code in [
            0u16,
            999,
            1004,
            1005,
            1006,
            1015,
            1016,
            2999,
            5000,
            u16::MAX,
        ] {
            assert!(
                matches!(decode(&code.to_be_bytes()), Err(FrameError::BadClose(_))),
                "{code}"
            );
        }
        for payload in [&b"\x03"[..], b"\x03\xe8\xff"] {
            assert!(matches!(decode(payload), Err(FrameError::BadClose(_))));
        }
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4000, 4999,
        ] {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice("bye é".as_bytes());
            assert_eq!(decode(&payload), Ok(vec![Inbound::Close]), "{code}");
        }
        assert_eq!(decode(b""), Ok(vec![Inbound::Close]));
    }

    #[test]
    fn oversize_frames_and_messages_are_too_big_before_their_payload_arrives() {
        let header_only = &client_frame(FIN | OP_TEXT, &[b'x'; 2000])[..8];
        assert_eq!(
            decode_all(&mut Decoder::new(1024), header_only),
            Err(FrameError::TooBig)
        );
        let mut fragments = client_frame(OP_TEXT, &[b'x'; 600]);
        fragments.extend(client_frame(FIN | OP_CONTINUATION, &[b'x'; 600]));
        assert_eq!(
            decode_all(&mut Decoder::new(1024), &fragments),
            Err(FrameError::TooBig)
        );
        let mut huge = vec![FIN | OP_TEXT, MASKED | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(
            decode_all(&mut Decoder::new(1024), &huge),
            Err(FrameError::TooBig)
        );
    }

    /// Everything `out` would write, taken a few bytes at a time (partial writes).
    fn drain(out: &mut Outgoing, step: usize) -> Vec<u8> {
        let mut written = Vec::new();
        while !out.is_empty() {
            let mut slices = [IoSlice::new(&[]); 3];
            let n = out.slices(&mut slices);
            let taken: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            let take = taken.len().min(step);
            written.extend_from_slice(&taken[..take]);
            out.advance(take);
        }
        written
    }

    #[test]
    fn outgoing_frames_have_the_right_headers_and_survive_partial_writes() {
        let mut out = Outgoing::default();
        out.text(Bytes::from_static(b"Hello"));
        assert_eq!(drain(&mut out, usize::MAX), b"\x81\x05Hello");
        out.text(Bytes::from(vec![b'x'; 300]));
        let bytes = drain(&mut out, usize::MAX);
        assert_eq!(
            (&bytes[..4], bytes.len()),
            (&[0x81, 126, 0x01, 0x2c][..], 304)
        );
        out.text(Bytes::from(vec![b'x'; 70_000]));
        let bytes = drain(&mut out, usize::MAX);
        assert_eq!(&bytes[..2], &[0x81, 127]);
        assert_eq!(&bytes[2..10], &70_000u64.to_be_bytes());
        out.close(4003, &"é".repeat(100));
        let bytes = drain(&mut out, usize::MAX);
        assert_eq!(bytes[0], 0x88);
        let len = usize::from(bytes[1]);
        assert_eq!(bytes.len(), 2 + len);
        assert!(len <= 125);
        assert_eq!(&bytes[2..4], &4003u16.to_be_bytes());
        assert!(std::str::from_utf8(&bytes[4..]).is_ok());

        // Several frames, written 1, 3 or 7 bytes at a time, come out whole and in order.
        for step in [1, 3, 7] {
            out.ping();
            out.pong(Bytes::from_static(b"p"));
            out.text(Bytes::from_static(b"abc"));
            assert_eq!(out.len(), 2 + 3 + 5);
            assert_eq!(drain(&mut out, step), b"\x89\x00\x8a\x01p\x81\x03abc");
            assert_eq!(out.len(), 0);
        }
    }
}
