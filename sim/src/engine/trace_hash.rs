//! The rolling sha256 over the run's trace.
//!
//! The engine folds a 25-byte record into it for every event and action, millions of times a
//! run. Handing sha256 each record on its own pays its buffering for every record; records are
//! gathered here instead and hashed a few kilobytes at a time. The digest is over the same
//! byte stream, so it is the same.

use sha2::{Digest, Sha256};

/// Bytes gathered before they are hashed (a whole number of sha256 blocks).
const BATCH: usize = 64 * 64;

/// One trace record: a tag, the virtual time and two operands, little-endian.
pub const RECORD: usize = 25;

pub struct TraceHash {
    hasher: Sha256,
    buf: Box<[u8; BATCH]>,
    len: usize,
}

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash {
            hasher: Sha256::new(),
            buf: Box::new([0; BATCH]),
            len: 0,
        }
    }
}

impl TraceHash {
    #[inline]
    pub fn record(&mut self, tag: u8, now: u64, a: u64, b: u64) {
        if self.len + RECORD > BATCH {
            self.flush();
        }
        let rec = &mut self.buf[self.len..self.len + RECORD];
        rec[0] = tag;
        rec[1..9].copy_from_slice(&now.to_le_bytes());
        rec[9..17].copy_from_slice(&a.to_le_bytes());
        rec[17..25].copy_from_slice(&b.to_le_bytes());
        self.len += RECORD;
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buf[..self.len]);
        self.len = 0;
    }

    /// The digest of everything recorded so far, in hex.
    pub fn hex(&self) -> String {
        let mut h = self.hasher.clone();
        h.update(&self.buf[..self.len]);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_digest_as_hashing_each_record() {
        let mut batched = TraceHash::default();
        let mut plain = Sha256::new();
        for i in 0..1000u64 {
            let tag = (i % 23) as u8;
            batched.record(tag, i * 7, i, !i);
            let mut rec = [0u8; RECORD];
            rec[0] = tag;
            rec[1..9].copy_from_slice(&(i * 7).to_le_bytes());
            rec[9..17].copy_from_slice(&i.to_le_bytes());
            rec[17..25].copy_from_slice(&(!i).to_le_bytes());
            plain.update(rec);
            if i % 97 == 0 {
                let want: String = plain
                    .clone()
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(batched.hex(), want);
            }
        }
    }
}
