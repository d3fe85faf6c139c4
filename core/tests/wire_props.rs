//! Property tests for wire protocol v2: every message roundtrips with arbitrary
//! contents (requests and gossip on any protocol or topic id, with any payload; responses
//! and refusals), the built-in protocols' bodies survive their own encoding, any chunking of
//! a byte stream decodes to the same frames, arbitrary bytes never panic the decoders, and
//! an oversized length prefix is refused from the header alone.

use proptest::collection::vec;
use proptest::prelude::*;
use timed_core::chain::{Block, BlockHash, Header, Tx};
use timed_core::protocol::{builtin, ProtocolAd, ProtocolId, TopicAd, TopicId};
use timed_core::wire::{
    encode_frame, Decoded, FrameDecoder, FrameError, Goodbye, GoodbyeReason, Hello, Message,
    MessageKind, PeerAddr, RefuseReason, RequestBody, ResponseBody, APP_REFUSE_BASE,
};
use timed_core::NodeId;

// ---- strategies ---------------------------------------------------------------------------

fn hash() -> impl Strategy<Value = BlockHash> {
    any::<[u8; 32]>().prop_map(BlockHash)
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(NodeId)
}

/// Any string, including multi-byte characters and the empty string.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), ".{0,40}", "\\PC{0,300}"]
}

fn protocol_ad() -> impl Strategy<Value = ProtocolAd> {
    (any::<u32>(), any::<u32>(), any::<u16>()).prop_map(|(id, max_request_bytes, max_in_flight)| {
        ProtocolAd {
            id: ProtocolId(id),
            max_request_bytes,
            max_in_flight,
        }
    })
}

fn topic_ad() -> impl Strategy<Value = TopicAd> {
    (any::<u32>(), any::<u32>()).prop_map(|(id, max_message_bytes)| TopicAd {
        id: TopicId(id),
        max_message_bytes,
    })
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        (
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            hash(),
            node_id(),
            any::<u64>(),
            any::<Option<u16>>(),
            any::<u64>(),
            hash(),
            text(),
        ),
        vec(protocol_ad(), 0..8),
        vec(topic_ad(), 0..8),
    )
        .prop_map(
            |(
                (
                    magic,
                    version,
                    min_version,
                    network,
                    genesis,
                    node_id,
                    boot,
                    listen_port,
                    best_height,
                    best_hash,
                    user_agent,
                ),
                protocols,
                topics,
            )| {
                Hello {
                    magic,
                    version,
                    min_version,
                    network,
                    genesis,
                    node_id,
                    boot,
                    listen_port,
                    best_height,
                    best_hash,
                    user_agent,
                    protocols,
                    topics,
                }
            },
        )
}

/// Codes that `GoodbyeReason::from_code` maps to a named variant.
const NAMED_GOODBYE_CODES: std::ops::RangeInclusive<u16> = 1..=14;

fn goodbye_reason() -> impl Strategy<Value = GoodbyeReason> {
    prop_oneof![
        // Every named reason, through its code.
        NAMED_GOODBYE_CODES.prop_map(GoodbyeReason::from_code),
        // `Other` with a code no named reason uses (a reason from a newer version).
        any::<u16>()
            .prop_filter("named code", |c| !NAMED_GOODBYE_CODES.contains(c))
            .prop_map(GoodbyeReason::Other),
    ]
}

/// Codes that `RefuseReason::from_code` maps to a named variant.
const NAMED_REFUSE_CODES: std::ops::RangeInclusive<u16> = 1..=6;

/// Every refusal a response can carry. Code 0 is the status of a successful response, so
/// `Other(0)` is not a refusal on the wire; `App(c)` travels as `APP_REFUSE_BASE + c`.
fn refuse_reason() -> impl Strategy<Value = RefuseReason> {
    prop_oneof![
        // Every named reason, through its code.
        NAMED_REFUSE_CODES.prop_map(RefuseReason::from_code),
        // The application's own codes.
        (0..=u16::MAX - APP_REFUSE_BASE).prop_map(RefuseReason::App),
        // `Other` with a code no named reason uses (a reason from a newer version).
        (1..APP_REFUSE_BASE)
            .prop_filter("named code", |c| !NAMED_REFUSE_CODES.contains(c))
            .prop_map(RefuseReason::Other),
    ]
}

/// Protocol and topic ids: the core's own, the first application ids, and any other.
fn wire_id() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..8, 1000u32..1010, any::<u32>()]
}

