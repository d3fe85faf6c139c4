//! A short unordered list that keeps its first few elements inline.
//!
//! An end's unanswered pings are one or two at a time, and every ping or pong that arrives
//! looks them up; inline, they sit in the end's own cache lines instead of another heap
//! allocation to miss on. More spill over to the heap.

/// Up to `N` values inline, the rest in `spill`, seen as one sequence `ring[..len] ++ spill`
/// with the operations (and element order) of a `Vec` used with `swap_remove`.
/// Invariant: `spill` is empty unless the inline part is full.
#[derive(Debug)]
pub struct SmallVec<T: Copy + Default, const N: usize> {
    inline: [T; N],
    len: u8,
    /// Boxed: one pointer inline while unused (the common case), not a whole empty Vec.
    #[allow(clippy::box_collection)]
    spill: Option<Box<Vec<T>>>,
}

impl<T: Copy + Default, const N: usize> Default for SmallVec<T, N> {
    fn default() -> Self {
        const { assert!(N > 0 && N < 256) };
        SmallVec {
            inline: [T::default(); N],
            len: 0,
            spill: None,
        }
    }
}

impl<T: Copy + Default, const N: usize> SmallVec<T, N> {
    pub fn len(&self) -> usize {
        self.len as usize + self.spill.as_ref().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, x: T) {
        if (self.len as usize) < N {
            self.inline[self.len as usize] = x;
            self.len += 1;
        } else {
            self.spill.get_or_insert_with(Default::default).push(x);
        }
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.inline[..self.len as usize]
            .iter()
            .chain(self.spill.iter().flat_map(|s| s.iter()))
    }

    /// Removes and returns the first element matching `pred`; the last element takes its
    /// place (`Vec::swap_remove`).
    #[inline]
    pub fn take_first(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        let i = self.iter().position(&mut pred)?;
        let last = match self.spill.as_mut().and_then(|s| s.pop()) {
            Some(x) => x,
            None => {
                self.len -= 1;
                self.inline[self.len as usize]
            }
        };
        let total = self.len();
        if i == total {
            // The match was the last element itself.
            return Some(last);
        }
        let slot = if i < N {
            &mut self.inline[i]
        } else {
            &mut self.spill.as_mut().expect("index beyond the inline part")[i - N]
        };
        Some(std::mem::replace(slot, last))
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.spill = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_vec_with_swap_remove() {
        let mut rng = crate::rng::Rng::derive(5, "small-vec-test");
        let mut v = SmallVec::<u64, 2>::default();
        let mut reference: Vec<u64> = Vec::new();
        for i in 0..20_000u64 {
            match rng.below(10) {
                0..=4 => {
                    v.push(i);
                    reference.push(i);
                }
                5..=8 => {
                    let want = if reference.is_empty() {
                        0
                    } else {
                        reference[rng.below(reference.len() as u64) as usize]
                    };
                    let expect = reference
                        .iter()
                        .position(|&x| x == want)
                        .map(|j| reference.swap_remove(j));
                    assert_eq!(v.take_first(|&x| x == want), expect);
                }
                _ => {
                    if rng.below(20) == 0 {
                        v.clear();
                        reference.clear();
                    }
                }
            }
            assert_eq!(v.iter().copied().collect::<Vec<_>>(), reference);
            assert_eq!(v.len(), reference.len());
            assert_eq!(v.is_empty(), reference.is_empty());
        }
    }
}
