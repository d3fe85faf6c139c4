//! Machine configuration, with documented defaults and validation.

use crate::chain::{Limits, Network, Rules};
use crate::id::NodeId;
use crate::protocol::{ProtocolSpec, TopicSpec, APP_ID_MIN};
use crate::time::Duration;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

/// Everything a [`PeerMachine`](crate::PeerMachine) needs to know up front.
///
/// Start from [`Config::new`] and change fields; [`Config::validate`] is called by
/// `PeerMachine::new`, and a runtime should call it first to report errors to the user.
#[derive(Clone, Debug)]
pub struct Config {
    /// The network to join; peers on another network or genesis are refused.
    pub network: Network,
    /// This node's identity, loaded from (or created in) its store by the driver.
    pub node_id: NodeId,
    /// Seed for every random choice the machine makes (boot nonce, ping nonces, jitter,
    /// peer choice). Same seed and same calls ⇒ same actions.
    pub seed: u64,
    /// Port we accept connections on, advertised in `Hello` so peers can pass it on.
    pub listen_port: Option<u16>,
    /// Sent in `Hello` for peers to display. Default `timed/<crate version>`.
    pub user_agent: String,
    /// Peers to stay connected to forever (`--peer`): redialed after every loss, with backoff.
    pub persistent_peers: Vec<SocketAddr>,

    /// How often to ping an established peer. Default 30 s.
    pub ping_interval: Duration,
    /// A peer from which no frame at all has arrived for this long is disconnected. Any frame
    /// proves liveness, not only pongs. Default 90 s.
    pub ping_timeout: Duration,
    /// Time from dial (or accept) to the peer's `Hello`. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time a request may wait for its response. Default 10 s.
    pub query_timeout: Duration,
    /// When a second connection claims a connected node's id, how long the existing
    /// connection has to answer a probe ping before the newcomer replaces it. Default 5 s.
    pub probe_timeout: Duration,

    /// Largest frame payload accepted or sent. Default 8 MiB.
    pub max_frame: u32,
    /// Connections in any state, both directions. Default 125.
    pub max_connections: usize,
    /// Inbound connections from one IP. Default 16.
    pub max_inbound_per_ip: usize,
    /// Outbound peers the node tries to keep. Default 8.
    pub target_outbound: usize,
    /// First reconnect delay after a loss. Default 1 s.
    pub backoff_initial: Duration,
    /// Reconnect delays double up to this. Default 300 s.
    pub backoff_max: Duration,
    /// A connection that lived this long resets its peer's backoff. Default 60 s.
    pub backoff_reset_after: Duration,
    /// Requests in flight per peer, in each direction. Default 64.
    pub max_requests_in_flight: usize,
    /// Bytes queued for one connection (in the machine and in the transport) before the peer
    /// is dropped as a slow reader. Default 4 MiB.
    pub max_send_queue: usize,
    /// Bytes handed to the transport and not yet reported written. Frames beyond this stay in
    /// the machine, where control frames can overtake bulk ones. Default 256 KiB.
    pub transport_window: usize,
    /// How long a misbehaving node id (and, for non-loopback remotes, IP) stays banned.
    /// Default 1 h.
    pub ban_duration: Duration,

    /// Structural block limits.
    pub limits: Limits,
    /// Deepest reorg accepted. Default 100.
    pub max_reorg_depth: u64,
    /// Blocks asked for per range request. Default 500.
    pub sync_batch: u32,
    /// Range requests in flight while syncing. Default 4.
    pub sync_parallel: usize,
    /// Cap on the bytes of blocks in one response we serve. Default 2 MiB (half the send
    /// queue, so one response never overflows it).
    pub max_response_bytes: usize,
    /// Transactions held in the mempool. Default 10 000.
    pub mempool_max: usize,
    /// Bytes of transactions held in the mempool. Default 64 MiB.
    pub mempool_max_bytes: usize,
    /// Addresses kept in the address book. Default 1 000.
    pub addr_book_max: usize,
    /// How often to ask peers for addresses. Default 5 min.
    pub peer_exchange_interval: Duration,
    /// Produce a block on this interval (devnet demos and tests). Default off.
    pub produce_blocks: Option<Duration>,
    /// Unix time (seconds) at `Instant::ZERO`, if the driver knows it: stamps produced blocks
    /// and bounds how far in the future a block may be. The core reads no clock of its own.
    pub unix_time_at_zero: Option<u64>,

    /// The application's request/response protocols (ids from
    /// [`APP_ID_MIN`]), advertised in `Hello`. Default none.
    pub protocols: Vec<ProtocolSpec>,
    /// The application's gossip topics, advertised in `Hello`. Default none.
    pub topics: Vec<TopicSpec>,
    /// Block validity, fork choice and finality. Default [`DevnetRules`](crate::DevnetRules): structure only,
    /// the higher chain wins, ties keep ours.
    pub rules: Rules,
}

