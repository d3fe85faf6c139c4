//! The new design: a `timed_core::PeerMachine` with an in-memory store, driven exactly as
//! its contract says (see `PeerMachine`'s docs): one input, drain the actions, re-read the
//! deadline. This file only translates types; every decision is the machine's.
//!
//! Each host has its own monotonic clock epoch (`NodeSpec::clock_offset`) and its own idea of
//! unix time (`unix_time_at_zero`, skewed per host): the machine only ever sees its own.
//!
//! Chain scenarios hand every node a [`ChainSpec`](crate::scenario::ChainSpec) in its tuning:
//! a first boot starts from that node's prefix of the prebuilt chain ([`prebuilt_store`]),
//! producers get `Config::produce_blocks`. The model logs every tip it reaches
//! ([`NodeModel::tip_log`]) for the same-tip check and the sync figures.

use crate::model::app::SimApp;
use crate::model::{
    CloseKind, Hop, ModelAction, ModelConn, ModelCounters, ModelEvent, NodeModel, NodeSpec,
    TipChange,
};
use crate::time::Micros;
use std::net::SocketAddr;
use std::sync::Arc;
use timed_core::{
    Action, Block, Config, ConnId, Duration, Input, Instant, MemStore, Network, NodeEvent, NodeId,
    PeerMachine, RequestBody, Store, Tx,
};

/// Unix time of the simulated world at virtual zero, before per-host skew: 30 days after the
/// devnet genesis. The engine's [`UNIX_EPOCH_AT_ZERO`](crate::engine::UNIX_EPOCH_AT_ZERO)
/// (June 2025) is older than the devnet genesis (2026-01-01), so every block built on it
/// would be "more than 2 h in the future" to every node; the machine's clock is shifted by
/// the difference (skews are kept). The prebuilt chains (one block a second from genesis) end
/// well before it.
pub fn world_unix_at_zero() -> u64 {
    Network::Devnet.genesis().header.time + 30 * 86_400
}

/// A store holding genesis and `height` blocks of the prebuilt chain: the same blocks on every
/// node and in every run. Blocks are one second apart from genesis; every `tx_every`-th (if
/// not 0) carries three small transactions.
pub fn prebuilt_store(height: u64, tx_every: u64) -> MemStore {
    let mut store = MemStore::new(Network::Devnet);
    let mut prev = Network::Devnet.genesis().header;
    for h in 1..=height {
        let txs = if tx_every > 0 && h.is_multiple_of(tx_every) {
            (0..3)
                .map(|k| Tx(format!("prebuilt block {h} tx {k}").into_bytes()))
                .collect()
        } else {
            Vec::new()
        };
        let b = Block::build(&prev, prev.time + 1, txs);
        prev = b.header.clone();
        store.push_unchecked(b);
    }
    store
}

/// A `PeerMachine` as a simulator node.
///
/// `repr(C)` with the machine first, so the machine's hot fields are the model's first bytes
/// ([`NodeModel::HOT_BYTES`]).
#[derive(Debug)]
#[repr(C)]
pub struct Machine {
    m: PeerMachine<MemStore>,
    offset: Micros,
    max_send_queue: usize,
    /// Counters of earlier incarnations of this node (kept across crashes with the store).
    carried: ModelCounters,
    /// Virtual time of the input being handled (actions are drained right after it).
    now: Micros,
    tips: Vec<TipChange>,
    app: Option<Arc<dyn SimApp>>,
}

/// What survives a crash: the store, and the counters and tip log the simulator reports.
#[derive(Debug)]
pub struct Persisted {
    store: MemStore,
    counters: ModelCounters,
    tips: Vec<TipChange>,
}

fn d(us: Micros) -> Duration {
    Duration::from_micros(us)
}

impl Machine {
    fn at(&mut self, now: Micros) -> Instant {
        self.now = now;
        Instant(now + self.offset)
    }

    pub fn machine(&self) -> &PeerMachine<MemStore> {
        &self.m
    }
}

impl NodeModel for Machine {
    type Persist = Persisted;
    const NAME: &'static str = "machine";
    const HOT_BYTES: usize = PeerMachine::<MemStore>::HOT_BYTES;