/// A protocol's or topic's own bytes: opaque to the wire, possibly empty.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        vec(any::<u8>(), 0..64),
        vec(any::<u8>(), 0..2000)
    ]
}

fn tx() -> impl Strategy<Value = Tx> {
    vec(any::<u8>(), 0..64).prop_map(Tx)
}

fn header() -> impl Strategy<Value = Header> {
    (any::<u64>(), hash(), any::<u64>(), any::<[u8; 32]>()).prop_map(
        |(height, prev, time, tx_root)| Header {
            height,
            prev,
            time,
            tx_root,
        },
    )
}

/// Arbitrary blocks: headers need not be valid (the wire does not care), txs are arbitrary.
fn block() -> impl Strategy<Value = Block> {
    (header(), vec(tx(), 0..6)).prop_map(|(header, txs)| Block { header, txs })
}

fn peer_addr() -> impl Strategy<Value = PeerAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| PeerAddr::V4(ip, p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| PeerAddr::V6(ip, p)),
    ]
}

fn request_body() -> impl Strategy<Value = RequestBody> {
    prop_oneof![
        Just(RequestBody::Tip),
        any::<u64>().prop_map(|height| RequestBody::HashAt { height }),
        (any::<u64>(), any::<u32>()).prop_map(|(from, count)| RequestBody::Blocks { from, count }),
        Just(RequestBody::Peers),
    ]
}

fn response_body() -> impl Strategy<Value = ResponseBody> {
    prop_oneof![
        (any::<u64>(), hash()).prop_map(|(height, hash)| ResponseBody::Tip { height, hash }),
        proptest::option::of(hash()).prop_map(ResponseBody::HashAt),
        vec(block(), 0..4).prop_map(ResponseBody::Blocks),
        vec(peer_addr(), 0..20).prop_map(ResponseBody::Peers),
    ]
}

/// A request on any protocol with any payload, or a well-formed built-in one.
fn request() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), wire_id(), payload()).prop_map(|(id, p, payload)| Message::Request {
            id,
            protocol: ProtocolId(p),
            payload,
        }),
        (any::<u64>(), request_body()).prop_map(|(id, body)| Message::builtin_request(id, &body)),
    ]
}

/// A response with any payload, a refusal, or a well-formed built-in answer.
fn response() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), payload()).prop_map(|(id, p)| Message::Response { id, result: Ok(p) }),
        (any::<u64>(), refuse_reason())
            .prop_map(|(id, r)| Message::Response { id, result: Err(r) }),
        (any::<u64>(), response_body()).prop_map(|(id, body)| Message::builtin_response(id, &body)),
    ]
}

/// A message on any topic with any payload, or a block or transaction on the built-in
/// topics.
fn gossip() -> impl Strategy<Value = Message> {
    prop_oneof![
        (wire_id(), payload()).prop_map(|(t, payload)| Message::Gossip {
            topic: TopicId(t),
            payload,
        }),
        block().prop_map(|b| Message::Gossip {
            topic: builtin::BLOCK_TOPIC,
            payload: postcard::to_allocvec(&b).unwrap(),
        }),
        tx().prop_map(|t| Message::Gossip {
            topic: builtin::TX_TOPIC,
            payload: postcard::to_allocvec(&t).unwrap(),
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello().prop_map(Message::Hello),
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
        (goodbye_reason(), text())
            .prop_map(|(reason, detail)| Message::Goodbye(Goodbye { reason, detail })),
        request(),
        response(),
        gossip(),
    ]
}

/// Encodes `m` as one frame and decodes it back through a fresh `FrameDecoder`.
fn roundtrip(m: &Message) -> Result<(), TestCaseError> {
    let frame = m.to_frame();
    let declared = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
    prop_assert_eq!(
        declared,
        frame.len() - 4,
        "length prefix must cover exactly the payload"
    );
    let mut d = FrameDecoder::new(u32::MAX);
    d.push(&frame);
    let payload = d
        .next_frame()
        .unwrap()
        .expect("one whole frame was pushed")
        .to_vec();
    prop_assert_eq!(d.buffered(), 0);
    prop_assert_eq!(Message::decode(&payload), Ok(Decoded::Known(m.clone())));
    // `encode_frame` appends: a frame after existing bytes is the same frame.
    let mut out = vec![0xAA, 0xBB];
    m.encode_frame(&mut out);
    prop_assert_eq!(&out[2..], &frame[..]);
    Ok(())
}

/// Splits `bytes` at the given cut points (taken modulo the length, sorted, deduplicated).
fn split_at_cuts(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| {
            if bytes.is_empty() {
                0
            } else {
                c % (bytes.len() + 1)
            }
        })
        .collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

/// Pushes chunks one by one, draining complete frames after each push when `drain[i]`.
fn decode_chunks(
    max_frame: u32,
    chunks: &[Vec<u8>],
    drain: &[bool],
) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut d = FrameDecoder::new(max_frame);
    let mut got = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        d.push(chunk);
        let last = i + 1 == chunks.len();
        if last || drain.get(i).copied().unwrap_or(true) {
            while let Some(f) = d.next_frame()? {
                got.push(f.to_vec());
            }
        }
    }
    assert_eq!(
        d.buffered(),
        0,
        "a stream of whole frames leaves nothing buffered"
    );
    Ok(got)
}