impl Config {
    /// Defaults for `network`, with the given identity and seed.
    pub fn new(network: Network, node_id: NodeId, seed: u64) -> Self {
        Config {
            network,
            node_id,
            seed,
            listen_port: None,
            user_agent: String::from(concat!("timed/", env!("CARGO_PKG_VERSION"))),
            persistent_peers: Vec::new(),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(90),
            handshake_timeout: Duration::from_secs(10),
            query_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
            max_frame: 8 * 1024 * 1024,
            max_connections: 125,
            max_inbound_per_ip: 16,
            target_outbound: 8,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            backoff_reset_after: Duration::from_secs(60),
            max_requests_in_flight: 64,
            max_send_queue: 4 * 1024 * 1024,
            transport_window: 256 * 1024,
            ban_duration: Duration::from_secs(3600),
            limits: Limits::default(),
            max_reorg_depth: 100,
            sync_batch: 500,
            sync_parallel: 4,
            max_response_bytes: 2 * 1024 * 1024,
            mempool_max: 10_000,
            mempool_max_bytes: 64 * 1024 * 1024,
            addr_book_max: 1_000,
            peer_exchange_interval: Duration::from_secs(300),
            produce_blocks: None,
            unix_time_at_zero: None,
            protocols: Vec::new(),
            topics: Vec::new(),
            rules: Rules::default(),
        }
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_times()?;
        self.validate_connections()?;
        self.validate_chain()?;
        self.validate_protocols()?;
        self.validate_topics()
    }

