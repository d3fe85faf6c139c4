//! Command line, config file, and the settings a node runs with.
//!
//! Precedence: command line, then the TOML file given with `--config`, then defaults.

use crate::duration;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;
use timed_core::Network;

/// Highest `--node-id`: node N uses ports base+N (p2p) and base+50+N (API).
pub const MAX_NODE_INDEX: u16 = 49;
/// Offset of the default API port from the network's p2p base port.
pub const API_PORT_OFFSET: u16 = 50;

#[derive(Parser, Debug)]
#[command(
    name = "timed",
    version,
    about = "A TIME Coin peer-to-peer node",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
        timed --node-id 1 --p2p-port 7000\n  \
        timed --node-id 2 --p2p-port 7001 --peer 127.0.0.1:7000\n  \
        timed devnet --nodes 3 --duration 1m\n  \
        timed status --node-id 1"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a node's status and peers as a table (reads its HTTP API).
    Status(StatusArgs),
    /// Start a local network of real `timed` processes over loopback and watch it.
    Devnet(DevnetArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkArg {
    Devnet,
    Testnet,
    Mainnet,
}

impl From<NetworkArg> for Network {
    fn from(n: NetworkArg) -> Network {
        match n {
            NetworkArg::Devnet => Network::Devnet,
            NetworkArg::Testnet => Network::Testnet,
            NetworkArg::Mainnet => Network::Mainnet,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s)
}

/// Parses a byte size: a number with an optional unit (B, KiB, MiB, GiB, TiB; KB/MB/GB/TB
/// taken as the binary units, since map sizes are page multiples anyway).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size: write e.g. 4GiB, 512MiB or 1073741824"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}`: use KiB, MiB, GiB or TiB"
            ))
        }
    };
    let bytes = n
        .checked_mul(mult)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes < (1 << 20) {
        return Err(format!("`{s}` is too small for a store: use at least 1MiB"));
    }
    Ok(bytes)
}

fn parse_node_index(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n) if (1..=MAX_NODE_INDEX).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a node id: use a number from 1 to {MAX_NODE_INDEX}"
        )),
    }
}

/// The flags of a node (the default command).
#[derive(Args, Debug, Default, Clone)]
pub struct NodeArgs {
    /// Read settings from this TOML file; flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Which network to join [default: devnet]. Default p2p ports: devnet 24200, testnet 24100, mainnet 24000.
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// Run as local node N (1-49): picks its own default data dir, p2p port (base+N) and API
    /// port (base+50+N), so several nodes run side by side on one host.
    #[arg(long, value_name = "N", value_parser = parse_node_index)]
    pub node_id: Option<u16>,
    /// Where the node keeps its chain, address book and identity [default: ~/.timed/NETWORK[/node-N]].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Port to accept peers on, on all interfaces (0 picks a free one).
    #[arg(long, value_name = "PORT", conflicts_with = "listen")]
    pub p2p_port: Option<u16>,
    /// Address to accept peers on, e.g. 127.0.0.1:7000.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A peer to stay connected to, as HOST:PORT (repeat for several).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub peers: Vec<String>,
    /// Address of the HTTP status API [default: 127.0.0.1:base+50+N]. Use `off` to disable it.
    #[arg(long, value_name = "ADDR")]
    pub api: Option<String>,
    /// Produce a block on this interval (devnet demos), e.g. 2s.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_duration)]
    pub produce_blocks: Option<Duration>,
    /// How often to ping each peer [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,
    /// Disconnect a peer silent for this long [default: 90s, at least 3 ping intervals].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ping_timeout: Option<Duration>,
    /// Log level or filter: error, warn, info, debug, trace, or e.g. `info,timed_tokio=debug`
    /// [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
    /// Log format [default: pretty].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Largest size the chain store may grow to, e.g. 4GiB or 512MiB [default: 1GiB]. Raise it
    /// when the node stops with "the store ... is full".
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub store_map_size: Option<usize>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The node's API address [default: the API address for --network / --node-id].
    #[arg(long, value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    #[arg(long, value_enum, default_value = "devnet")]
    pub network: NetworkArg,
    #[arg(long, value_name = "N", value_parser = parse_node_index)]
    pub node_id: Option<u16>,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// How many nodes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub nodes: u16,
    /// Stop after this long (default: run until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Keep the nodes' data here instead of a temporary directory (kept afterwards).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Block interval of the producing node (node 1).
    #[arg(long, value_name = "INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub produce_blocks: Duration,
    /// Ping interval of every node.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// How often to print the table.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub every: Duration,
    /// Log level of the nodes (their logs go to DIR/node-N/timed.log).
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// The config file: the same settings as the flags, snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub network: Option<NetworkArg>,
    pub node_id: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub p2p_port: Option<u16>,
    pub listen: Option<SocketAddr>,
    #[serde(default)]
    pub peers: Vec<String>,
    pub api: Option<String>,
    pub produce_blocks: Option<String>,
    pub ping_interval: Option<String>,
    pub ping_timeout: Option<String>,
    pub log: Option<String>,
    pub log_format: Option<LogFormat>,
    pub store_map_size: Option<String>,
}

