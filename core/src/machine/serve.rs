//! Answers to peers' requests on the core's own protocols: tip, hash at a height, block
//! ranges, addresses.

use super::PeerMachine;
use super::MAX_ADDRS_PER_RESPONSE;
use crate::chain::Block;
use crate::id::ConnId;
use crate::store::{Store, StoreOp};
use crate::time::Instant;
use crate::wire::{PeerAddr, RefuseReason, RequestBody, ResponseBody};
use alloc::vec::Vec;

/// Blocks per response we serve, whatever the peer asks.
const MAX_BLOCKS_PER_RESPONSE: u32 = 1000;

impl<S: Store> PeerMachine<S> {
    pub(crate) fn serve_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        body: RequestBody,
    ) -> Result<ResponseBody, RefuseReason> {
        let result = match body {
            RequestBody::Tip => Ok(ResponseBody::Tip {
                height: self.chain.tip.0,
                hash: self.chain.tip.1,
            }),
            RequestBody::HashAt { height } => self.store.hash_at(height).map(ResponseBody::HashAt),
            RequestBody::Blocks { from, count } => {
                self.blocks_from(from, count).map(ResponseBody::Blocks)
            }
            RequestBody::Peers => Ok(ResponseBody::Peers(self.addrs_for(conn))),
        };
        result.map_err(|e| {
            self.fatal(now, StoreOp::ServeRequest, e);
            RefuseReason::Unavailable
        })
    }

    pub(super) fn blocks_from(&self, from: u64, count: u32) -> Result<Vec<Block>, S::Error> {
        let count = count.min(MAX_BLOCKS_PER_RESPONSE) as u64;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for h in from..from.saturating_add(count) {
            let Some(b) = self.store.block_at(h)? else {
                break;
            };
            bytes += b.wire_size();
            if bytes > self.cfg.max_response_bytes && !out.is_empty() {
                break;
            }
            out.push(b);
        }
        Ok(out)
    }

    pub(super) fn addrs_for(&self, conn: ConnId) -> Vec<PeerAddr> {
        let asker = self
            .conns
            .get(&conn)
            .and_then(|c| c.listen_addr())
            .map(PeerAddr::from);
        let mut out: Vec<PeerAddr> = Vec::new();
        // Peers we are connected to first: they are known good. Then the book, whose entries
        // are distinct, so a duplicate can only be one of the peers already listed: checking
        // that short prefix replaces a set of everything taken.
        for a in self
            .peers
            .values()
            .filter_map(|id| self.conns.get(id)?.listen_addr())
            .map(PeerAddr::from)
        {
            if out.len() >= MAX_ADDRS_PER_RESPONSE {
                return out;
            }
            if Some(a) != asker && !out.contains(&a) {
                out.push(a);
            }
        }
        let connected = out.len();
        for a in self
            .chain
            .book
            .entries()
            .filter(|e| e.failures == 0)
            .map(|e| e.addr)
        {
            if out.len() >= MAX_ADDRS_PER_RESPONSE {
                break;
            }
            if Some(a) != asker && !out[..connected].contains(&a) {
                out.push(a);
            }
        }
        out
    }
}
