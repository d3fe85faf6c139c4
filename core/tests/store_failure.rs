//! A store that fails (full disk, I/O error) stops the machine with a message, says goodbye
//! to its peers, and never half-applies anything.

mod common;

use common::*;
use std::fmt;
use timed_core::{
    AddrEntry, Block, BlockHash, GoodbyeReason, Header, MemStore, Network, NodeEvent, NodeId,
    PeerAddr, PeerMachine, Store,
};

/// A MemStore whose writes fail once `fail_writes` is set, like a disk that filled up.
#[derive(Clone, Debug)]
struct FlakyStore {
    inner: MemStore,
    fail_writes: bool,
}

#[derive(Debug)]
struct DiskFull;

impl fmt::Display for DiskFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the disk holding /data/store is full")
    }
}

impl std::error::Error for DiskFull {}

impl Store for FlakyStore {
    type Error = DiskFull;
    fn identity(&self) -> Result<Option<NodeId>, DiskFull> {
        Ok(self.inner.identity().unwrap_or(None))
    }
    fn set_identity(&mut self, id: NodeId) -> Result<(), DiskFull> {
        let _ = self.inner.set_identity(id);
        Ok(())
    }
    fn tip(&self) -> Result<(u64, BlockHash), DiskFull> {
        self.inner.tip().map_err(|e| match e {})
    }
    fn header_at(&self, h: u64) -> Result<Option<Header>, DiskFull> {
        self.inner.header_at(h).map_err(|e| match e {})
    }
    fn block_at(&self, h: u64) -> Result<Option<Block>, DiskFull> {
        self.inner.block_at(h).map_err(|e| match e {})
    }
    fn apply(&mut self, rollback_to: Option<u64>, blocks: &[Block]) -> Result<(), DiskFull> {
        if self.fail_writes {
            return Err(DiskFull);
        }
        self.inner
            .apply(rollback_to, blocks)
            .map_err(|e| match e {})
    }
    fn addrs(&self) -> Result<Vec<AddrEntry>, DiskFull> {
        self.inner.addrs().map_err(|e| match e {})
    }
    fn put_addr(&mut self, e: AddrEntry) -> Result<(), DiskFull> {
        if self.fail_writes {
            return Err(DiskFull);
        }
        self.inner.put_addr(e).map_err(|e| match e {})
    }
    fn remove_addr(&mut self, a: PeerAddr) -> Result<(), DiskFull> {
        self.inner.remove_addr(a).map_err(|e| match e {})
    }
}

#[test]
fn a_full_disk_stops_the_node_with_the_cause_and_a_goodbye_to_every_peer() {
    // What the (scripted) producer serves.
    let mut chain = MemStore::new(Network::Devnet);
    chain.extend_empty(50);
    let now = timed_core::Instant::ZERO;
    let store = FlakyStore {
        inner: MemStore::new(Network::Devnet),
        fail_writes: true,
    };
    let mut m = PeerMachine::new(config(2, "127.0.0.1:7001", &[]), store, now).expect("config");
    let conn = m.accept(now, addr("127.0.0.1:5000")).expect("accepted");
    let g = Network::Devnet.genesis_hash();
    let hello = timed_core::wire::Message::Hello(timed_core::wire::Hello {
        magic: timed_core::wire::MAGIC,
        version: timed_core::wire::PROTOCOL_VERSION,
        min_version: timed_core::wire::MIN_PROTOCOL_VERSION,
        network: Network::Devnet.id(),
        genesis: g,
        node_id: id(1),
        boot: 1,
        listen_port: Some(7000),
        best_height: 50,
        best_hash: g,
        user_agent: "producer".into(),
        protocols: timed_core::protocol::builtin::default_adverts().0,
        topics: timed_core::protocol::builtin::default_adverts().1,
    });
    m.handle(
        now,
        timed_core::Input::BytesIn {
            conn,
            data: &hello.to_frame(),
        },
    );
    let mut fatal = None;
    let mut goodbye = None;
    let mut range = None;
    for _ in 0..2 {
        while let Some(a) = m.poll_action() {
            match a {
                timed_core::Action::Notify(NodeEvent::Fatal { error }) => fatal = Some(error),
                timed_core::Action::Send { data, .. } => {
                    let mut d = timed_core::wire::FrameDecoder::new(u32::MAX);
                    d.push(&data);
                    while let Ok(Some(p)) = d.next_frame() {
                        match timed_core::wire::Message::decode(p) {
                            Ok(timed_core::wire::Decoded::Known(
                                timed_core::wire::Message::Goodbye(g),
                            )) => goodbye = Some(g.reason),
                            Ok(timed_core::wire::Decoded::Known(m)) => {
                                if let Some(r) = as_blocks_request(&m) {
                                    range = Some(r);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // Answer the range request with valid blocks: applying them hits the full disk.
        if let Some((rid, from, count)) = range.take() {
            let blocks = (from..from + count as u64)
                .filter_map(|h| chain.block_at(h).expect("mem"))
                .collect();
            let resp = blocks_response(rid, blocks);
            m.handle(
                now,
                timed_core::Input::BytesIn {
                    conn,
                    data: &resp.to_frame(),
                },
            );
        }
    }
    let failure = fatal.expect("the failure is reported");
    // The first write after the disk filled: the peer's address, or the blocks.
    use timed_core::StoreOp;
    assert!(
        matches!(failure.op, StoreOp::WriteAddrs | StoreOp::WriteBlocks),
        "{failure:?}"
    );
    assert!(
        failure.downcast_ref::<DiskFull>().is_some(),
        "the store's own error comes back as a value: {failure:?}"
    );
    let err = failure.to_string();
    assert!(
        err.starts_with("writing ") && err.contains("/data/store") && err.contains("full"),
        "names the operation, the path and the cause: {err}"
    );
    assert_eq!(goodbye, Some(GoodbyeReason::Shutdown), "peers are told");
    assert!(m.is_stopped());
    assert_eq!(m.status().height, 0, "nothing half-applied");
    assert_eq!(m.store().inner.height(), 0);
    assert!(
        m.poll_timeout().is_none(),
        "a stopped machine has no timers"
    );
}