/// A setting that cannot work, with the fix.
#[derive(Debug, thiserror::Error)]
#[error("{problem}\n  fix: {fix}")]
pub struct SettingsError {
    pub problem: String,
    pub fix: String,
}

fn bad(problem: impl Into<String>, fix: impl Into<String>) -> SettingsError {
    SettingsError {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Everything a node runs with, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub network: Network,
    pub node_index: Option<u16>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub peers: Vec<SocketAddr>,
    pub api: Option<SocketAddr>,
    pub produce_blocks: Option<Duration>,
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Option<Duration>,
    pub log: String,
    pub log_format: LogFormat,
    /// LMDB map size in bytes; `None` keeps the store's default.
    pub store_map_size: Option<usize>,
}

/// Default p2p port of `network` for local node `index` (0 when not given).
pub fn default_p2p_port(network: Network, index: Option<u16>) -> u16 {
    network.default_port() + index.unwrap_or(0)
}

/// Default API address of `network` for local node `index`.
pub fn default_api(network: Network, index: Option<u16>) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        network.default_port() + API_PORT_OFFSET + index.unwrap_or(0),
    )
}

fn default_data_dir(network: Network, index: Option<u16>) -> PathBuf {
    let base = match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(".timed"),
        _ => PathBuf::from(".timed"),
    };
    let dir = base.join(network.to_string());
    match index {
        Some(n) => dir.join(format!("node-{n}")),
        None => dir,
    }
}

fn file_duration(
    field: &str,
    v: &Option<String>,
    path: &Path,
) -> Result<Option<Duration>, SettingsError> {
    match v {
        None => Ok(None),
        Some(s) => duration::parse(s).map(Some).map_err(|e| {
            bad(
                format!("{}: `{field}`: {e}", path.display()),
                format!("write it as a string with a unit, e.g. {field} = \"30s\""),
            )
        }),
    }
}

/// Resolves `HOST:PORT`.
pub fn resolve_peer(s: &str) -> Result<SocketAddr, SettingsError> {
    let fix = "give peers as HOST:PORT, e.g. --peer 127.0.0.1:7000";
    if !s.contains(':') {
        return Err(bad(format!("peer `{s}` has no port"), fix));
    }
    match s.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| bad(format!("peer `{s}` resolves to no address"), fix)),
        Err(e) => Err(bad(format!("peer `{s}` cannot be resolved: {e}"), fix)),
    }
}

impl NodeArgs {
    /// Merges the command line with the config file and applies defaults.
    pub fn resolve(&self) -> Result<Settings, SettingsError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    bad(
                        format!("cannot read config file {}: {e}", path.display()),
                        "check the path given to --config",
                    )
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    bad(
                        format!("config file {}: {}", path.display(), e.message()),
                        "keys are the flag names in snake_case: network, node_id, data_dir, p2p_port, listen, \
                         peers = [\"host:port\"], api, produce_blocks, ping_interval, ping_timeout, log, log_format, store_map_size; \
                         durations are strings like \"30s\"",
                    )
                })?
            }
            None => FileConfig::default(),
        };
        let cfg_path = self.config.clone().unwrap_or_default();

        let network: Network = self
            .network
            .or(file.network)
            .unwrap_or(NetworkArg::Devnet)
            .into();
        let node_index = match self.node_id.or(file.node_id) {
            Some(n) if !(1..=MAX_NODE_INDEX).contains(&n) => {
                return Err(bad(
                    format!("node_id {n} is out of range"),
                    format!("use a number from 1 to {MAX_NODE_INDEX}"),
                ))
            }
            other => other,
        };
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| default_data_dir(network, node_index));
        let listen = match (self.listen, self.p2p_port) {
            (Some(a), _) => a,
            (None, Some(p)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p),
            (None, None) => match (file.listen, file.p2p_port) {
                (Some(a), _) => a,
                (None, Some(p)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p),
                (None, None) => SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    default_p2p_port(network, node_index),
                ),
            },
        };
        let peer_strs = if self.peers.is_empty() {
            &file.peers
        } else {
            &self.peers
        };
        let peers = peer_strs
            .iter()
            .map(|p| resolve_peer(p))
            .collect::<Result<Vec<_>, _>>()?;
        let api = match self.api.as_deref().or(file.api.as_deref()) {
            Some("off") | Some("none") => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                bad(
                    format!("`{s}` is not an API address"),
                    "give --api as IP:PORT, e.g. --api 127.0.0.1:8080, or --api off",
                )
            })?),
            None => Some(default_api(network, node_index)),
        };
        let produce_blocks = match self.produce_blocks {
            Some(d) => Some(d),
            None => file_duration("produce_blocks", &file.produce_blocks, &cfg_path)?,
        };
        let ping_interval = match self.ping_interval {
            Some(d) => Some(d),
            None => file_duration("ping_interval", &file.ping_interval, &cfg_path)?,
        };
        let ping_timeout = match self.ping_timeout {
            Some(d) => Some(d),
            None => file_duration("ping_timeout", &file.ping_timeout, &cfg_path)?,
        };
        let log = self
            .log
            .clone()
            .or(file.log)
            .unwrap_or_else(|| "info".into());
        let log_format = self.log_format.or(file.log_format).unwrap_or_default();
        let store_map_size = match (self.store_map_size, &file.store_map_size) {
            (Some(n), _) => Some(n),
            (None, Some(s)) => Some(parse_size(s).map_err(|e| {
                bad(
                    format!("{}: `store_map_size`: {e}", cfg_path.display()),
                    "write it as a string with a unit, e.g. store_map_size = \"4GiB\"",
                )
            })?),
            (None, None) => None,
        };
        Ok(Settings {
            network,
            node_index,
            data_dir,
            listen,
            peers,
            api,
            produce_blocks,
            ping_interval,
            ping_timeout,
            log,
            log_format,
            store_map_size,
        })
    }
}

