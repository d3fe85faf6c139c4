//! The per-frame cost of the core: framing + decoding, and the machine's whole receive path
//! (decode, dispatch, answer), each next to its floor measured in the same run.
//!
//! Run: `cargo bench -p timed-core --bench frames`. Figures live in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use timed_core::wire::{Decoded, FrameDecoder, Message, MessageRef};
use timed_core::{Action, Config, Input, Instant, MemStore, Network, NodeId, PeerMachine};

const FRAMES: usize = 10_000;
const CHUNK: usize = 1_460; // one TCP segment's payload

fn ping_stream() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..FRAMES as u64 {
        Message::Ping { nonce: i + 1 }.encode_frame(&mut out);
    }
    out
}

fn decode(c: &mut Criterion) {
    let stream = ping_stream();
    let mut g = c.benchmark_group("decode_10k_pings");
    g.throughput(Throughput::Elements(FRAMES as u64));
    // Floor: decoding alone (as the machine does, in place) on pre-split payloads, no framing,
    // no chunk reassembly.
    let payloads: Vec<Vec<u8>> = (0..FRAMES as u64)
        .map(|i| Message::Ping { nonce: i + 1 }.to_frame()[4..].to_vec())
        .collect();
    g.bench_function(BenchmarkId::new("baseline_postcard_only", CHUNK), |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(MessageRef::decode(black_box(p)).ok());
            }
        })
    });
    g.bench_function(BenchmarkId::new("frame_decoder_chunked", CHUNK), |b| {
        b.iter(|| {
            let mut d = FrameDecoder::new(8 << 20);
            let mut n = 0;
            for chunk in stream.chunks(CHUNK) {
                d.push(chunk);
                while let Ok(Some(p)) = d.next_frame() {
                    if let Ok(Decoded::Known(m)) = MessageRef::decode(p) {
                        black_box(m);
                        n += 1;
                    }
                }
            }
            assert_eq!(n, FRAMES);
        })
    });
    g.finish();
}

/// A machine with one established inbound peer, and that peer's conn id.
fn established() -> (PeerMachine<MemStore>, timed_core::ConnId) {
    let now = Instant::ZERO;
    let mut m = PeerMachine::new(
        Config::new(Network::Devnet, NodeId([1; 32]), 1),
        MemStore::new(Network::Devnet),
        now,
    )
    .expect("config");
    let conn = m
        .accept(now, "127.0.0.1:5000".parse().expect("addr"))
        .expect("accept");
    let g = Network::Devnet.genesis_hash();
    let hello = timed_core::wire::Hello {
        magic: timed_core::wire::MAGIC,
        version: timed_core::wire::PROTOCOL_VERSION,
        min_version: timed_core::wire::MIN_PROTOCOL_VERSION,
        network: Network::Devnet.id(),
        genesis: g,
        node_id: NodeId([2; 32]),
        boot: 1,
        listen_port: None,
        best_height: 0,
        best_hash: g,
        user_agent: "bench".into(),
        protocols: timed_core::protocol::builtin::default_adverts().0,
        topics: timed_core::protocol::builtin::default_adverts().1,
    };
    m.handle(
        now,
        Input::BytesIn {
            conn,
            data: &Message::Hello(hello).to_frame(),
        },
    );
    while m.poll_action().is_some() {}
    assert_eq!(
        m.status().peers.len(),
        1,
        "the bench peer completed its handshake"
    );
    (m, conn)
}

fn machine_receive(c: &mut Criterion) {
    let stream = ping_stream();
    let mut g = c.benchmark_group("machine_answers_10k_pings");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("frame_decoder_only_baseline", |b| {
        b.iter(|| {
            let mut d = FrameDecoder::new(8 << 20);
            for chunk in stream.chunks(CHUNK) {
                d.push(chunk);
                while let Ok(Some(p)) = d.next_frame() {
                    black_box(MessageRef::decode(p).ok());
                }
            }
        })
    });
    // The driver drops each sent buffer (as the tokio adapter does), or gives it back with
    // `recycle` (as the simulator does).
    for (name, recycle) in [
        ("peer_machine_bytes_in_to_pong_out", false),
        ("peer_machine_bytes_in_to_pong_out_recycling", true),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                established,
                |(mut m, conn)| {
                    let now = Instant(1_000);
                    let mut pongs = 0;
                    for chunk in stream.chunks(CHUNK) {
                        m.handle(now, Input::BytesIn { conn, data: chunk });
                        while let Some(a) = m.poll_action() {
                            if let Action::Send { data, .. } = a {
                                pongs += 1;
                                m.handle(
                                    now,
                                    Input::Written {
                                        conn,
                                        bytes: data.len(),
                                    },
                                );
                                if recycle {
                                    m.recycle(data);
                                }
                            }
                        }
                    }
                    assert!(pongs >= FRAMES);
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, decode, machine_receive);
criterion_main!(benches);
