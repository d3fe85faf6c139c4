//! What the node says about each event in its log: one place, so every runtime logs alike.

use timed_core::{DownReason, GoodbyeReason, NodeEvent};
use tracing::{debug, error, info, trace, warn, Span};

/// Logs `event`. `span_of` gives the span of a connection the driver still tracks, so lines
/// about a connection carry its id, direction, remote address and (once known) peer.
pub(crate) fn log_event(event: &NodeEvent, span_of: impl Fn(timed_core::ConnId) -> Span) {
    match event {
        NodeEvent::RequestDone { id, result, .. } => {
            trace!(query = %id, ok = result.is_ok(), "request done")
        }
        NodeEvent::QueryDone { id, result } => {
            trace!(query = %id, ok = result.is_ok(), "query done")
        }
        NodeEvent::InboundRequest { id, protocol, .. } => {
            trace!(request = ?id, %protocol, "peer's request")
        }
        NodeEvent::GossipReceived { id, topic, .. } => {
            trace!(message = ?id, %topic, "gossip received")
        }
        NodeEvent::PeerUp {
            peer,
            conn,
            direction,
            addr,
        } => {
            let span = span_of(*conn);
            span.record("peer", tracing::field::display(peer.short()));
            span.in_scope(|| info!(peer = %peer, direction = direction.as_str(), %addr, "peer up"));
        }
        NodeEvent::PeerMoved { peer, from, to } => {
            span_of(*to).record("peer", tracing::field::display(peer.short()));
            debug!(peer = %peer.short(), %from, %to, "peer moved to another connection");
        }
        NodeEvent::PeerDown { peer, conn, reason } => {
            let span = span_of(*conn);
            let _g = span.enter();
            match reason {
                DownReason::GoodbyeReceived(r) => {
                    info!(peer = %peer.short(), %conn, reason = r.as_str(), "peer down: it said goodbye ({r})")
                }
                DownReason::GoodbyeSent(GoodbyeReason::Shutdown) => {
                    debug!(peer = %peer.short(), %conn, "peer down: we are shutting down")
                }
                _ => info!(peer = %peer.short(), %conn, reason = %reason, "peer down"),
            }
        }
        NodeEvent::ConnFailed { conn, addr, reason } => {
            debug!(%conn, %addr, %reason, "connection ended before the handshake completed")
        }
        NodeEvent::GoodbyeReceived {
            conn,
            reason,
            detail,
            ..
        } => span_of(*conn)
            .in_scope(|| debug!(reason = reason.as_str(), %detail, "peer said goodbye")),
        NodeEvent::BlocksApplied { from, to, .. } => debug!(from, to, "blocks applied"),
        NodeEvent::Reorg { fork, old_tip, to } => info!(fork, old_tip, to, "chain reorganised"),
        NodeEvent::TxAccepted { id } => debug!(tx = %id, "transaction accepted"),
        NodeEvent::Misbehaved {
            peer,
            addr,
            what,
            detail,
        } => warn!(
            peer = %peer.map(|p| p.short().to_string()).unwrap_or_else(|| "?".into()),
            %addr, what = what.as_str(), %detail, "peer misbehaved: disconnected and banned"
        ),
        NodeEvent::Fatal { error } => error!(%error, "storage failure: the node stops"),
    }
}
