//! Arbitrary bytes, in arbitrary chunks, into `FrameDecoder` and every frame it yields into
//! `Message::decode`. Must never panic; a frame is never larger than `max_frame`; once the
//! decoder reports an oversized frame it keeps doing so; whatever decodes re-encodes to a
//! payload that decodes to the same message, the borrowing and the owned decoders agree, and
//! `peek_kind` names the kind the full decode finds.
//!
//! Then one structured message of wire version 2 — a `Hello` with arbitrary protocol and topic
//! adverts, a request on any protocol id, a response (payload or any constructible refusal),
//! gossip on any topic, a built-in request or response — is encoded and must decode back to
//! itself (a non-canonical refusal such as `Other(0)` or `App(65000)` to the refusal its code
//! names, and never to a success), through both encoders (`Message` and `MessageRef`) and
//! through `FrameDecoder`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use timed_core::protocol::{builtin, ProtocolAd, ProtocolId, TopicAd, TopicId};
use timed_core::wire::{
    Decoded, FrameDecoder, Goodbye, GoodbyeReason, Hello, Message, MessageRef, PeerAddr,
    RefuseReason, RequestBody, ResponseBody,
};
use timed_core::{BlockHash, NodeId};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Picks `max_frame`: tiny, the 1 KiB minimum, the 8 MiB default, or unbounded.
    max_frame: u8,
    /// Chunk lengths (mod 64, plus one) used to cut `bytes`, cycled.
    chunks: Vec<u8>,
    /// Whether to drain frames after a chunk (cycled); always drained at the end.
    drain: Vec<bool>,
    bytes: Vec<u8>,
    /// A message built field by field, for the encode → decode direction.
    shape: Option<Shape>,
}

#[derive(Debug, Arbitrary)]
enum Shape {
    Hello {
        magic: [u8; 4],
        version: u16,
        min_version: u16,
        network: u32,
        genesis: [u8; 32],
        node: [u8; 32],
        boot: u64,
        listen_port: Option<u16>,
        best_height: u64,
        user_agent: String,
        protocols: Vec<(u32, u32, u16)>,
        topics: Vec<(u32, u32)>,
    },
    Ping(u64),
    Pong(u64),
    Goodbye(u16, String),
    Request {
        id: u64,
        protocol: u32,
        payload: Vec<u8>,
    },
    Response {
        id: u64,
        /// `None`: a refusal (see `refusal`).
        payload: Option<Vec<u8>>,
        refusal: (u8, u16),
    },
    Gossip {
        topic: u32,
        payload: Vec<u8>,
    },
    BuiltinRequest {
        id: u64,
        kind: u8,
        a: u64,
        b: u32,
    },
    BuiltinResponse {
        kind: u8,
        a: u64,
        hash: Option<[u8; 32]>,
        peers: Vec<(bool, [u8; 16], u16)>,
    },
}