// ---- properties ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every `Message` variant, with arbitrary contents, survives encode → frame → decode.
    #[test]
    fn every_message_roundtrips(m in message()) {
        roundtrip(&m)?;
    }

    /// Each variant on its own, so a weak `prop_oneof!` weighting cannot hide one.
    #[test]
    fn hello_roundtrips(h in hello()) { roundtrip(&Message::Hello(h))?; }

    #[test]
    fn goodbye_roundtrips_including_other_reasons(reason in goodbye_reason(), detail in text()) {
        roundtrip(&Message::Goodbye(Goodbye { reason, detail }))?;
    }

    #[test]
    fn request_roundtrips(m in request()) {
        roundtrip(&m)?;
    }

    #[test]
    fn response_and_refusal_roundtrip(m in response()) {
        roundtrip(&m)?;
    }

    #[test]
    fn gossip_roundtrips(m in gossip()) {
        roundtrip(&m)?;
    }

    /// A built-in request travels on its own protocol and comes back as the same body.
    #[test]
    fn builtin_requests_decode_to_what_was_asked(id in any::<u64>(), body in request_body()) {
        let m = Message::builtin_request(id, &body);
        roundtrip(&m)?;
        let Message::Request { protocol, .. } = &m else {
            return Err(TestCaseError::fail("a built-in request is a Request"));
        };
        let (want, _) = builtin::encode_request(&body);
        prop_assert_eq!(*protocol, want);
        prop_assert_eq!(m.as_builtin_request(), Some((id, body)));
    }

    /// A built-in response decodes, with the protocol of its request, to the same body.
    #[test]
    fn builtin_responses_decode_with_their_protocol(id in any::<u64>(), body in response_body()) {
        let protocol = match &body {
            ResponseBody::Tip { .. } => builtin::TIP,
            ResponseBody::HashAt(_) => builtin::HASH_AT,
            ResponseBody::Blocks(_) => builtin::BLOCKS,
            ResponseBody::Peers(_) => builtin::PEERS,
        };
        let m = Message::builtin_response(id, &body);
        roundtrip(&m)?;
        let Message::Response { result: Ok(bytes), .. } = &m else {
            return Err(TestCaseError::fail("a built-in response is a successful Response"));
        };
        prop_assert_eq!(builtin::decode_response(protocol, bytes), Some(body));
    }

    #[test]
    fn blocks_response_with_arbitrary_txs_roundtrips(id in any::<u64>(), blocks in vec(block(), 1..4)) {
        let m = Message::builtin_response(id, &ResponseBody::Blocks(blocks.clone()));
        roundtrip(&m)?;
        let Message::Response { result: Ok(bytes), .. } = &m else {
            return Err(TestCaseError::fail("a successful Response"));
        };
        prop_assert_eq!(
            builtin::decode_response(builtin::BLOCKS, bytes),
            Some(ResponseBody::Blocks(blocks))
        );
    }

    #[test]
    fn peers_response_with_v4_and_v6_roundtrips(id in any::<u64>(), peers in vec(peer_addr(), 0..40)) {
        let m = Message::builtin_response(id, &ResponseBody::Peers(peers.clone()));
        roundtrip(&m)?;
        let Message::Response { result: Ok(bytes), .. } = &m else {
            return Err(TestCaseError::fail("a successful Response"));
        };
        prop_assert_eq!(
            builtin::decode_response(builtin::PEERS, bytes),
            Some(ResponseBody::Peers(peers))
        );
    }

    /// Blocks and transactions on the built-in topics are their postcard bytes, unchanged.
    #[test]
    fn block_and_tx_gossip_roundtrip(b in block(), t in tx()) {
        for (topic, payload) in [
            (builtin::BLOCK_TOPIC, postcard::to_allocvec(&b).unwrap()),
            (builtin::TX_TOPIC, postcard::to_allocvec(&t).unwrap()),
        ] {
            let m = Message::Gossip { topic, payload };
            roundtrip(&m)?;
        }
        let frame = Message::Gossip { topic: builtin::BLOCK_TOPIC, payload: postcard::to_allocvec(&b).unwrap() }.to_frame();
        let Ok(Decoded::Known(Message::Gossip { payload, .. })) = Message::decode(&frame[4..]) else {
            return Err(TestCaseError::fail("gossip decodes as gossip"));
        };
        prop_assert_eq!(postcard::from_bytes::<Block>(&payload).ok(), Some(b));
    }

    /// A refusal's code survives the wire, whatever the reason (named, application's, newer).
    #[test]
    fn refusals_keep_their_reason(id in any::<u64>(), r in refuse_reason()) {
        let frame = Message::Response { id, result: Err(r) }.to_frame();
        prop_assert_eq!(
            Message::decode(&frame[4..]),
            Ok(Decoded::Known(Message::Response { id, result: Err(r) }))
        );
    }

    /// A `PeerAddr` converts to a `SocketAddr` and back unchanged, both families.
    #[test]
    fn peer_addr_socket_addr_roundtrip(a in peer_addr()) {
        let s: std::net::SocketAddr = a.into();
        prop_assert_eq!(PeerAddr::from(s), a);
    }

    /// `GoodbyeReason` / `RefuseReason` codes are a bijection on the wire: any u16 decodes to
    /// the reason whose code is that u16 (`Other(2)` is canonicalised to `Duplicate`); the same
    /// for refusals, except 0, which is the success status.
    #[test]
    fn reason_codes_are_canonical(code in any::<u16>(), detail in text()) {
        let r = GoodbyeReason::from_code(code);
        prop_assert_eq!(r.code(), code);
        let m = Message::Goodbye(Goodbye { reason: GoodbyeReason::Other(code), detail: detail.clone() });
        let payload = m.to_frame()[4..].to_vec();
        prop_assert_eq!(Message::decode(&payload), Ok(Decoded::Known(Message::Goodbye(Goodbye { reason: r, detail }))));
        // Refusal code 0 is the success status on the wire, never a refusal's code.
        if code != 0 {
            let rr = RefuseReason::from_code(code);
            prop_assert_eq!(rr.code(), code);
        }
    }

    /// Any chunking of a stream of many frames decodes to the same frames, whether the reader
    /// drains after every chunk or lets several chunks pile up first.
    #[test]
    fn any_chunking_decodes_to_the_same_frames(
        msgs in vec(message(), 0..12),
        raw in vec(vec(any::<u8>(), 0..40), 0..6),
        cuts in vec(any::<usize>(), 0..40),
        drain in vec(any::<bool>(), 0..40),
    ) {
        let mut payloads: Vec<Vec<u8>> = msgs.iter().map(|m| m.to_frame()[4..].to_vec()).collect();
        payloads.extend(raw); // opaque payloads, including empty ones
        let mut stream = Vec::new();
        for p in &payloads {
            encode_frame(p, &mut stream);
        }
        let max = payloads.iter().map(Vec::len).max().unwrap_or(0) as u32;
        let chunks = split_at_cuts(&stream, &cuts);
        let got = decode_chunks(max, &chunks, &drain).expect("no frame exceeds max_frame");
        prop_assert_eq!(&got, &payloads);
        for (m, p) in msgs.iter().zip(&got) {
            prop_assert_eq!(Message::decode(p), Ok(Decoded::Known(m.clone())));
        }
    }

    /// Byte-by-byte delivery is the extreme chunking.
    #[test]
    fn byte_by_byte_decodes_to_the_same_frames(msgs in vec(message(), 1..5)) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode_frame(&mut stream);
        }
        let chunks: Vec<Vec<u8>> = stream.iter().map(|b| vec![*b]).collect();
        let got = decode_chunks(u32::MAX, &chunks, &[]).unwrap();
        let decoded: Vec<Decoded> = got.iter().map(|p| Message::decode(p).unwrap()).collect();
        let want: Vec<Decoded> = msgs.into_iter().map(Decoded::Known).collect();
        prop_assert_eq!(decoded, want);
    }

    /// Arbitrary bytes never panic `Message::decode`; whatever decodes re-encodes to a payload
    /// that decodes to the same thing.
    #[test]
    fn arbitrary_payloads_never_panic_decode(payload in vec(any::<u8>(), 0..300)) {
        if let Ok(Decoded::Known(m)) = Message::decode(&payload) {
            let again = m.to_frame()[4..].to_vec();
            prop_assert_eq!(Message::decode(&again), Ok(Decoded::Known(m)));
        }
    }

    /// Arbitrary payloads starting with a known kind (the interesting half of the space);
    /// whatever decodes re-encodes to the same message.
    #[test]
    fn arbitrary_bodies_of_known_kinds_never_panic_decode(
        kind in 0..MessageKind::ALL.len() as u8,
        body in vec(any::<u8>(), 0..300),
    ) {
        let mut payload = vec![kind];
        payload.extend(body);
        if let Ok(Decoded::Known(m)) = Message::decode(&payload) {
            prop_assert_eq!(m.kind() as u8, kind);
            let again = m.to_frame()[4..].to_vec();
            prop_assert_eq!(Message::decode(&again), Ok(Decoded::Known(m)));
        }
    }

    /// Arbitrary bytes in arbitrary chunks never panic `FrameDecoder`; it never hands out a
    /// frame larger than `max_frame`, and once it errors it keeps erroring.
    #[test]
    fn arbitrary_bytes_never_panic_frame_decoder(
        bytes in vec(any::<u8>(), 0..2000),
        cuts in vec(any::<usize>(), 0..20),
        max_frame in prop_oneof![0u32..64, Just(1024u32), Just(u32::MAX)],
    ) {
        let mut d = FrameDecoder::new(max_frame);
        let mut failed = None;
        for chunk in split_at_cuts(&bytes, &cuts) {
            d.push(&chunk);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(failed.is_none(), "a frame after an error");
                        prop_assert!(f.len() <= max_frame as usize);
                        let _ = Message::decode(f);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if let Some(prev) = failed {
                            prop_assert_eq!(prev, e);
                        }
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
    }

    /// A length prefix above `max_frame` is refused as soon as the 4 header bytes are in,
    /// after any number of good frames, whatever follows, without buffering the payload.
    #[test]
    fn oversized_length_prefix_is_refused_from_the_header_alone(
        max_frame in 0u32..(16 << 20),
        excess in 1u32..=u32::MAX,
        good in vec(vec(any::<u8>(), 0..32), 0..4),
        header_split in 0usize..4,
    ) {
        let declared = max_frame.saturating_add(excess);
        prop_assume!(declared > max_frame);
        let good: Vec<Vec<u8>> = good.into_iter().filter(|p| p.len() <= max_frame as usize).collect();
        let mut d = FrameDecoder::new(max_frame);
        let mut stream = Vec::new();
        for p in &good {
            encode_frame(p, &mut stream);
        }
        d.push(&stream);
        for p in &good {
            prop_assert_eq!(d.next_frame().unwrap(), Some(&p[..]));
        }
        let header = declared.to_le_bytes();
        // A partial header is not yet an error.
        d.push(&header[..header_split]);
        prop_assert_eq!(d.next_frame(), Ok(None));
        d.push(&header[header_split..]);
        prop_assert_eq!(d.next_frame(), Err(FrameError::TooLarge { declared, max: max_frame }));
        prop_assert_eq!(d.buffered(), 4, "only the header was buffered");
    }

    /// A frame of exactly `max_frame` bytes is accepted (the bound is inclusive).
    #[test]
    fn a_frame_of_exactly_max_frame_is_accepted(len in 0usize..2048) {
        let payload = vec![7u8; len];
        let mut stream = Vec::new();
        encode_frame(&payload, &mut stream);
        let mut d = FrameDecoder::new(len as u32);
        d.push(&stream);
        prop_assert_eq!(d.next_frame(), Ok(Some(&payload[..])));
    }

    /// A payload whose kind is unknown to this version decodes as skippable, whatever follows.
    #[test]
    fn unknown_kinds_are_skippable(kind in MessageKind::ALL.len() as u32.., body in vec(any::<u8>(), 0..64)) {
        let mut payload = postcard::to_allocvec(&kind).unwrap();
        payload.extend(body);
        prop_assert_eq!(Message::decode(&payload), Ok(Decoded::UnknownKind(kind)));
        prop_assert!(MessageKind::from_u32(kind).is_none());
    }
}
