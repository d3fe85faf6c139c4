//! A map keyed by [`ConnId`], for the tables looked up on every frame.
//!
//! Connection ids are handed out in increasing order and never reused, and a node holds a few
//! dozen connections at most, so a sorted pair of vectors beats a `BTreeMap`: a lookup is a
//! binary search over one contiguous run of `u64`s (a cache line or two) instead of a walk
//! through linked nodes, and an insert is almost always a push at the end. Removal shifts the
//! tail, which is cheap at these sizes and rare (a connection closing). Iteration is in
//! ascending id order, exactly as with the `BTreeMap` it replaces: callers depend on that
//! order for deterministic behaviour.

use crate::id::ConnId;
use alloc::vec::Vec;

#[derive(Debug, Clone)]
pub(crate) struct ConnMap<V> {
    /// Sorted ascending, no duplicates; `vals[i]` belongs to `keys[i]`.
    keys: Vec<ConnId>,
    vals: Vec<V>,
    /// Index of the last entry found through `&mut self`. Handling one frame looks up the
    /// same connection several times in a row (decode, dispatch, queue, flush); checking the
    /// hint first makes all but the first of those a single comparison. Only a hint: it is
    /// checked against `keys` before use, so inserts and removals need not maintain it.
    hint: usize,
}

impl<V> Default for ConnMap<V> {
    fn default() -> Self {
        ConnMap {
            keys: Vec::new(),
            vals: Vec::new(),
            hint: 0,
        }
    }
}

impl<V> ConnMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn find(&self, id: ConnId) -> Result<usize, usize> {
        if self.keys.get(self.hint) == Some(&id) {
            return Ok(self.hint);
        }
        // The newest connection is the likeliest to be missing (not inserted yet) and ids
        // only grow, so check the end first: an insert of a fresh id is then O(1).
        match self.keys.last() {
            None => Err(0),
            Some(&last) if id > last => Err(self.keys.len()),
            _ => self.keys.binary_search(&id),
        }
    }

    #[inline]
    pub fn get(&self, id: &ConnId) -> Option<&V> {
        self.find(*id).ok().map(|i| &self.vals[i])
    }

    #[inline]
    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut V> {
        match self.find(*id) {
            Ok(i) => {
                self.hint = i;
                Some(&mut self.vals[i])
            }
            Err(_) => None,
        }
    }

    #[inline]
    pub fn contains_key(&self, id: &ConnId) -> bool {
        self.find(*id).is_ok()
    }

    /// The value of `id`, inserting `make()` first if absent.
    #[inline]
    pub fn get_or_insert_with(&mut self, id: ConnId, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(id) {
            Ok(i) => i,
            Err(i) => {
                self.keys.insert(i, id);
                self.vals.insert(i, make());
                i
            }
        };
        &mut self.vals[i]
    }

    /// Inserts or replaces, returning the old value.
    pub fn insert(&mut self, id: ConnId, v: V) -> Option<V> {
        match self.find(id) {
            Ok(i) => Some(core::mem::replace(&mut self.vals[i], v)),
            Err(i) => {
                self.keys.insert(i, id);
                self.vals.insert(i, v);
                None
            }
        }
    }

    pub fn remove(&mut self, id: &ConnId) -> Option<V> {
        let i = self.find(*id).ok()?;
        self.keys.remove(i);
        Some(self.vals.remove(i))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key and value vectors themselves (for [`hot`](super::hot)).
    #[cfg(feature = "sim")]
    pub fn raw(&self) -> (&[ConnId], &[V]) {
        (&self.keys, &self.vals)
    }

    /// Ascending by id.
    pub fn iter(&self) -> impl Iterator<Item = (&ConnId, &V)> {
        self.keys.iter().zip(self.vals.iter())
    }

    /// In ascending id order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.vals.iter()
    }

    /// Ascending.
    pub fn keys(&self) -> impl Iterator<Item = &ConnId> {
        self.keys.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    /// Same answers and the same iteration order as a `BTreeMap`, under random operations.
    #[test]
    fn behaves_like_a_btreemap() {
        let mut m: ConnMap<u64> = ConnMap::new();
        let mut model: BTreeMap<ConnId, u64> = BTreeMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..50_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = ConnId::new(x >> 8 & 63);
            match x >> 20 & 3 {
                0 => assert_eq!(m.insert(id, step), model.insert(id, step)),
                1 => assert_eq!(m.remove(&id), model.remove(&id)),
                2 => {
                    *m.get_or_insert_with(id, || step) += 1;
                    *model.entry(id).or_insert(step) += 1;
                }
                _ => {
                    assert_eq!(m.get(&id), model.get(&id));
                    assert_eq!(m.contains_key(&id), model.contains_key(&id));
                    if let Some(v) = m.get_mut(&id) {
                        *v ^= 1;
                    }
                    if let Some(v) = model.get_mut(&id) {
                        *v ^= 1;
                    }
                }
            }
            assert_eq!(m.len(), model.len());
        }
        assert!(m.iter().map(|(k, v)| (*k, *v)).eq(model.into_iter()));
    }
}