/// What the machine relies on for any payload that decodes at all.
fn check_payload(payload: &[u8]) {
    let owned = Message::decode(payload);
    let borrowed = MessageRef::decode(payload);
    match (&owned, &borrowed) {
        (Ok(Decoded::Known(m)), Ok(Decoded::Known(r))) => {
            assert_eq!(
                &r.to_owned(),
                m,
                "MessageRef and Message decode differently"
            );
            assert_eq!(MessageRef::peek_kind(payload), Some(Ok(m.kind())));
            let again = m.to_frame();
            assert_eq!(
                again.len(),
                4 + u32::from_le_bytes(again[..4].try_into().unwrap()) as usize
            );
            assert_eq!(Message::decode(&again[4..]), Ok(Decoded::Known(m.clone())));
            let mut via_ref = Vec::new();
            r.encode_frame(&mut via_ref);
            assert_eq!(via_ref, again, "MessageRef and Message encode differently");
        }
        (Ok(Decoded::UnknownKind(k)), Ok(Decoded::UnknownKind(k2))) => {
            assert_eq!(k, k2);
            assert_eq!(MessageRef::peek_kind(payload), Some(Err(*k)));
        }
        (
            Ok(Decoded::OldHello {
                version,
                min_version,
            }),
            Ok(Decoded::OldHello {
                version: v2,
                min_version: m2,
            }),
        ) => {
            assert_eq!((version, min_version), (v2, m2));
            assert!(*version < timed_core::wire::MIN_PROTOCOL_VERSION);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("MessageRef and Message decode differently: {owned:?} vs {borrowed:?}"),
    }
}

fn build(shape: Shape) -> Message {
    match shape {
        Shape::Hello {
            magic,
            version,
            min_version,
            network,
            genesis,
            node,
            boot,
            listen_port,
            best_height,
            user_agent,
            protocols,
            topics,
        } => Message::Hello(Hello {
            magic,
            version,
            min_version,
            network,
            genesis: BlockHash(genesis),
            node_id: NodeId(node),
            boot,
            listen_port,
            best_height,
            best_hash: BlockHash(genesis),
            user_agent,
            protocols: protocols
                .into_iter()
                .map(|(id, max_request_bytes, max_in_flight)| ProtocolAd {
                    id: ProtocolId(id),
                    max_request_bytes,
                    max_in_flight,
                })
                .collect(),
            topics: topics
                .into_iter()
                .map(|(id, max_message_bytes)| TopicAd {
                    id: TopicId(id),
                    max_message_bytes,
                })
                .collect(),
        }),
        Shape::Ping(nonce) => Message::Ping { nonce },
        Shape::Pong(nonce) => Message::Pong { nonce },
        Shape::Goodbye(code, detail) => Message::Goodbye(Goodbye {
            reason: GoodbyeReason::from_code(code),
            detail,
        }),
        Shape::Request {
            id,
            protocol,
            payload,
        } => Message::Request {
            id,
            protocol: ProtocolId(protocol),
            payload,
        },
        Shape::Response {
            id,
            payload,
            refusal: (kind, c),
        } => Message::Response {
            id,
            result: payload.ok_or(refusal(kind, c)),
        },
        Shape::Gossip { topic, payload } => Message::Gossip {
            topic: TopicId(topic),
            payload,
        },
        Shape::BuiltinRequest { id, kind, a, b } => {
            let body = builtin_request(kind, a, b);
            let m = Message::builtin_request(id, &body);
            assert_eq!(m.as_builtin_request(), Some((id, body)));
            m
        }
        Shape::BuiltinResponse {
            kind,
            a,
            hash,
            peers,
        } => {
            let (protocol, body) = match kind % 4 {
                0 => (
                    builtin::TIP,
                    ResponseBody::Tip {
                        height: a,
                        hash: BlockHash(hash.unwrap_or_default()),
                    },
                ),
                1 => (builtin::HASH_AT, ResponseBody::HashAt(hash.map(BlockHash))),
                2 => {
                    let genesis = timed_core::Network::Devnet.genesis();
                    let txs = peers
                        .iter()
                        .map(|(_, ip, _)| timed_core::Tx(ip.to_vec()))
                        .collect();
                    let block = timed_core::Block::build(&genesis.header, a, txs);
                    (builtin::BLOCKS, ResponseBody::Blocks(vec![genesis, block]))
                }
                _ => (
                    builtin::PEERS,
                    ResponseBody::Peers(
                        peers
                            .iter()
                            .map(|&(v4, ip, port)| {
                                if v4 {
                                    PeerAddr::V4([ip[0], ip[1], ip[2], ip[3]], port)
                                } else {
                                    PeerAddr::V6(ip, port)
                                }
                            })
                            .collect(),
                    ),
                ),
            };
            let m = Message::builtin_response(a, &body);
            let Message::Response {
                result: Ok(ref bytes),
                ..
            } = m
            else {
                panic!("a built-in response is a success: {m:?}")
            };
            assert_eq!(builtin::decode_response(protocol, bytes), Some(body));
            m
        }
    }
}

/// Any refusal an application can construct, canonical or not (`App(64535)`, `Other(0)`,
/// `Other(1)`, …).
fn refusal(kind: u8, c: u16) -> RefuseReason {
    match kind % 8 {
        0 => RefuseReason::Unsupported,
        1 => RefuseReason::TooManyRequests,
        2 => RefuseReason::TooLarge,
        3 => RefuseReason::Unanswered,
        4 => RefuseReason::BadRequest,
        5 => RefuseReason::Unavailable,
        6 => RefuseReason::App(c),
        _ => RefuseReason::Other(c),
    }
}

/// `m` as it reads back off the wire: a refusal travels as its code, so a non-canonical one
/// arrives as `from_code(code)`. Never as a success: code 0 is the success status.
fn canonical(m: &Message) -> Message {
    match m {
        Message::Response { id, result: Err(r) } => {
            assert_ne!(r.code(), 0, "{r:?} travels as the success status");
            let back = RefuseReason::from_code(r.code());
            assert_eq!(back.code(), r.code(), "{r:?}: its code does not read back");
            Message::Response {
                id: *id,
                result: Err(back),
            }
        }
        m => m.clone(),
    }
}

fn builtin_request(kind: u8, a: u64, b: u32) -> RequestBody {
    match kind % 4 {
        0 => RequestBody::Tip,
        1 => RequestBody::HashAt { height: a },
        2 => RequestBody::Blocks { from: a, count: b },
        _ => RequestBody::Peers,
    }
}

fuzz_target!(|input: Input| {
    let max_frame = match input.max_frame % 4 {
        0 => u32::from(input.max_frame),
        1 => 1024,
        2 => 8 << 20,
        _ => u32::MAX,
    };
    let mut d = FrameDecoder::new(max_frame);
    let mut failed = None;
    let mut rest = &input.bytes[..];
    let mut i = 0usize;
    while !rest.is_empty() {
        let len = input
            .chunks
            .get(i % input.chunks.len().max(1))
            .map_or(rest.len(), |c| usize::from(c % 64) + 1);
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        d.push(chunk);
        let drain = rest.is_empty()
            || input
                .drain
                .get(i % input.drain.len().max(1))
                .copied()
                .unwrap_or(true);
        i += 1;
        if !drain {
            continue;
        }
        loop {
            match d.next_frame() {
                Ok(Some(payload)) => {
                    assert!(failed.is_none(), "a frame after an oversized-frame error");
                    assert!(payload.len() <= max_frame as usize);
                    check_payload(payload);
                }
                Ok(None) => break,
                Err(e) => {
                    if let Some(prev) = failed {
                        assert_eq!(prev, e);
                    }
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    // Whole input also decoded as one payload.
    check_payload(&input.bytes);

    if let Some(shape) = input.shape {
        let m = build(shape);
        let frame = m.to_frame();
        let mut via_ref = Vec::new();
        m.as_ref().encode_frame(&mut via_ref);
        assert_eq!(via_ref, frame, "MessageRef and Message encode differently");
        let mut d = FrameDecoder::new(u32::MAX);
        d.push(&frame);
        let payload = d.next_frame().expect("unbounded").expect("one whole frame");
        assert_eq!(payload, &frame[4..]);
        assert_eq!(
            Message::decode(payload),
            Ok(Decoded::Known(canonical(&m))),
            "does not roundtrip"
        );
        check_payload(payload);
        assert_eq!(d.next_frame(), Ok(None));
    }
});
