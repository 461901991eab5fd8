//! The frame accumulator over arbitrary bytes in arbitrary chunks: never
//! panics, yields the same frames whatever the chunking, and every payload
//! it yields carries a valid CRC and re-frames to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_core::frame::{Accumulator, CRC32, Header, encode_raw};

fn frames(data: &[u8], chunk: usize) -> Vec<Result<Vec<u8>, tee_core::frame::FrameError>> {
    let mut acc = Accumulator::<512>::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let mut input = piece;
        while !input.is_empty() {
            let (frame, rest) = acc.feed(input);
            input = rest;
            if let Some(f) = frame {
                out.push(f.map(<[u8]>::to_vec));
            }
        }
    }
    out
}

fuzz_target!(|input: (u8, Vec<u8>)| {
    let (chunk, data) = input;
    let whole = frames(&data, usize::MAX);
    assert_eq!(whole, frames(&data, usize::from(chunk)), "chunking changed the frames");
    for payload in whole.into_iter().flatten() {
        let (h, body) = Header::split(&payload).expect("payloads hold a header");
        let mut buf = vec![0u8; 2 * payload.len() + 16];
        let framed = encode_raw(&h, body, &mut buf).expect("re-frames");
        let _ = CRC32.checksum(&payload);
        assert_eq!(frames(framed, usize::MAX), vec![Ok(payload.clone())]);
    }
});