    /// Every interval and timeout is set, and they fit together.
    fn validate_times(&self) -> Result<(), ConfigError> {
        let err = |field, problem| Err(ConfigError { field, problem });
        for (field, d) in [
            ("ping_interval", self.ping_interval),
            ("ping_timeout", self.ping_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("query_timeout", self.query_timeout),
            ("probe_timeout", self.probe_timeout),
            ("backoff_initial", self.backoff_initial),
            ("backoff_max", self.backoff_max),
            ("ban_duration", self.ban_duration),
            ("peer_exchange_interval", self.peer_exchange_interval),
        ] {
            if d == Duration::ZERO {
                return err(field, "must be greater than zero");
            }
        }
        if self.ping_timeout <= self.ping_interval {
            return err("ping_timeout", "must be longer than ping_interval, or every peer would be dropped between two pings");
        }
        if self.backoff_max < self.backoff_initial {
            return err("backoff_max", "must be at least backoff_initial");
        }
        if let Some(p) = self.produce_blocks {
            if p < Duration::from_millis(10) {
                return err("produce_blocks", "must be at least 10ms");
            }
        }
        Ok(())
    }

    /// Frames, connections, requests and queues have room for what they must carry.
    fn validate_connections(&self) -> Result<(), ConfigError> {
        let err = |field, problem| Err(ConfigError { field, problem });
        if self.max_frame < 1024 {
            return err("max_frame", "must be at least 1024 bytes so a Hello fits");
        }
        if self.max_connections == 0 {
            return err("max_connections", "must be at least 1");
        }
        if self.max_inbound_per_ip == 0 {
            return err("max_inbound_per_ip", "must be at least 1");
        }
        if self.max_requests_in_flight == 0 {
            return err("max_requests_in_flight", "must be at least 1");
        }
        if self.max_send_queue < self.max_response_bytes + 1024 {
            return err(
                "max_send_queue",
                "must hold at least one response of max_response_bytes",
            );
        }
        if self.transport_window == 0 {
            return err("transport_window", "must be greater than zero");
        }
        if self.max_response_bytes + 1024 > self.max_frame as usize {
            return err(
                "max_response_bytes",
                "must leave room for framing within max_frame",
            );
        }
        Ok(())
    }

    /// Sync, the mempool, the address book and reorgs have non-zero bounds that hold a block
    /// or a transaction.
    fn validate_chain(&self) -> Result<(), ConfigError> {
        let err = |field, problem| Err(ConfigError { field, problem });
        if self.sync_batch == 0 {
            return err("sync_batch", "must be at least 1");
        }
        if self.sync_parallel == 0 {
            return err("sync_parallel", "must be at least 1");
        }
        if self.max_response_bytes < self.limits.max_block_bytes {
            return err(
                "max_response_bytes",
                "must hold at least one block of limits.max_block_bytes",
            );
        }
        if self.mempool_max == 0 {
            return err("mempool_max", "must be at least 1");
        }
        if self.mempool_max_bytes < self.limits.max_tx_bytes {
            return err(
                "mempool_max_bytes",
                "must hold at least one transaction of limits.max_tx_bytes",
            );
        }
        if self.addr_book_max == 0 {
            return err("addr_book_max", "must be at least 1");
        }
        if self.max_reorg_depth == 0 {
            return err("max_reorg_depth", "must be at least 1");
        }
        Ok(())
    }

    /// The application's protocols: ids in its range and distinct, limits that fit a frame.
    fn validate_protocols(&self) -> Result<(), ConfigError> {
        let err = |field, problem| Err(ConfigError { field, problem });
        let frame = self.max_frame as usize;
        for (i, p) in self.protocols.iter().enumerate() {
            if p.id.0 < APP_ID_MIN {
                return err(
                    "protocols",
                    "ids below 1000 are reserved for the core's own protocols",
                );
            }
            if self.protocols[..i].iter().any(|q| q.id == p.id) {
                return err("protocols", "two protocols share one id");
            }
            if p.max_request_bytes == 0 || p.max_response_bytes == 0 {
                return err(
                    "protocols",
                    "max_request_bytes and max_response_bytes must be at least 1",
                );
            }
            if p.max_request_bytes as usize + 32 > frame
                || p.max_response_bytes as usize + 32 > frame
            {
                return err(
                    "protocols",
                    "a request or response limit must leave room for framing within max_frame",
                );
            }
            if p.max_outbound_in_flight == 0 || p.max_inbound_in_flight == 0 {
                return err(
                    "protocols",
                    "requests in flight must be at least 1 each way",
                );
            }
            if p.timeout.as_micros() < 4 {
                return err("protocols", "timeout must be greater than zero");
            }
        }
        Ok(())
    }

    /// The application's topics: ids in its range and distinct, limits that fit a frame.
    fn validate_topics(&self) -> Result<(), ConfigError> {
        let err = |field, problem| Err(ConfigError { field, problem });
        let frame = self.max_frame as usize;
        for (i, t) in self.topics.iter().enumerate() {
            if t.id.0 < APP_ID_MIN {
                return err(
                    "topics",
                    "ids below 1000 are reserved for the core's own topics",
                );
            }
            if self.topics[..i].iter().any(|u| u.id == t.id) {
                return err("topics", "two topics share one id");
            }
            if t.max_message_bytes == 0 || t.max_message_bytes as usize + 32 > frame {
                return err(
                    "topics",
                    "max_message_bytes must be at least 1 and fit within max_frame",
                );
            }
            if t.rate_per_sec == 0 || t.burst == 0 {
                return err("topics", "rate_per_sec and burst must be at least 1");
            }
            if t.seen_capacity == 0 || t.max_pending == 0 {
                return err("topics", "seen_capacity and max_pending must be at least 1");
            }
            if t.validation_timeout == Duration::ZERO {
                return err("topics", "validation_timeout must be greater than zero");
            }
        }
        Ok(())
    }
}

/// A configuration value that makes no sense, naming the field and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The `Config` field at fault, as spelled in the struct.
    pub field: &'static str,
    /// What is wrong with its value.
    pub problem: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.problem)
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn cfg() -> Config {
        Config::new(Network::Devnet, NodeId([1; 32]), 0)
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(cfg().validate(), Ok(()));
    }

    #[test]
    fn a_ping_timeout_shorter_than_the_interval_is_rejected_naming_the_field() {
        let mut c = cfg();
        c.ping_timeout = Duration::from_secs(10);
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "ping_timeout");
        assert!(e.to_string().contains("ping_interval"));
    }

    #[test]
    fn application_ids_must_be_outside_the_core_range_and_unique() {
        use crate::protocol::{ProtocolId, TopicId};
        let mut c = cfg();
        c.protocols.push(ProtocolSpec::new(ProtocolId(3), "x"));
        assert_eq!(c.validate().unwrap_err().field, "protocols");
        let mut c = cfg();
        c.protocols.push(ProtocolSpec::new(ProtocolId(1000), "a"));
        c.protocols.push(ProtocolSpec::new(ProtocolId(1000), "b"));
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("share one id"));
        let mut c = cfg();
        c.topics.push(TopicSpec::new(TopicId(1), "x"));
        assert_eq!(c.validate().unwrap_err().field, "topics");
        let mut c = cfg();
        c.protocols.push(ProtocolSpec::new(ProtocolId(1000), "a"));
        c.topics.push(TopicSpec::new(TopicId(1000), "a"));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn zero_intervals_are_rejected() {
        let mut c = cfg();
        c.ping_interval = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().field, "ping_interval");
        let mut c = cfg();
        c.query_timeout = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().field, "query_timeout");
    }
}
