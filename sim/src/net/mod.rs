//! The virtual network: who can reach whom right now, what is filtered, how late bytes arrive.

pub mod link;
pub mod small_deque;
pub mod small_vec;
pub mod wire;

use crate::faults::{Filter, Side};
use crate::rng::Rng;
use crate::scenario::NetParams;
use crate::time::Micros;
use std::collections::{BTreeMap, BTreeSet};
use wire::Kind;

/// Reachability and filtering, changed by faults.
#[derive(Debug)]
pub struct NetState {
    pub params: NetParams,
    /// Partition group per node; nodes in different groups cannot reach each other.
    group: Vec<u16>,
    partitioned: bool,
    /// One-way clogs `(from, to)`.
    clogs: BTreeSet<(u32, u32)>,
    /// Filters for the whole run and those switched on by faults (by fault id).
    static_filters: Vec<Filter>,
    fault_filters: BTreeMap<usize, Filter>,
    any_filter: bool,
    pub rng: Rng,
}

impl NetState {
    pub fn new(params: NetParams, nodes: usize, filters: Vec<Filter>, rng: Rng) -> Self {
        let any_filter = !filters.is_empty();
        NetState {
            params,
            group: vec![0; nodes],
            partitioned: false,
            clogs: BTreeSet::new(),
            static_filters: filters,
            fault_filters: BTreeMap::new(),
            any_filter,
            rng,
        }
    }

    /// True when nothing from `from` reaches `to` now.
    #[inline]
    pub fn blocked(&self, from: u32, to: u32) -> bool {
        (self.partitioned && self.group[from as usize] != self.group[to as usize])
            || (!self.clogs.is_empty() && self.clogs.contains(&(from, to)))
    }

    pub fn partition(&mut self, groups: &[u16]) {
        for (g, v) in self.group.iter_mut().zip(groups) {
            *g = *v;
        }
        self.partitioned = true;
    }

    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.partitioned = false;
    }

    pub fn clog(&mut self, from: u32, to: u32) {
        self.clogs.insert((from, to));
    }

    pub fn unclog(&mut self, from: u32, to: u32) {
        self.clogs.remove(&(from, to));
    }

    pub fn filter_on(&mut self, id: usize, f: Filter) {
        self.fault_filters.insert(id, f);
        self.any_filter = true;
    }

    pub fn filter_off(&mut self, id: usize) {
        self.fault_filters.remove(&id);
        self.any_filter = !self.static_filters.is_empty() || !self.fault_filters.is_empty();
    }

    /// Whether a frame of `kind` sent by `from` on a connection of `side` is dropped.
    #[inline]
    pub fn drops(&mut self, kind: Kind, side: Side, from: usize) -> bool {
        if !self.any_filter {
            return false;
        }
        let mut p_keep = 1.0;
        for f in self
            .static_filters
            .iter()
            .chain(self.fault_filters.values())
        {
            if f.matches(kind, side, from) {
                p_keep *= 1.0 - f.prob;
            }
        }
        p_keep < 1.0 && (p_keep <= 0.0 || self.rng.chance(1.0 - p_keep))
    }

    /// A new connection's one-way base latency.
    pub fn base_latency(&mut self, same_host: bool) -> Micros {
        if same_host {
            self.params.same_host.max(1)
        } else {
            self.rng
                .range(self.params.latency_lo, self.params.latency_hi)
                .max(1)
        }
    }

    /// Latency of one chunk on a connection with base latency `base`.
    #[inline]
    pub fn chunk_latency(&mut self, base: Micros) -> Micros {
        if self.params.jitter == 0 {
            base
        } else {
            base + self.rng.below(self.params.jitter + 1)
        }
    }
}
