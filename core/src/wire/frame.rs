//! Length-prefixed framing with incremental decoding.
//!
//! The decoder accepts bytes split at any boundary. The declared length is checked against
//! `max_frame` as soon as the 4 header bytes are in, before any payload is buffered, so a
//! 4 GiB length prefix costs nothing but a disconnect.

use alloc::vec::Vec;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The peer declared a frame larger than we accept.
    TooLarge { declared: u32, max: u32 },
}

/// Appends one frame carrying `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Incremental frame decoder for one connection.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`; compacted lazily so consuming many small frames
    /// from one large read is linear, not quadratic.
    start: usize,
    max_frame: u32,
}

impl FrameDecoder {
    pub fn new(max_frame: u32) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max_frame,
        }
    }

    /// Appends received bytes. Call [`next_frame`](Self::next_frame) until it returns `Ok(None)`.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete payload, `Ok(None)` if more bytes are needed, or an error if the
    /// peer declared an oversized frame (the decoder is then useless; drop the connection).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let declared = u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]);
        if declared > self.max_frame {
            return Err(FrameError::TooLarge {
                declared,
                max: self.max_frame,
            });
        }
        let total = HEADER_LEN + declared as usize;
        if avail.len() < total {
            return Ok(None);
        }
        let begin = self.start + HEADER_LEN;
        self.start += total;
        Ok(Some(&self.buf[begin..begin + declared as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn a_4gib_length_prefix_is_refused_from_the_header_alone() {
        let mut d = FrameDecoder::new(8 << 20);
        d.push(&u32::MAX.to_le_bytes());
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge {
                declared: u32::MAX,
                max: 8 << 20
            })
        );
        // Nothing beyond the 4 header bytes was ever buffered.
        assert_eq!(d.buffered(), 4);
    }

    #[test]
    fn frames_split_byte_by_byte_reassemble() {
        let mut wire = Vec::new();
        encode_frame(b"hello", &mut wire);
        encode_frame(b"", &mut wire);
        encode_frame(b"world!", &mut wire);
        let mut d = FrameDecoder::new(1024);
        let mut got: Vec<Vec<u8>> = vec![];
        for b in &wire {
            d.push(core::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got, vec![b"hello".to_vec(), vec![], b"world!".to_vec()]);
        assert_eq!(d.buffered(), 0);
    }
}
