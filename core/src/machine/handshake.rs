//! The `Hello` exchange: both sides send `Hello` first; the one we receive decides whether
//! this connection can become a peer.

use super::conn::{ConnState, Remote};
use super::io::Direction;
use super::PeerMachine;
use crate::id::ConnId;
use crate::store::Store;
use crate::time::Instant;
use crate::wire::{
    GoodbyeReason, Hello, MAGIC, MAX_USER_AGENT, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use alloc::format;
use alloc::string::String;

impl<S: Store> PeerMachine<S> {
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
        if hello.version < MIN_PROTOCOL_VERSION || hello.min_version > PROTOCOL_VERSION {
            let detail = format!(
                "peer speaks versions {}..={}, we speak {}..={}",
                hello.min_version, hello.version, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
            );
            return self.close_with_goodbye(now, conn, GoodbyeReason::IncompatibleVersion, &detail);
        }
        if hello.network != self.cfg.network.id() {
            let detail = format!(
                "we are on {} (network id {:#x}), you sent {:#x}",
                self.cfg.network,
                self.cfg.network.id(),
                hello.network
            );
            return self.close_with_goodbye(now, conn, GoodbyeReason::WrongNetwork, &detail);
        }
        if hello.genesis != self.genesis {
            let detail = format!(
                "our genesis is {}, yours is {}",
                self.genesis, hello.genesis
            );
            return self.close_with_goodbye(now, conn, GoodbyeReason::WrongGenesis, &detail);
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
        let mut user_agent = hello.user_agent;
        if user_agent.len() > MAX_USER_AGENT {
            let mut cut = MAX_USER_AGENT;
            while !user_agent.is_char_boundary(cut) {
                cut -= 1;
            }
            user_agent.truncate(cut);
        }
        let node = hello.node_id;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.remote = Some(Remote {
                node_id: node,
                boot: hello.boot,
                listen_port: hello.listen_port,
                best_height: hello.best_height,
                best_hash: hello.best_hash,
                user_agent: if user_agent.is_empty() {
                    String::from("?")
                } else {
                    user_agent
                },
            });
            debug_assert_eq!(c.state, ConnState::Handshaking);
        }
        self.on_peer_identified(now, node, conn);
    }
}
