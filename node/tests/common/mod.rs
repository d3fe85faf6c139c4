//! Helpers for tests that run real `timed` processes over loopback TCP.
//!
//! Nodes bind port 0 (p2p and API) and report the real ports in `DATA_DIR/node.json`; every
//! wait is a bounded poll of the HTTP API ([`wait_until`]), never a sleep used as
//! synchronisation.
#![allow(dead_code)]

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use timed_node::{http, info};

pub const BIN: &str = env!("CARGO_BIN_EXE_timed");

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
///
/// Tests measure real time against a deadline; the workspace lint against reading the clock
/// is for protocol code.
#[allow(clippy::disallowed_methods)]
pub fn wait_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct TestNode {
    pub name: String,
    pub child: Child,
    pub dir: PathBuf,
    pub api: SocketAddr,
    pub p2p: SocketAddr,
    pub node_id: String,
}

impl TestNode {
    /// Starts `timed` with `--data-dir dir --listen 127.0.0.1:PORT --api 127.0.0.1:0` plus
    /// `args`, and waits until it listens.
    pub fn start(name: &str, dir: &Path, port: u16, args: &[&str]) -> TestNode {
        std::fs::create_dir_all(dir).unwrap();
        info::remove(dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("timed.log"))
            .unwrap();
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--api")
            .arg("127.0.0.1:0")
            .arg("--log")
            .arg("info")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start timed");
        let mut node = TestNode {
            name: name.into(),
            child,
            dir: dir.into(),
            api: "0.0.0.0:0".parse().unwrap(),
            p2p: "0.0.0.0:0".parse().unwrap(),
            node_id: String::new(),
        };
        let pid = node.child.id();
        let i = wait_until(
            Duration::from_secs(20),
            &format!("{name} to listen"),
            || {
                if let Ok(Some(status)) = node.child.try_wait() {
                    panic!("{name} exited early with {status}; log:\n{}", node.log());
                }
                info::read(dir).filter(|i| i.pid == pid)
            },
        );
        node.api = i.api.expect("api address");
        node.p2p = i.p2p.expect("p2p address");
        node.node_id = i.node_id;
        node
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("timed.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        let r = http::get(self.api, path, Duration::from_secs(2)).ok()?;
        if r.status != 200 {
            return None;
        }
        serde_json::from_str(&r.body).ok()
    }

    pub fn status(&self) -> Value {
        self.get("/status")
            .unwrap_or_else(|| panic!("{}: /status failed; log:\n{}", self.name, self.log()))
    }

    pub fn peers(&self) -> Vec<Value> {
        self.get("/peers")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    pub fn height(&self) -> u64 {
        self.status()["height"].as_u64().unwrap()
    }

    /// Node ids of the listed peers, in API order.
    pub fn peer_ids(&self) -> Vec<String> {
        self.peers()
            .iter()
            .map(|p| p["node_id"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the process to exit (bounded).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let name = self.name.clone();
        let child = &mut self.child;
        wait_until(limit, &format!("{name} to exit"), || {
            child.try_wait().ok().flatten()
        })
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True when `node` lists exactly the nodes in `others`, each once.
pub fn lists_exactly(node: &TestNode, others: &[&TestNode]) -> bool {
    let mut ids = node.peer_ids();
    ids.sort();
    let mut want: Vec<String> = others.iter().map(|o| o.node_id.clone()).collect();
    want.sort();
    ids == want
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("timed-test-")
        .tempdir()
        .unwrap()
}

/// A non-JSON GET (metrics).
pub fn http_get_text(node: &TestNode, path: &str) -> String {
    let r = http::get(node.api, path, Duration::from_secs(2)).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}
