//! `node.json` in the data directory: where a running node can be reached. Written once the
//! node listens, so scripts, `timed devnet` and tests can use port 0 and read the real ports.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const FILE: &str = "node.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    pub pid: u32,
    pub node_id: String,
    pub network: String,
    pub p2p: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Writes atomically (temp file + rename), so a reader never sees half a file.
pub fn write(data_dir: &Path, info: &NodeInfo) -> std::io::Result<()> {
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    let text = serde_json::to_string_pretty(info).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path(data_dir))
}

/// Removes a file left by an earlier run.
pub fn remove(data_dir: &Path) {
    let _ = std::fs::remove_file(path(data_dir));
}

/// Reads the file, if present and complete.
pub fn read(data_dir: &Path) -> Option<NodeInfo> {
    let text = std::fs::read_to_string(path(data_dir)).ok()?;
    serde_json::from_str(&text).ok()
}