    fn boot(
        spec: &NodeSpec,
        boot_seed: u64,
        now: Micros,
        persisted: Option<Persisted>,
    ) -> Result<Self, String> {
        let t = &spec.tuning;
        let mut cfg = Config::new(Network::Devnet, NodeId(spec.node_id), boot_seed);
        cfg.listen_port = spec.listen_port;
        cfg.persistent_peers = spec.persistent_peers.clone();
        cfg.ping_interval = d(t.ping_interval);
        cfg.ping_timeout = d(t.ping_timeout);
        cfg.handshake_timeout = d(t.handshake_timeout);
        cfg.probe_timeout = d(t.probe_timeout);
        cfg.query_timeout = d(t.query_timeout);
        cfg.backoff_initial = d(t.backoff_initial);
        cfg.backoff_max = d(t.backoff_max);
        cfg.backoff_reset_after = d(t.backoff_reset_after);
        let world_shift = world_unix_at_zero().saturating_sub(crate::engine::UNIX_EPOCH_AT_ZERO);
        cfg.unix_time_at_zero = Some(
            (spec.unix_time_at_zero + world_shift).saturating_sub(spec.clock_offset / 1_000_000),
        );
        let chain = spec.tuning.chain.as_deref();
        if let Some(every) = chain.and_then(|c| c.produce_every(spec.index)) {
            cfg.produce_blocks = Some(d(every));
        }
        let app = spec.tuning.app.clone();
        if let Some(a) = &app {
            a.configure(&mut cfg);
        }
        let max_send_queue = cfg.max_send_queue;
        let (store, carried, mut tips) = match persisted {
            Some(p) => (p.store, p.counters, p.tips),
            None => {
                let store = match chain {
                    Some(c) => prebuilt_store(c.start_height(spec.index), c.tx_every),
                    None => MemStore::new(Network::Devnet),
                };
                (store, ModelCounters::default(), Vec::new())
            }
        };
        if tips.is_empty() {
            let Ok((height, hash)) = store.tip();
            tips.push(TipChange {
                at: now,
                height,
                hash: hash.0,
            });
        }
        let offset = spec.clock_offset;
        let m = PeerMachine::new(cfg, store, Instant(now + offset)).map_err(|e| e.to_string())?;
        Ok(Machine {
            m,
            offset,
            max_send_queue,
            carried,
            now,
            tips,
            app,
        })
    }

    fn hot_lines(&self, conn: Option<ModelConn>, hop: Hop, out: &mut dyn FnMut(*const u8, usize)) {
        let hop = match hop {
            Hop::Tables => timed_core::Hop::Tables,
            Hop::Conn => timed_core::Hop::Conn,
        };
        self.m.hot_lines(conn.map(ConnId::from_raw), hop, out);
    }

    fn crash(self) -> Option<Persisted> {
        let counters = self.counters();
        Some(Persisted {
            store: self.m.into_store(),
            counters,
            tips: self.tips,
        })
    }

    fn accept(&mut self, now: Micros, remote: SocketAddr) -> Option<ModelConn> {
        let at = self.at(now);
        self.m.accept(at, remote).ok().map(|c| c.get())
    }

    fn connected(&mut self, now: Micros, conn: ModelConn) {
        let at = self.at(now);
        self.m.handle(
            at,
            Input::Connected {
                conn: ConnId::from_raw(conn),
            },
        );
    }

    fn dial_failed(&mut self, now: Micros, conn: ModelConn) {
        let at = self.at(now);
        self.m.handle(
            at,
            Input::DialFailed {
                conn: ConnId::from_raw(conn),
            },
        );
    }

    fn bytes_in(&mut self, now: Micros, conn: ModelConn, data: &[u8]) {
        let at = self.at(now);
        self.m.handle(
            at,
            Input::BytesIn {
                conn: ConnId::from_raw(conn),
                data,
            },
        );
    }

    fn written(&mut self, now: Micros, conn: ModelConn, bytes: usize) {
        let at = self.at(now);
        self.m.handle(
            at,
            Input::Written {
                conn: ConnId::from_raw(conn),
                bytes,
            },
        );
    }

    fn closed(&mut self, now: Micros, conn: ModelConn, kind: CloseKind) {
        let kind = match kind {
            CloseKind::Fin => timed_core::CloseKind::Fin,
            CloseKind::Reset => timed_core::CloseKind::Reset,
        };
        let at = self.at(now);
        self.m.handle(
            at,
            Input::Closed {
                conn: ConnId::from_raw(conn),
                kind,
            },
        );
    }

    fn on_timeout(&mut self, now: Micros) {
        let at = self.at(now);
        self.m.handle_timeout(at);
    }

    fn poll_timeout(&self) -> Option<Micros> {
        self.m
            .poll_timeout()
            .map(|t| t.0.saturating_sub(self.offset))
    }

