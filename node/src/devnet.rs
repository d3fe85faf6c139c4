//! `timed devnet`: starts N real `timed` processes over loopback TCP, node 1 producing blocks
//! and the others given node 1 as their only `--peer`, then prints a live table every few
//! seconds and a summary at the end. Ctrl-C (or `--duration`) stops every node with SIGTERM,
//! which is their graceful shutdown.

use crate::cli::{DevnetArgs, SettingsError};
use crate::{duration, http, info};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> SettingsError {
    SettingsError {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// One running child.
struct Proc {
    index: u16,
    child: Child,
    dir: PathBuf,
    api: SocketAddr,
    p2p: SocketAddr,
}

/// What the table shows for one node.
#[derive(Default, Clone)]
struct Row {
    height: u64,
    peers: usize,
    rtt_ms: Option<f64>,
    pings: u64,
    pongs: u64,
    reconnects: u64,
    tip: String,
    up: bool,
}

pub fn run(args: &DevnetArgs) -> Result<(), SettingsError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            fail(
                format!("cannot start the async runtime: {e}"),
                "check system limits",
            )
        })?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &DevnetArgs) -> Result<(), SettingsError> {
    let (dir, _tmp) = match &args.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("timed-devnet-")
                .tempdir()
                .map_err(|e| {
                    fail(
                        format!("cannot create a temporary directory: {e}"),
                        "pass --data-dir",
                    )
                })?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let exe = std::env::current_exe().map_err(|e| {
        fail(
            format!("cannot find the timed executable: {e}"),
            "run timed from its installed path",
        )
    })?;
    println!(
        "devnet: {} nodes in {} (logs: node-N/timed.log), node 1 produces a block every {}, ping every {}",
        args.nodes,
        dir.display(),
        duration::format(args.produce_blocks),
        duration::format(args.ping_interval)
    );
    if args.data_dir.is_none() {
        println!("        the directory is removed at the end; pass --data-dir to keep it");
    }

    let mut procs: Vec<Proc> = Vec::new();
    let result = start_all(args, &exe, &dir, &mut procs).await;
    if let Err(e) = result {
        stop_all(&mut procs).await;
        return Err(e);
    }
    for p in &procs {
        println!(
            "  node {}: pid {:>7}  p2p {}  api http://{}",
            p.index,
            p.child.id().unwrap_or(0),
            p.p2p,
            p.api
        );
    }
    println!("Ctrl-C stops every node cleanly.\n");

    let started = tokio::time::Instant::now();
    let stop_at = args.duration.map(|d| started + d);
    let mut tick = tokio::time::interval(args.every.max(Duration::from_millis(200)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Vec<Row> = Vec::new();
    let reason = loop {
        tokio::select! {
            _ = tick.tick() => {
                last = sample(&procs).await;
                print_table(started.elapsed(), &procs, &last);
                if let Some(i) = procs.iter_mut().position(|p| matches!(p.child.try_wait(), Ok(Some(_)))) {
                    break format!("node {} exited on its own (see {})", procs[i].index, procs[i].dir.join("timed.log").display());
                }
            }
            _ = sleep_until_opt(stop_at) => break "duration reached".to_string(),
            _ = interrupted() => break "interrupted".to_string(),
        }
    };
    println!("\n{reason}: final sample, then stopping every node with SIGTERM");
    let final_rows = sample(&procs).await;
    if final_rows.iter().any(|r| r.up) {
        last = final_rows;
    }
    let clean = stop_all(&mut procs).await;
    print_summary(started.elapsed(), &procs, &last, &clean);
    Ok(())
}

async fn start_all(
    args: &DevnetArgs,
    exe: &Path,
    dir: &Path,
    procs: &mut Vec<Proc>,
) -> Result<(), SettingsError> {
    let mut seed: Option<SocketAddr> = None;
    for index in 1..=args.nodes {
        let node_dir = dir.join(format!("node-{index}"));
        std::fs::create_dir_all(&node_dir).map_err(|e| {
            fail(
                format!("cannot create {}: {e}", node_dir.display()),
                "pass a writable --data-dir",
            )
        })?;
        info::remove(&node_dir);
        let log = std::fs::File::create(node_dir.join("timed.log")).map_err(|e| {
            fail(
                format!("cannot create the log file in {}: {e}", node_dir.display()),
                "pass a writable --data-dir",
            )
        })?;
        let mut cmd = Command::new(exe);
        cmd.arg("--network")
            .arg("devnet")
            .arg("--data-dir")
            .arg(&node_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--api")
            .arg("127.0.0.1:0")
            .arg("--ping-interval")
            .arg(duration::format(args.ping_interval))
            .arg("--log")
            .arg(&args.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if index == 1 {
            cmd.arg("--produce-blocks")
                .arg(duration::format(args.produce_blocks));
        }
        if let Some(s) = seed {
            cmd.arg("--peer").arg(s.to_string());
        }
        let child = cmd.spawn().map_err(|e| {
            fail(
                format!("cannot start {}: {e}", exe.display()),
                "check the executable",
            )
        })?;
        let pid = child.id().unwrap_or(0);
        let mut proc = Proc {
            index,
            child,
            dir: node_dir.clone(),
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
            p2p: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let found = wait_for_info(&node_dir, pid, &mut proc.child, Duration::from_secs(30)).await;
        match found {
            Some(i) => {
                proc.api = i.api.unwrap_or(proc.api);
                proc.p2p = i.p2p.unwrap_or(proc.p2p);
                seed.get_or_insert(proc.p2p);
                procs.push(proc);
            }
            None => {
                let tail = std::fs::read_to_string(node_dir.join("timed.log")).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                procs.push(proc);
                return Err(fail(
                    format!(
                        "node {index} did not start; last log lines:\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ),
                    format!("see {}", node_dir.join("timed.log").display()),
                ));
            }
        }
    }
    Ok(())
}

/// Waits until the child wrote its `node.json` (it listens then), or exits, or time is up.
pub async fn wait_for_info(
    dir: &Path,
    pid: u32,
    child: &mut Child,
    limit: Duration,
) -> Option<info::NodeInfo> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(i) = info::read(dir) {
            if i.pid == pid {
                return Some(i);
            }
        }
        if matches!(child.try_wait(), Ok(Some(_))) || tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sample(procs: &[Proc]) -> Vec<Row> {
    let apis: Vec<SocketAddr> = procs.iter().map(|p| p.api).collect();
    tokio::task::spawn_blocking(move || apis.into_iter().map(sample_one).collect())
        .await
        .unwrap_or_default()
}

fn sample_one(api: SocketAddr) -> Row {
    let t = Duration::from_secs(2);
    let json = |path: &str| -> Option<Value> {
        let r = http::get(api, path, t).ok()?;
        serde_json::from_str(&r.body).ok()
    };
    let (Some(status), Some(peers)) = (json("/status"), json("/peers")) else {
        return Row::default();
    };
    let u = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let rtts: Vec<f64> = peers
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("rtt_ms").and_then(Value::as_f64))
                .collect()
        })
        .unwrap_or_default();
    Row {
        height: u(&status, "height"),
        peers: u(&status, "peer_count") as usize,
        rtt_ms: (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64),
        pings: u(&status, "pings_sent"),
        pongs: u(&status, "pongs_received"),
        reconnects: u(&status, "reconnects_total"),
        tip: status
            .get("tip_hash")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(8)
            .collect(),
        up: true,
    }
}

fn pong_rate(r: &Row) -> String {
    if r.pings == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * r.pongs as f64 / r.pings as f64)
    }
}

fn print_table(elapsed: Duration, procs: &[Proc], rows: &[Row]) {
    println!("-- t = {}s", elapsed.as_secs());
    println!(
        "{:<8} {:>8} {:>8} {:>6} {:>9} {:>8} {:>11}  TIP",
        "NODE", "PID", "HEIGHT", "PEERS", "RTT ms", "PONGS", "RECONNECTS"
    );
    for (p, r) in procs.iter().zip(rows) {
        let name = format!("node {}", p.index);
        let pid = p.child.id().unwrap_or(0);
        if !r.up {
            println!("{name:<8} {pid:>8}  (not answering)");
            continue;
        }
        println!(
            "{name:<8} {pid:>8} {:>8} {:>6} {:>9} {:>8} {:>11}  {}",
            r.height,
            r.peers,
            r.rtt_ms
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
            pong_rate(r),
            r.reconnects,
            r.tip
        );
    }
}

fn print_summary(elapsed: Duration, procs: &[Proc], rows: &[Row], clean: &[bool]) {
    println!("\nsummary after {}s", elapsed.as_secs());
    println!(
        "{:<8} {:>8} {:>6} {:>8} {:>11} {:>8}  SHUTDOWN",
        "NODE", "HEIGHT", "PEERS", "PONGS", "RECONNECTS", "TIP"
    );
    for ((p, r), ok) in procs.iter().zip(rows).zip(clean) {
        println!(
            "{:<8} {:>8} {:>6} {:>8} {:>11} {:>8}  {}",
            format!("node {}", p.index),
            r.height,
            r.peers,
            pong_rate(r),
            r.reconnects,
            r.tip,
            if *ok {
                "clean"
            } else {
                "FAILED (see its timed.log)"
            }
        );
    }
    let n = procs.len();
    let full_mesh = rows.iter().all(|r| r.peers + 1 == n);
    let same_tip = rows.windows(2).all(|w| w[0].tip == w[1].tip);
    let reconnects: u64 = rows.iter().map(|r| r.reconnects).sum();
    let (pings, pongs) = rows
        .iter()
        .fold((0, 0), |(a, b), r| (a + r.pings, b + r.pongs));
    println!(
        "every node sees every other: {}   same tip everywhere: {}   reconnects: {}   pongs/pings: {}/{}",
        yes(full_mesh),
        yes(same_tip),
        reconnects,
        pongs,
        pings
    );
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

/// SIGTERM to every child, then wait (10 s each, then SIGKILL). Returns per node whether it
/// exited cleanly (status 0).
async fn stop_all(procs: &mut [Proc]) -> Vec<bool> {
    for p in procs.iter() {
        if let Some(pid) = p.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let mut clean = Vec::new();
    for p in procs.iter_mut() {
        let ok = match tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = p.child.kill().await;
                false
            }
        };
        clean.push(ok);
    }
    clean
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
