//! Arbitrary bytes, in arbitrary chunks, into `FrameDecoder` and every frame it yields into
//! `Message::decode`. Must never panic; a frame is never larger than `max_frame`; once the
//! decoder reports an oversized frame it keeps doing so; whatever decodes re-encodes to a
//! payload that decodes to the same message.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use timed_core::wire::{Decoded, FrameDecoder, Message};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Picks `max_frame`: tiny, the 1 KiB minimum, the 8 MiB default, or unbounded.
    max_frame: u8,
    /// Chunk lengths (mod 64, plus one) used to cut `bytes`, cycled.
    chunks: Vec<u8>,
    /// Whether to drain frames after a chunk (cycled); always drained at the end.
    drain: Vec<bool>,
    bytes: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let max_frame = match input.max_frame % 4 {
        0 => u32::from(input.max_frame),
        1 => 1024,
        2 => 8 << 20,
        _ => u32::MAX,
    };
    let mut d = FrameDecoder::new(max_frame);
    let mut failed = None;
    let mut rest = &input.bytes[..];
    let mut i = 0usize;
    while !rest.is_empty() {
        let len = input
            .chunks
            .get(i % input.chunks.len().max(1))
            .map_or(rest.len(), |c| usize::from(c % 64) + 1);
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        d.push(chunk);
        let drain = rest.is_empty()
            || input
                .drain
                .get(i % input.drain.len().max(1))
                .copied()
                .unwrap_or(true);
        i += 1;
        if !drain {
            continue;
        }
        loop {
            match d.next_frame() {
                Ok(Some(payload)) => {
                    assert!(failed.is_none(), "a frame after an oversized-frame error");
                    assert!(payload.len() <= max_frame as usize);
                    if let Ok(Decoded::Known(m)) = Message::decode(payload) {
                        let again = m.to_frame();
                        assert_eq!(Message::decode(&again[4..]), Ok(Decoded::Known(m)));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if let Some(prev) = failed {
                        assert_eq!(prev, e);
                    }
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    // Whole input also decoded as one payload.
    let _ = Message::decode(&input.bytes);
});
