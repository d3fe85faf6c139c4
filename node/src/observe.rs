//! What the node derives from the machine's events and status: goodbyes received by reason,
//! and sync progress (rate, ETA) with its log lines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use timed_core::{DownReason, NodeEvent};
use timed_tokio::NodeHandle;
use timed_tokio::RecvError;
use tracing::info;

/// Shared between the watcher tasks and the HTTP API.
#[derive(Debug, Default)]
pub struct Observed {
    /// `Goodbye`s peers sent us, by reason label.
    pub goodbyes_received: BTreeMap<&'static str, u64>,
    /// Blocks per second applied recently (sliding over the last progress interval).
    pub blocks_per_sec: f64,
    /// Estimated seconds to the sync target, while syncing.
    pub eta_secs: Option<f64>,
}

pub type Shared = Arc<Mutex<Observed>>;

pub fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Observed> {
    // A panic while holding this lock cannot leave the counters inconsistent in a way that
    // matters; keep serving them.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts goodbyes from the event stream.
pub fn spawn_event_watcher(handle: &NodeHandle, observed: Shared) {
    let mut rx = handle.subscribe();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(NodeEvent::PeerDown {
                    reason: DownReason::GoodbyeReceived(r),
                    ..
                })
                | Ok(NodeEvent::ConnFailed {
                    reason: DownReason::GoodbyeReceived(r),
                    ..
                }) => {
                    *lock(&observed)
                        .goodbyes_received
                        .entry(r.as_str())
                        .or_insert(0) += 1;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Samples the height every `every` and logs sync progress (height, target, blocks/s, ETA)
/// while a peer is ahead of us, at most once per `log_every`.
pub fn spawn_sync_progress(
    handle: NodeHandle,
    observed: Shared,
    every: Duration,
    log_every: Duration,
) {
    tokio::spawn(async move {
        let mut last: Option<(tokio::time::Instant, u64)> = None;
        let mut last_log: Option<tokio::time::Instant> = None;
        let mut was_syncing = false;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Ok(status) = handle.status().await else {
                return;
            };
            let now = tokio::time::Instant::now();
            let rate = match last {
                Some((t, h)) => {
                    let dt = now.duration_since(t).as_secs_f64();
                    if dt > 0.0 {
                        status.height.saturating_sub(h) as f64 / dt
                    } else {
                        0.0
                    }
                }
                None => 0.0,
            };
            last = Some((now, status.height));
            let eta = status.sync_target.and_then(|target| {
                let left = target.saturating_sub(status.height) as f64;
                (rate > 0.0).then(|| left / rate)
            });
            {
                let mut o = lock(&observed);
                o.blocks_per_sec = rate;
                o.eta_secs = eta;
            }
            match status.sync_target {
                Some(target) if target > status.height => {
                    let due = last_log.is_none_or(|t| now.duration_since(t) >= log_every);
                    if due {
                        last_log = Some(now);
                        let eta = eta
                            .map(|s| format!("{s:.0}s"))
                            .unwrap_or_else(|| "unknown".into());
                        info!(
                            height = status.height,
                            target,
                            blocks_per_sec = format!("{rate:.1}"),
                            %eta,
                            "syncing: height {} of {target}, {rate:.1} blocks/s, ETA {eta}",
                            status.height
                        );
                    }
                    was_syncing = true;
                }
                _ => {
                    if was_syncing {
                        info!(
                            height = status.height,
                            "synced: at the best height our peers know"
                        );
                        was_syncing = false;
                        last_log = None;
                    }
                }
            }
        }
    });
}
