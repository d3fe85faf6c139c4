//! A FIFO queue that keeps its first few elements inline.
//!
//! A pipe's items and watched frames are almost always a handful (a write is cut into at most
//! a few chunks, and pings are seconds apart), yet every event reads the front of both. Kept
//! in a `VecDeque`, each front is another heap line to miss on; kept inline, it is in the
//! pipe's own cache lines. Longer queues (a slow reader, a burst) overflow to a heap deque.

use std::collections::VecDeque;

/// FIFO of `Copy` values: up to `N` in an inline ring, the rest (later ones) in `spill`.
/// Invariant: `spill` is empty unless the ring is full, so the ring holds the oldest
/// elements and the order is that of a plain deque.
#[derive(Debug)]
pub struct SmallDeque<T: Copy + Default, const N: usize> {
    ring: [T; N],
    head: u8,
    len: u8,
    /// Boxed: one pointer inline while unused (the common case), not a whole empty VecDeque.
    #[allow(clippy::box_collection)]
    spill: Option<Box<VecDeque<T>>>,
}

impl<T: Copy + Default, const N: usize> Default for SmallDeque<T, N> {
    fn default() -> Self {
        const { assert!(N > 0 && N < 256) };
        SmallDeque {
            ring: [T::default(); N],
            head: 0,
            len: 0,
            spill: None,
        }
    }
}

impl<T: Copy + Default, const N: usize> SmallDeque<T, N> {
    #[inline]
    fn slot(&self, i: usize) -> usize {
        (self.head as usize + i) % N
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len as usize + self.spill.as_ref().map_or(0, |s| s.len())
    }

    #[inline]
    pub fn front(&self) -> Option<&T> {
        (self.len > 0).then(|| &self.ring[self.head as usize])
    }

    #[inline]
    pub fn push_back(&mut self, x: T) {
        if (self.len as usize) < N {
            let i = self.slot(self.len as usize);
            self.ring[i] = x;
            self.len += 1;
        } else {
            self.spill.get_or_insert_with(Default::default).push_back(x);
        }
    }

    #[inline]
    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let x = self.ring[self.head as usize];
        self.head = ((self.head as usize + 1) % N) as u8;
        self.len -= 1;
        if let Some(spill) = self.spill.as_mut() {
            // Keep the invariant: the ring holds the oldest elements.
            if let Some(y) = spill.pop_front() {
                let i = self.slot(self.len as usize);
                self.ring[i] = y;
                self.len += 1;
            }
        }
        Some(x)
    }

    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.spill = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_vecdeque() {
        let mut rng = crate::rng::Rng::derive(3, "small-deque-test");
        let mut q = SmallDeque::<u32, 3>::default();
        let mut reference = VecDeque::new();
        for i in 0..20_000u32 {
            match rng.below(10) {
                0..=4 => {
                    q.push_back(i);
                    reference.push_back(i);
                }
                5..=8 => assert_eq!(q.pop_front(), reference.pop_front()),
                _ => {
                    if rng.below(20) == 0 {
                        q.clear();
                        reference.clear();
                    }
                }
            }
            assert_eq!(q.front(), reference.front());
            assert_eq!(q.len(), reference.len());
            assert_eq!(q.is_empty(), reference.is_empty());
        }
    }
}
