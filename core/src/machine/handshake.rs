//! The `Hello` exchange: both sides send `Hello` first; the one we receive decides whether
//! this connection can become a peer.

use super::conn::{ConnState, Remote};
use super::io::Direction;
use super::PeerMachine;
use crate::id::ConnId;
use crate::protocol::MAX_ADVERTISED;
use crate::store::Store;
use crate::time::Instant;
use crate::wire::{
    GoodbyeReason, Hello, MAGIC, MAX_USER_AGENT, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A peer's advertisement, bounded, sorted and without duplicates: it is looked up by
/// binary search on every request and gossip message.
fn sorted_ads<T, K: Ord>(mut ads: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    ads.truncate(MAX_ADVERTISED);
    ads.sort_by_key(|a| key(a));
    ads.dedup_by(|a, b| key(a) == key(b));
    ads
}

impl<S: Store> PeerMachine<S> {
    /// A `Hello` of a wire version we no longer speak: say so, and which to run.
    pub(crate) fn on_old_hello(&mut self, now: Instant, conn: ConnId, version: u16, min: u16) {
        let detail = format!(
            "peer speaks wire versions {min}..={version}; this node speaks {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION} (application protocols): upgrade timed"
        );
        self.close_with_goodbye(now, conn, GoodbyeReason::IncompatibleVersion, &detail);
    }

    pub(crate) fn on_hello(&mut self, now: Instant, conn: ConnId, hello: Hello) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (dir, addr) = (c.dir, c.addr);
        if hello.magic != MAGIC {
            return self.misbehave(
                now,
                conn,
                super::io::Misbehaviour::Protocol,
                "Hello with wrong magic",
            );
        }
        if let Some((reason, detail)) = self.hello_mismatch(&hello) {
            return self.close_with_goodbye(now, conn, reason, &detail);
        }
        if hello.node_id == self.cfg.node_id {
            if dir == Direction::Outbound {
                self.never_dial_again(addr);
            }
            return self.close_with_goodbye(
                now,
                conn,
                GoodbyeReason::SelfConnection,
                "this is our own node id",
            );
        }
        if self.bans.node_banned(now, hello.node_id) {
            return self.close_with_goodbye(
                now,
                conn,
                GoodbyeReason::Banned,
                "this node id is banned for misbehaviour",
            );
        }
        let node = hello.node_id;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.remote = Some(remote_of(hello));
            debug_assert_eq!(c.state, ConnState::Handshaking);
        }
        self.on_peer_identified(now, node, conn);
    }

    /// Why a well-formed `Hello` is from a node we cannot talk to: no common wire version,
    /// another network, another genesis.
    fn hello_mismatch(&self, hello: &Hello) -> Option<(GoodbyeReason, String)> {
        if hello.version < MIN_PROTOCOL_VERSION || hello.min_version > PROTOCOL_VERSION {
            let detail = format!(
                "peer speaks versions {}..={}, we speak {}..={}",
                hello.min_version, hello.version, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
            );
            return Some((GoodbyeReason::IncompatibleVersion, detail));
        }
        if hello.network != self.cfg.network.id() {
            let detail = format!(
                "we are on {} (network id {:#x}), you sent {:#x}",
                self.cfg.network,
                self.cfg.network.id(),
                hello.network
            );
            return Some((GoodbyeReason::WrongNetwork, detail));
        }
        if hello.genesis != self.genesis {
            let detail = format!(
                "our genesis is {}, yours is {}",
                self.genesis, hello.genesis
            );
            return Some((GoodbyeReason::WrongGenesis, detail));
        }
        None
    }
}

/// What we keep of an accepted `Hello`: the user agent cut to [`MAX_USER_AGENT`] bytes
/// (`?` when empty), the adverts sorted for lookup.
fn remote_of(hello: Hello) -> Remote {
    let mut user_agent = hello.user_agent;
    if user_agent.len() > MAX_USER_AGENT {
        let mut cut = MAX_USER_AGENT;
        while !user_agent.is_char_boundary(cut) {
            cut -= 1;
        }
        user_agent.truncate(cut);
    }
    if user_agent.is_empty() {
        user_agent = String::from("?");
    }
    Remote {
        node_id: hello.node_id,
        boot: hello.boot,
        listen_port: hello.listen_port,
        best_height: hello.best_height,
        best_hash: hello.best_hash,
        user_agent,
        protocols: sorted_ads(hello.protocols, |a| a.id),
        topics: sorted_ads(hello.topics, |a| a.id),
    }
}
