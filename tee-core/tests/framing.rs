//! The framing under garbage: random bytes, truncated frames, bit flips,
//! one-byte chunks, frames at and over the size limit. The device never
//! panics, keeps every response well-formed, and answers a good frame after
//! any garbage correctly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use proptest::prelude::*;
use tee_core::client::{decode_response, encode_request};
use tee_core::device::Device;
use tee_core::frame::{self, FrameError, Header};
use tee_core::protocol::*;
use tee_core::{ActionKind, codec};
use tee_testkit::sample;
use tee_testkit::{MemBackend, Pair};

fn pair() -> Pair<MemBackend> {
    Pair::new(Device::open(MemBackend::new(1), tee_testkit::config()).unwrap())
}

fn echo_frame(id: u32, data: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_REQUEST_WIRE];
    let cmd = Echo { data: tee_core::heapless::Vec::from_slice(data).unwrap() };
    encode_request(id, &cmd, &mut buf).unwrap().to_vec()
}

/// The response to request `id` among `responses` echoes `data`.
fn answered(responses: &[Vec<u8>], id: u32, data: &[u8]) -> bool {
    responses.iter().any(|p| {
        let Ok((h, Ok(echo))) = decode_response::<Echo>(p) else { return false };
        h.request_id == id && echo.data.as_slice() == data
    })
}

fn error_of(payload: &[u8]) -> Option<(Header, DeviceError)> {
    let (h, body) = Header::split(payload).ok()?;
    Some((h, codec::decode::<Result<(), DeviceError>>(body).ok()?.err()?))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any garbage, then a delimiter and a good frame: the good frame is answered.
    #[test]
    fn good_frame_after_garbage(garbage in proptest::collection::vec(any::<u8>(), 0..3000), chunk in 1usize..80) {
        let mut p = pair();
        p.chunk = chunk;
        let mut input = garbage;
        input.push(0);
        input.extend(echo_frame(42, b"after garbage"));
        let responses = p.send_raw(&input);
        prop_assert!(answered(&responses, 42, b"after garbage"));
        // Everything else is a typed error, never a success for another id.
        for r in &responses {
            let (h, _) = Header::split(r).unwrap();
            if h.request_id != 42 {
                prop_assert!(error_of(r).is_some(), "garbage produced a non-error response");
            }
        }
    }

    /// A truncated frame is an error; the next frame is answered.
    #[test]
    fn truncated_frames(cut in 1usize..40) {
        let mut p = pair();
        let f = echo_frame(7, b"0123456789");
        let cut = cut.min(f.len() - 2);
        let mut input = f[..cut].to_vec();
        input.push(0);
        input.extend(echo_frame(8, b"next"));
        let responses = p.send_raw(&input);
        prop_assert!(answered(&responses, 8, b"next"));
        prop_assert!(!answered(&responses, 7, b"0123456789"));
    }
}

#[test]
fn every_bit_flip_is_caught() {
    let mut p = pair();
    let f = echo_frame(9, b"flip me");
    for i in 1..f.len() - 1 {
        for bit in 0..8 {
            let mut bad = f.clone();
            bad[i] ^= 1 << bit;
            let responses = p.send_raw(&bad);
            assert!(!answered(&responses, 9, b"flip me"), "flip {i}/{bit} passed as the original");
            for r in &responses {
                assert!(error_of(r).is_some(), "flip {i}/{bit} produced a success");
            }
            // Resynchronise: a flip of the delimiter leaves a partial frame.
            p.send_raw(&[0]);
            let ok = p.send_raw(&echo_frame(10, b"ok"));
            assert!(answered(&ok, 10, b"ok"), "not answered after flip {i}/{bit}");
        }
    }
}

#[test]
fn one_byte_at_a_time_session() {
    let mut p = pair();
    p.chunk = 1;
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    let info = p.call(&DeviceInfo).unwrap();
    assert_eq!(info.slots as usize, NUM_SLOTS);
    let r = p.call(&Sign { slot: 0, sequence: 1, action: sample::action(ActionKind::Register) });
    assert_eq!(r, Err(DeviceError::Denied(PolicyViolation::KindNotAllowed)));
}

#[test]
fn frames_at_and_over_the_limit() {
    // Find a body whose frame is exactly MAX_REQUEST_FRAME encoded bytes.
    let h = Header { version: PROTOCOL_VERSION, command: Echo::CODE, request_id: 3 };
    let mut out = vec![0u8; MAX_REQUEST_FRAME + 64];
    let (exact, over) = (1..MAX_REQUEST_FRAME)
        .find_map(|len| {
            let body = vec![0x11u8; len];
            let n = frame::encode_raw(&h, &body, &mut out).unwrap().len() - 2;
            (n == MAX_REQUEST_FRAME).then(|| {
                let exact = frame::encode_raw(&h, &body, &mut out).unwrap().to_vec();
                let over =
                    frame::encode_raw(&h, &vec![0x11u8; len + 1], &mut out).unwrap().to_vec();
                (exact, over)
            })
        })
        .expect("some body length hits the limit exactly");
    assert_eq!(exact.len() - 2, MAX_REQUEST_FRAME);
    assert!(over.len() - 2 > MAX_REQUEST_FRAME);
    let mut p = pair();
    // At the limit: read, and answered for its id. (The body is 0x11 bytes:
    // a 17-byte Echo followed by trailing bytes.)
    let r = p.send_raw(&exact);
    let (rh, e) = error_of(&r[0]).unwrap();
    assert_eq!((rh.request_id, e), (3, DeviceError::Malformed(tee_core::Error::TrailingBytes)));
    // Over: too long, no request id readable.
    let r = p.send_raw(&over);
    let (rh, e) = error_of(&r[0]).unwrap();
    assert_eq!((rh.request_id, e), (0, DeviceError::Frame(FrameError::TooLong)));
    // And the stream carries on.
    assert!(answered(&p.send_raw(&echo_frame(4, b"still here")), 4, b"still here"));
}

/// A duplex pipe: reads come from `input` (a few bytes at a time, as a UART
/// delivers them), writes go to `output`.
struct Pipe {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

impl embedded_io::ErrorType for Pipe {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(7).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn serve_loop_until_end_of_stream() {
    let mut input = Vec::new();
    input.extend(echo_frame(1, b"one"));
    input.extend([0x55; 10]); // noise
    input.extend(echo_frame(2, b"two"));
    input.extend(&echo_frame(3, b"cut")[..5]); // a partial frame at the end
    let mut pipe = Pipe { input, pos: 0, output: Vec::new() };
    let mut device: Device<_> = Device::open(MemBackend::new(1), tee_testkit::config()).unwrap();
    let mut rx = tee_core::frame::Accumulator::<MAX_REQUEST_FRAME>::new();
    let mut tx = vec![0u8; MAX_RESPONSE_WIRE];
    tee_core::serve::serve(&mut pipe, &mut device, &mut rx, &mut tx).unwrap();
    // Read back what the device wrote.
    let mut host = tee_core::frame::Accumulator::<MAX_RESPONSE_FRAME>::new();
    let mut responses = Vec::new();
    let mut rest = &pipe.output[..];
    while !rest.is_empty() {
        let (f, r) = host.feed(rest);
        rest = r;
        if let Some(f) = f {
            responses.push(f.unwrap().to_vec());
        }
    }
    assert!(answered(&responses, 1, b"one"));
    assert!(answered(&responses, 2, b"two"));
    // The noise earned one frame error; the partial frame, nothing yet.
    assert_eq!(responses.len(), 3);
    assert_eq!(error_of(&responses[1]).unwrap().1, DeviceError::Frame(FrameError::BadCobs));
}