    fn poll_action(&mut self) -> Option<ModelAction> {
        let a = self.m.poll_action()?;
        Some(match a {
            Action::Send { conn, data } => ModelAction::Send {
                conn: conn.get(),
                data: data.into_vec(),
            },
            Action::Close { conn } => ModelAction::Close { conn: conn.get() },
            Action::Dial { conn, addr } => ModelAction::Dial {
                conn: conn.get(),
                addr,
            },
            Action::PauseRead { conn } => ModelAction::PauseRead { conn: conn.get() },
            Action::ResumeRead { conn } => ModelAction::ResumeRead { conn: conn.get() },
            Action::Notify(e) => ModelAction::Event(match e {
                NodeEvent::PeerUp { conn, .. } => ModelEvent::PeerUp { conn: conn.get() },
                NodeEvent::PeerMoved { from, to, .. } => ModelEvent::PeerMoved {
                    from: from.get(),
                    to: to.get(),
                },
                NodeEvent::PeerDown { conn, reason, .. } => ModelEvent::PeerDown {
                    conn: conn.get(),
                    reason: timed_core::Label::label(timed_core::CloseReason::from(reason)),
                },
                NodeEvent::QueryDone { id, result } => ModelEvent::QueryDone {
                    id: id.get(),
                    result: result.as_ref().map_or_else(|e| e.as_str(), |_| "ok"),
                },
                NodeEvent::RequestDone { id, result, .. } => ModelEvent::QueryDone {
                    id: id.get(),
                    result: result.as_ref().map_or_else(|e| e.as_str(), |_| "ok"),
                },
                e @ (NodeEvent::InboundRequest { .. } | NodeEvent::GossipReceived { .. }) => {
                    if let Some(app) = self.app.clone() {
                        let at = Instant(self.now + self.offset);
                        app.on_event(&mut self.m, at, &e);
                    }
                    ModelEvent::Note(match e {
                        NodeEvent::InboundRequest { protocol, peer, .. } => {
                            format!("request on {protocol} from {}", peer.short())
                        }
                        _ => String::from("gossip received"),
                    })
                }
                NodeEvent::BlocksApplied { to, tip, .. } => {
                    self.tips.push(TipChange {
                        at: self.now,
                        height: to,
                        hash: tip.0,
                    });
                    ModelEvent::Height {
                        height: to,
                        reorg: false,
                    }
                }
                NodeEvent::Reorg { to, .. } => ModelEvent::Height {
                    height: to,
                    reorg: true,
                },
                NodeEvent::Misbehaved {
                    what, detail, addr, ..
                } => ModelEvent::Misbehaved(format!("{} from {addr}: {detail}", what.as_str())),
                NodeEvent::Fatal { error } => ModelEvent::Fatal(error.to_string()),
                other => ModelEvent::Note(format!("{other:?}")),
            }),
        })
    }

    fn shutdown(&mut self, now: Micros) {
        let at = self.at(now);
        self.m.shutdown(at);
    }

    fn query(&mut self, now: Micros, peer: [u8; 32]) -> Option<u64> {
        let at = self.at(now);
        let id = match self.app.clone() {
            Some(app) => app.query(&mut self.m, at, NodeId(peer)),
            None => self.m.query(at, NodeId(peer), RequestBody::Tip),
        };
        Some(id.get())
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        self.m.recycle(buf);
    }

    fn send_queue(&self, conn: ModelConn) -> Option<(usize, usize)> {
        self.m
            .send_queue_len(ConnId::from_raw(conn))
            .map(|q| (q, self.max_send_queue))
    }

    fn counters(&self) -> ModelCounters {
        let c = self.m.counters();
        ModelCounters {
            // This incarnation's only: the engine tallies the ping timeouts of crashed
            // incarnations itself (`Sim::retired_ping_timeouts`), as for models that carry
            // nothing across a crash; carrying them too would count them twice.
            ping_timeouts: c.ping_timeouts,
            reconnects: self.carried.reconnects + c.reconnects,
            duplicates_resolved: self.carried.duplicates_resolved + c.duplicates_resolved,
            protocol_errors: self.carried.protocol_errors + c.protocol_errors,
            height: self.m.height(),
            blocks_applied: self.carried.blocks_applied + c.blocks_applied,
            reorgs: self.carried.reorgs + c.reorgs,
        }
    }

    fn tip_log(&self) -> &[TipChange] {
        &self.tips
    }

    fn strict() -> bool {
        true
    }
}
