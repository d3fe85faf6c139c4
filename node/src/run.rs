//! Running one node: store, identity, runtime, API, signals, graceful shutdown.

use crate::cli::{Settings, SettingsError};
use crate::observe::{self, Observed};
use crate::{api, info, store};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use timed_tokio::RuntimeOptions;
use tracing::{error, info, warn};

/// Why a node stopped with an error: what went wrong and how to fix it.
pub type RunError = SettingsError;

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> RunError {
    SettingsError {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Takes the data dir's lock file, held (by the returned handle) until the process exits.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, RunError> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            fail(
                format!("cannot create the lock file {}: {e}", path.display()),
                "pass a writable --data-dir",
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = info::read(dir)
                .map(|i| format!(" (pid {})", i.pid))
                .unwrap_or_default();
            Err(fail(
                format!(
                    "another timed process{holder} is using the data dir {}",
                    dir.display()
                ),
                "stop that node first, or give this one its own --data-dir (or --node-id)",
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(fail(
            format!("cannot lock {}: {e}", path.display()),
            "check the data dir's file system supports locks, or pass another --data-dir",
        )),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], RunError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        fail(
            format!("no OS randomness: {e}"),
            "run on a system with a working /dev/urandom",
        )
    })?;
    Ok(b)
}

/// Runs a node until SIGTERM / Ctrl-C (graceful: Goodbye to every peer) or a fatal store error.
pub async fn run(settings: Settings) -> Result<(), RunError> {
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| {
        fail(
            format!("cannot create data dir {}: {e}", dir.display()),
            "pass a writable --data-dir",
        )
    })?;
    // One process per data dir: LMDB would let a second one open the same store, and two
    // nodes writing one chain and one identity is never what the operator meant.
    let _lock = lock_data_dir(dir)?;
    info::remove(dir);

    let mut store = store::open(dir, settings.network, settings.store_map_size)?;
    let seed = u64::from_le_bytes(random_bytes::<8>()?);
    let fresh = random_bytes::<32>()?;
    let node_id = store::identity(&mut store, fresh)?;
    let height = store::height(&store)?;
    let config = settings.core_config(node_id, seed)?;
    info!(
        node_id = %node_id,
        network = settings.network.name(),
        data_dir = %dir.display(),
        height,
        "starting timed {}",
        env!("CARGO_PKG_VERSION")
    );

    let opts = RuntimeOptions {
        listen: Some(settings.listen),
        ..RuntimeOptions::default()
    };
    let node = timed_tokio::spawn(config, store, opts)
        .await
        .map_err(|e| match e {
            timed_tokio::StartError::Bind { addr, source } => fail(
                format!("cannot listen for peers on {addr}: {source}"),
                "pick another --p2p-port (or --listen), or stop the process using that port",
            ),
            timed_tokio::StartError::Config(c) => {
                fail(c.to_string(), "check the settings named above")
            }
        })?;
    let handle = node.handle();
    let p2p = handle.local_addr();
    let shown =
        |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "none".into());
    info!(p2p = %shown(p2p), persistent_peers = settings.peers.len(), "listening for peers");

    let observed = Arc::new(Mutex::new(Observed::default()));
    observe::spawn_event_watcher(&handle, observed.clone());
    observe::spawn_sync_progress(
        handle.clone(),
        observed.clone(),
        Duration::from_secs(1),
        Duration::from_secs(5),
    );

    let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut api_addr = None;
    let mut api_task = None;
    if let Some(addr) = settings.api {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                handle.shutdown().await;
                return Err(fail(
                    format!("cannot serve the API on {addr}: {e}"),
                    "pick another --api address (or --node-id), or --api off",
                ));
            }
        };
        api_addr = listener.local_addr().ok();
        let state = api::ApiState {
            handle: handle.clone(),
            observed,
            started: tokio::time::Instant::now(),
            p2p,
        };
        let app = api::router(state);
        api_task = Some(tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = api_stopped.await;
                })
                .await;
            if let Err(e) = res {
                warn!(error = %e, "API server stopped");
            }
        }));
        info!(api = %shown(api_addr), "HTTP API: /status /peers /chain /metrics, POST /tx");
    }

    let node_info = info::NodeInfo {
        pid: std::process::id(),
        node_id: node_id.to_hex(),
        network: settings.network.name().into(),
        p2p,
        api: api_addr,
    };
    if let Err(e) = info::write(dir, &node_info) {
        warn!(error = %e, "cannot write {}", info::path(dir).display());
    }

    let why = wait_for_stop(&handle).await;
    info!("{why}: shutting down");
    handle.shutdown().await;
    let exit = node.join().await;
    let _ = api_stop.send(());
    if let Some(t) = api_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    info::remove(dir);
    // Dropping the store closes the LMDB environment.
    drop(exit.store);
    match exit.fatal {
        Some(err) => {
            error!(%err, "stopped after a storage failure");
            Err(fail(
                format!("storage failure: {err}"),
                "fix the cause named above (disk space, permissions), then restart",
            ))
        }
        None => {
            info!("stopped cleanly");
            Ok(())
        }
    }
}

async fn wait_for_stop(handle: &timed_tokio::NodeHandle) -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            _ => {
                warn!("cannot install signal handlers; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
                return "interrupted";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "interrupted (Ctrl-C)",
            _ = handle.stopped() => "the node stopped",
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
            _ = handle.stopped() => "the node stopped",
        }
    }
}
