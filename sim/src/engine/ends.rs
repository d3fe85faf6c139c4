//! A node's open connection ends, by the model's connection number.
//!
//! Every action a model asks for names its connection by the model's number, so this lookup
//! runs several times per event. Both models number their connections from 1 upwards per
//! incarnation, so a vector indexed by that number is an O(1), allocation-free lookup;
//! numbers beyond [`DENSE_LIMIT`] (a model that numbers some other way) fall back to a
//! `BTreeMap`. Iteration is in ascending model number either way, as the engine's order of
//! effects (and so the trace) depends on it.

use crate::model::ModelConn;
use std::collections::BTreeMap;

/// Model numbers below this are kept in the vector (at most this many slots per node).
const DENSE_LIMIT: ModelConn = 1 << 16;

/// An engine connection and the side (0 dialed, 1 accepted) a model connection is.
pub type EndRef = (u32, u8);

#[derive(Debug, Default)]
pub struct Ends {
    dense: Vec<Option<EndRef>>,
    sparse: BTreeMap<ModelConn, EndRef>,
}

impl Ends {
    #[inline]
    pub fn get(&self, mconn: ModelConn) -> Option<EndRef> {
        if mconn < DENSE_LIMIT {
            self.dense.get(mconn as usize).copied().flatten()
        } else {
            self.sparse.get(&mconn).copied()
        }
    }

    /// Where the entry of `mconn` lives (a prefetch hint; null if nowhere cheap to name).
    #[inline]
    pub fn slot_ptr(&self, mconn: ModelConn) -> *const u8 {
        if (mconn as usize) < self.dense.len() {
            self.dense.as_ptr().wrapping_add(mconn as usize).cast()
        } else {
            std::ptr::null()
        }
    }

    pub fn insert(&mut self, mconn: ModelConn, end: EndRef) {
        if mconn < DENSE_LIMIT {
            let i = mconn as usize;
            if i >= self.dense.len() {
                self.dense.resize(i + 1, None);
            }
            self.dense[i] = Some(end);
        } else {
            self.sparse.insert(mconn, end);
        }
    }

    pub fn remove(&mut self, mconn: ModelConn) {
        if mconn < DENSE_LIMIT {
            if let Some(slot) = self.dense.get_mut(mconn as usize) {
                *slot = None;
            }
        } else {
            self.sparse.remove(&mconn);
        }
    }

    pub fn clear(&mut self) {
        self.dense = Vec::new();
        self.sparse.clear();
    }

    /// The ends in ascending model number.
    pub fn values(&self) -> impl Iterator<Item = EndRef> + '_ {
        self.dense
            .iter()
            .filter_map(|e| *e)
            .chain(self.sparse.values().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_an_ordered_map() {
        let mut ends = Ends::default();
        let mut model = BTreeMap::new();
        let keys = [3, 1, DENSE_LIMIT + 5, 7, 1, DENSE_LIMIT, 3, 0, u64::MAX];
        for (i, &k) in keys.iter().enumerate() {
            if i % 3 == 2 {
                ends.remove(k);
                model.remove(&k);
            } else {
                ends.insert(k, (i as u32, (i % 2) as u8));
                model.insert(k, (i as u32, (i % 2) as u8));
            }
            assert_eq!(
                ends.values().collect::<Vec<_>>(),
                model.values().copied().collect::<Vec<_>>()
            );
            for &k in &keys {
                assert_eq!(ends.get(k), model.get(&k).copied());
            }
        }
        ends.clear();
        assert_eq!(ends.values().count(), 0);
        assert_eq!(ends.get(1), None);
    }
}