/// The flag that sets a core config field, for error messages.
pub fn flag_for_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "ping_interval" => "--ping-interval",
        "ping_timeout" => "--ping-timeout",
        "produce_blocks" => "--produce-blocks",
        _ => return None,
    })
}

impl Settings {
    /// The core configuration for this node.
    pub fn core_config(
        &self,
        node_id: timed_core::NodeId,
        seed: u64,
    ) -> Result<timed_core::Config, SettingsError> {
        let mut c = timed_core::Config::new(self.network, node_id, seed);
        c.persistent_peers = self.peers.clone();
        if let Some(i) = self.ping_interval {
            c.ping_interval = duration::to_core(i);
            if self.ping_timeout.is_none() {
                // Keep the default unless the interval is long: then allow three missed pings.
                let three = duration::to_core(i.saturating_mul(3));
                if three > c.ping_timeout {
                    c.ping_timeout = three;
                }
            }
        }
        if let Some(t) = self.ping_timeout {
            c.ping_timeout = duration::to_core(t);
        }
        c.produce_blocks = self.produce_blocks.map(duration::to_core);
        c.validate().map_err(|e| {
            let fix = match flag_for_field(e.field) {
                Some(flag) if e.field == "ping_timeout" || e.field == "ping_interval" => {
                    format!("{flag}: give a --ping-timeout longer than --ping-interval (e.g. three intervals)")
                }
                Some(flag) => format!("change {flag} (or `{}` in the config file)", e.field),
                None => format!("`{}` has no flag; this is a bug, please report it", e.field),
            };
            bad(e.to_string(), fix)
        })?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> NodeArgs {
        let mut v = vec!["timed"];
        v.extend_from_slice(list);
        Cli::try_parse_from(v).unwrap().node
    }

    #[test]
    fn the_three_node_test_plan_lines_get_distinct_dirs_and_api_ports() {
        let a = args(&["--node-id", "1", "--p2p-port", "7000"])
            .resolve()
            .unwrap();
        let b = args(&[
            "--node-id",
            "2",
            "--p2p-port",
            "7001",
            "--peer",
            "127.0.0.1:7000",
        ])
        .resolve()
        .unwrap();
        let c = args(&[
            "--node-id",
            "3",
            "--p2p-port",
            "7002",
            "--peer",
            "127.0.0.1:7000",
        ])
        .resolve()
        .unwrap();
        assert_ne!(a.data_dir, b.data_dir);
        assert_ne!(b.data_dir, c.data_dir);
        assert_ne!(a.api, b.api);
        assert_ne!(b.api, c.api);
        assert_eq!(a.listen.port(), 7000);
        assert_eq!(b.peers, vec!["127.0.0.1:7000".parse().unwrap()]);
        assert!(a.api.unwrap().ip().is_loopback());
    }

    #[test]
    fn a_ping_timeout_not_above_the_interval_names_the_flags() {
        let s = args(&["--ping-interval", "10s", "--ping-timeout", "5s"])
            .resolve()
            .unwrap();
        let e = s.core_config(timed_core::NodeId([1; 32]), 1).unwrap_err();
        assert!(e.to_string().contains("--ping-timeout"), "{e}");
    }

    #[test]
    fn a_long_ping_interval_alone_stretches_the_timeout() {
        let s = args(&["--ping-interval", "2m"]).resolve().unwrap();
        let c = s.core_config(timed_core::NodeId([1; 32]), 1).unwrap();
        assert_eq!(c.ping_timeout, timed_core::Duration::from_secs(360));
    }

    #[test]
    fn a_peer_without_a_port_is_refused_with_the_fix() {
        let e = args(&["--peer", "localhost"]).resolve().unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"));
    }
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units_and_refuse_nonsense_with_a_hint() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        assert!(parse_size("lots").unwrap_err().contains("4GiB"));
        assert!(parse_size("4 parsecs").unwrap_err().contains("unit"));
        assert!(parse_size("1KiB").unwrap_err().contains("1MiB"));
    }
}
