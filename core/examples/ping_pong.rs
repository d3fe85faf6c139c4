//! 100 000 pings through one established connection, each answered with a pong: the core's
//! receive path with nothing else in the process, for counting instructions
//! (`valgrind --tool=cachegrind --cache-sim=no`), which, unlike time, does not depend on what
//! else the machine is doing.
//!
//!     cargo run --release -p timed-core --example ping_pong [recycle]

use timed_core::wire::{Hello, Message};
use timed_core::{Action, Config, Input, Instant, MemStore, Network, NodeId, PeerMachine};

const FRAMES: u64 = 100_000;
const CHUNK: usize = 1_460;

fn main() {
    let recycle = std::env::args().any(|a| a == "recycle");
    let now = Instant(1_000);
    let mut m = PeerMachine::new(
        Config::new(Network::Devnet, NodeId([1; 32]), 1),
        MemStore::new(Network::Devnet),
        now,
    )
    .expect("a valid config");
    let conn = m
        .accept(now, "127.0.0.1:5000".parse().expect("literal"))
        .expect("accepted");
    let g = Network::Devnet.genesis_hash();
    let adverts = timed_core::protocol::builtin::default_adverts();
    let hello = Hello {
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
        user_agent: "ping_pong".into(),
        protocols: adverts.0,
        topics: adverts.1,
    };
    let frame = Message::Hello(hello).to_frame();
    m.handle(now, Input::BytesIn { conn, data: &frame });
    while m.poll_action().is_some() {}
    let mut stream = Vec::new();
    for i in 0..FRAMES {
        Message::Ping { nonce: i + 1 }.encode_frame(&mut stream);
    }
    let mut pongs = 0u64;
    for chunk in stream.chunks(CHUNK) {
        m.handle(now, Input::BytesIn { conn, data: chunk });
        while let Some(a) = m.poll_action() {
            if let Action::Send { data, .. } = a {
                pongs += 1;
                let bytes = data.len();
                m.handle(now, Input::Written { conn, bytes });
                if recycle {
                    m.recycle(data);
                }
            }
        }
    }
    assert!(pongs >= FRAMES, "every ping answered: {pongs}");
    println!("{pongs} pongs");
}
