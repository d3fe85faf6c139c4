//! Length-prefixed framing with incremental decoding.
//!
//! The decoder accepts bytes split at any boundary. The declared length is checked against
//! `max_frame` as soon as the 4 header bytes are in, before any payload is buffered, so a
//! 4 GiB length prefix costs nothing but a disconnect.

use alloc::vec::Vec;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// A frame the decoder cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The peer declared a frame larger than we accept.
    TooLarge {
        /// The payload length the prefix declared, in bytes.
        declared: u32,
        /// The decoder's limit, in bytes (the machine's is `Config::max_frame`).
        max: u32,
    },
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
    /// An empty decoder refusing payloads over `max_frame` bytes.
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
        let Some((payload, _)) = split_frame(&self.buf[self.start..], self.max_frame)? else {
            return Ok(None);
        };
        let begin = self.start + HEADER_LEN;
        self.start = begin + payload.len();
        Ok(Some(&self.buf[begin..self.start]))
    }

    /// Splits the first whole frame off `input`, which continues whatever this decoder holds
    /// and holds nothing itself: `(payload, rest)`. The machine reads frames straight from
    /// the bytes it is handed when nothing is buffered (the usual case: reads end on frame
    /// boundaries) and copies only a trailing partial frame in, with [`push`](Self::push).
    /// Same answers, limit check included, as pushing `input` and calling
    /// [`next_frame`](Self::next_frame).
    pub(crate) fn split<'d>(&self, input: &'d [u8]) -> Result<Option<Split<'d>>, FrameError> {
        debug_assert_eq!(self.buffered(), 0);
        split_frame(input, self.max_frame)
    }
}

/// A whole frame's payload, and the bytes after it.
pub(crate) type Split<'d> = (&'d [u8], &'d [u8]);

/// The first whole frame in `avail`: `(payload, rest)`.
#[inline]
fn split_frame(avail: &[u8], max_frame: u32) -> Result<Option<Split<'_>>, FrameError> {
    let Some(header) = avail.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let declared = u32::from_le_bytes(*header);
    if declared > max_frame {
        return Err(FrameError::TooLarge {
            declared,
            max: max_frame,
        });
    }
    let body = &avail[HEADER_LEN..];
    if body.len() < declared as usize {
        return Ok(None);
    }
    Ok(Some(body.split_at(declared as usize)))
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

    /// `split` on the bytes an empty decoder would be handed gives the frames and the limit
    /// error `push` + `next_frame` give, at every cut of a stream.
    #[test]
    fn split_agrees_with_push_and_next_frame() {
        let mut wire = Vec::new();
        encode_frame(b"hello", &mut wire);
        encode_frame(b"", &mut wire);
        encode_frame(&[7; 40], &mut wire);
        wire.extend_from_slice(&100u32.to_le_bytes()); // over the limit below
        wire.extend_from_slice(&[1; 8]);
        for cut in 0..=wire.len() {
            let input = &wire[..cut];
            let mut d = FrameDecoder::new(64);
            d.push(input);
            let mut want = Vec::new();
            let want_err = loop {
                match d.next_frame() {
                    Ok(Some(f)) => want.push(f.to_vec()),
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            let d = FrameDecoder::new(64);
            let mut got = Vec::new();
            let mut rest = input;
            let got_err = loop {
                match d.split(rest) {
                    Ok(Some((f, tail))) => {
                        got.push(f.to_vec());
                        rest = tail;
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            assert_eq!((got, got_err), (want, want_err), "cut at {cut}");
            if got_err.is_none() {
                assert_eq!(rest.len(), d_buffered_after(input));
            }
        }

        fn d_buffered_after(input: &[u8]) -> usize {
            let mut d = FrameDecoder::new(64);
            d.push(input);
            while let Ok(Some(_)) = d.next_frame() {}
            d.buffered()
        }
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
