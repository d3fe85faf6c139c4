//! Just enough of the wire format to watch traffic: frame boundaries, the message kind and,
//! for pings and pongs, the nonce.
//!
//! A frame is a `u32` little-endian payload length, then the payload: a varint message kind
//! and the postcard body (the core's wire format). Ping and Pong bodies are one varint `u64` nonce. The
//! legacy model uses the same framing (its messages differ, the kinds of Hello/Ping/Pong are
//! the same), so filters and the ping/pong observer work on both models. Anything that does
//! not parse is passed through and reported as [`Kind::Other`].

use serde::{Deserialize, Serialize};

/// Length of the frame length prefix.
pub const HEADER_LEN: usize = 4;

/// Message kinds as the simulator sees them (numbered as in `timed_core::wire::MessageKind`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Hello,
    Ping,
    Pong,
    Goodbye,
    Request,
    Response,
    Gossip,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Hello,
        Kind::Ping,
        Kind::Pong,
        Kind::Goodbye,
        Kind::Request,
        Kind::Response,
        Kind::Gossip,
        Kind::Other,
    ];

    pub fn from_wire(k: u64) -> Kind {
        match k {
            0 => Kind::Hello,
            1 => Kind::Ping,
            2 => Kind::Pong,
            3 => Kind::Goodbye,
            4 => Kind::Request,
            5 => Kind::Response,
            6 => Kind::Gossip,
            _ => Kind::Other,
        }
    }

    pub fn wire(self) -> u64 {
        match self {
            Kind::Hello => 0,
            Kind::Ping => 1,
            Kind::Pong => 2,
            Kind::Goodbye => 3,
            Kind::Request => 4,
            Kind::Response => 5,
            Kind::Gossip => 6,
            Kind::Other => 255,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
            Kind::Goodbye => "goodbye",
            Kind::Request => "request",
            Kind::Response => "response",
            Kind::Gossip => "gossip",
            Kind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A bit for kind sets.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// What one frame is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FrameInfo {
    pub kind: Kind,
    /// The nonce of a ping or pong, or the id of a request or response (per connection and
    /// direction: a response carries the id of a request that arrived on its connection).
    pub nonce: Option<u64>,
}

/// Reads a LEB128 varint (postcard's encoding of integers).
pub fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Appends a LEB128 varint.
pub fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Classifies a frame payload (without the length prefix).
pub fn classify(payload: &[u8]) -> FrameInfo {
    let Some((k, n)) = read_varint(payload) else {
        return FrameInfo {
            kind: Kind::Other,
            nonce: None,
        };
    };
    let kind = Kind::from_wire(k);
    let nonce = match kind {
        Kind::Ping | Kind::Pong | Kind::Request | Kind::Response => {
            read_varint(&payload[n..]).map(|(v, _)| v)
        }
        _ => None,
    };
    FrameInfo { kind, nonce }
}

/// Appends a frame holding `kind` and `body` (used by the legacy model).
pub fn frame(kind: Kind, body: &[u8], out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write_varint(kind.wire(), out);
    out.extend_from_slice(body);
    let len = (out.len() - at - HEADER_LEN) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reassembles the byte stream a sender writes into whole frames, so that a filter can drop
/// a frame and pass the rest unchanged. Holds at most one partial frame.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: Vec<u8>,
}

impl Reassembler {
    /// Feeds `data`; calls `on_frame(frame_bytes_with_header, info)` for every complete frame.
    /// Bytes after the last complete frame are kept for the next call.
    pub fn feed(&mut self, data: &[u8], mut on_frame: impl FnMut(&[u8], FrameInfo)) {
        if self.partial.is_empty() {
            let used = Self::scan(data, &mut on_frame);
            self.partial.extend_from_slice(&data[used..]);
        } else {
            self.partial.extend_from_slice(data);
            let buf = std::mem::take(&mut self.partial);
            let used = Self::scan(&buf, &mut on_frame);
            self.partial = buf;
            self.partial.drain(..used);
        }
    }

    fn scan(data: &[u8], on_frame: &mut impl FnMut(&[u8], FrameInfo)) -> usize {
        let mut at = 0;
        while data.len() - at >= HEADER_LEN {
            let len =
                u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            let total = HEADER_LEN + len;
            if data.len() - at < total {
                break;
            }
            let f = &data[at..at + total];
            on_frame(f, classify(&f[HEADER_LEN..]));
            at += total;
        }
        at
    }

    pub fn buffered(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The response check reads request and response ids where the core writes them: the
    /// first varint after the kind.
    #[cfg(feature = "machine")]
    #[test]
    fn request_and_response_ids_are_read_from_core_frames() {
        use timed_core::wire::{Message, RefuseReason};
        use timed_core::ProtocolId;
        let req = Message::Request {
            id: 300,
            protocol: ProtocolId(1000),
            payload: vec![1, 2, 3],
        }
        .to_frame();
        let info = classify(&req[HEADER_LEN..]);
        assert_eq!((info.kind, info.nonce), (Kind::Request, Some(300)));
        for result in [Ok(vec![9; 40]), Err(RefuseReason::Unanswered)] {
            let resp = Message::Response { id: 300, result }.to_frame();
            let info = classify(&resp[HEADER_LEN..]);
            assert_eq!((info.kind, info.nonce), (Kind::Response, Some(300)));
        }
        let gossip = Message::Gossip {
            topic: timed_core::TopicId(1),
            payload: vec![0; 10],
        }
        .to_frame();
        assert_eq!(classify(&gossip[HEADER_LEN..]).nonce, None);
    }

    #[test]
    fn frames_split_anywhere_reassemble_with_nonces() {
        let mut wire = Vec::new();
        let mut body = Vec::new();
        write_varint(u64::MAX, &mut body);
        frame(Kind::Ping, &body, &mut wire);
        frame(Kind::Hello, b"xyz", &mut wire);
        frame(Kind::Pong, &[5], &mut wire);
        for cut in 0..wire.len() {
            let mut r = Reassembler::default();
            let mut got = Vec::new();
            r.feed(&wire[..cut], |f, i| got.push((f.len(), i)));
            r.feed(&wire[cut..], |f, i| got.push((f.len(), i)));
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(
                got[0].1,
                FrameInfo {
                    kind: Kind::Ping,
                    nonce: Some(u64::MAX)
                }
            );
            assert_eq!(got[1].1.kind, Kind::Hello);
            assert_eq!(
                got[2].1,
                FrameInfo {
                    kind: Kind::Pong,
                    nonce: Some(5)
                }
            );
            assert_eq!(r.buffered(), 0);
        }
    }
}
