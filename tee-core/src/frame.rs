//! Framing for byte streams: COBS with a CRC-32 trailer, frames separated by
//! `0x00`, so a noisy serial line or a confused peer costs one frame, never
//! the stream.
//!
//! ```text
//! frame   = 0x00 ‖ COBS(payload ‖ crc32(payload) as little-endian) ‖ 0x00
//! payload = header (6 bytes) ‖ body (postcard)
//! header  = version: u8 ‖ command: u8 ‖ request_id: u32 little-endian
//! ```
//! CRC-32 is the common IEEE one (`CRC_32_ISO_HDLC`: zlib, Ethernet, PNG),
//! from the `crc` crate. Every frame starts with a delimiter too, so it ends
//! whatever partial frame line noise left behind instead of merging with it;
//! an empty frame (two delimiters in a row) is ignored.

use postcard::ser_flavors::{Cobs, Flavor, Slice};
use serde::Serialize;

use crate::error::{Error, Result};

/// The CRC of a frame's payload.
pub use crate::primitives::CRC32;

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 6;
/// Bytes of the CRC trailer.
pub const CRC_LEN: usize = 4;
/// The frame delimiter.
pub const DELIMITER: u8 = 0x00;

/// Largest COBS-encoded frame for a payload of `payload_len` bytes,
/// delimiters excluded: what an [`Accumulator`] must hold.
#[must_use]
pub const fn encoded_len_bound(payload_len: usize) -> usize {
    cobs::max_encoding_length(payload_len + CRC_LEN)
}

/// Largest frame on the wire for a payload of `payload_len` bytes, both
/// delimiters included: what an output buffer must hold.
#[must_use]
pub const fn wire_len_bound(payload_len: usize) -> usize {
    encoded_len_bound(payload_len) + 2
}

/// The fixed header of every request and response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Protocol version of the sender.
    pub version: u8,
    /// Command code (a response repeats its request's).
    pub command: u8,
    /// Chosen by the client, repeated in the response.
    pub request_id: u32,
}

impl Header {
    /// The header's six bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let id = self.request_id.to_le_bytes();
        [self.version, self.command, id[0], id[1], id[2], id[3]]
    }

    /// Splits a payload into its header and body.
    pub fn split(payload: &[u8]) -> Result<(Header, &[u8])> {
        let (h, body) = payload.split_at_checked(HEADER_LEN).ok_or(Error::Truncated)?;
        let &[version, command, a, b, c, d] = h else { return Err(Error::Truncated) };
        Ok((Header { version, command, request_id: u32::from_le_bytes([a, b, c, d]) }, body))
    }
}

/// Why a frame could not be read. The stream resynchronises at the next
/// delimiter either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// More bytes than the receiver's buffer before a delimiter.
    TooLong,
    /// Not valid COBS.
    BadCobs,
    /// Shorter than a header and a CRC.
    TooShort,
    /// The CRC does not match.
    BadCrc,
}

/// Collects bytes from a stream into frames; takes input in chunks of any
/// size, one byte at a time included.
#[derive(Debug)]
pub struct Accumulator<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> Default for Accumulator<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Accumulator<N> {
    /// An empty accumulator holding frames of up to `N` encoded bytes
    /// (delimiter excluded).
    #[must_use]
    pub const fn new() -> Self {
        Accumulator { buf: [0; N], len: 0, overflowed: false }
    }

    /// Whether part of a frame is held (bytes since the last delimiter): a
    /// server times how long a frame takes from its first byte.
    #[must_use]
    pub fn in_frame(&self) -> bool {
        self.len > 0 || self.overflowed
    }

    /// Feeds `input` up to and including the first delimiter. Returns the
    /// frame that delimiter completed, if any (the CRC-checked payload, or
    /// why it was unreadable), and the input not consumed yet.
    pub fn feed<'a, 'i>(
        &'a mut self,
        input: &'i [u8],
    ) -> (Option<Result<&'a [u8], FrameError>>, &'i [u8]) {
        let Some(end) = input.iter().position(|&b| b == DELIMITER) else {
            self.append(input);
            return (None, &[]);
        };
        let (chunk, rest) = input.split_at(end);
        self.append(chunk);
        let rest = rest.get(1..).unwrap_or(&[]);
        let (len, overflowed) = (self.len, self.overflowed);
        self.len = 0;
        self.overflowed = false;
        if overflowed {
            return (Some(Err(FrameError::TooLong)), rest);
        }
        if len == 0 {
            return (None, rest);
        }
        (Some(Self::decode(self.buf.get_mut(..len).unwrap_or(&mut []))), rest)
    }

    fn append(&mut self, chunk: &[u8]) {
        if self.overflowed {
            return;
        }
        match self.buf.get_mut(self.len..self.len + chunk.len()) {
            Some(dst) => {
                dst.copy_from_slice(chunk);
                self.len += chunk.len();
            }
            None => self.overflowed = true,
        }
    }

    fn decode(frame: &mut [u8]) -> Result<&[u8], FrameError> {
        let n = cobs::decode_in_place(frame).map_err(|_| FrameError::BadCobs)?;
        let decoded = frame.get(..n).ok_or(FrameError::BadCobs)?;
        let split =
            n.checked_sub(CRC_LEN).filter(|&p| p >= HEADER_LEN).ok_or(FrameError::TooShort)?;
        let (payload, crc) = decoded.split_at(split);
        let crc = u32::from_le_bytes(crc.try_into().map_err(|_| FrameError::TooShort)?);
        if CRC32.checksum(payload) != crc {
            return Err(FrameError::BadCrc);
        }
        Ok(payload)
    }
}

/// A postcard output flavor that keeps the CRC of everything written and
/// COBS-encodes it into a slice, appending the CRC and the delimiter at the end.
struct CrcCobs<'a> {
    crc: crc::Digest<'static, u32>,
    cobs: Cobs<Slice<'a>>,
}

impl<'a> Flavor for CrcCobs<'a> {
    type Output = &'a mut [u8];

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.crc.update(data);
        self.cobs.try_extend(data)
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.crc.update(&[data]);
        self.cobs.try_push(data)
    }

    fn finalize(mut self) -> postcard::Result<&'a mut [u8]> {
        let crc = self.crc.finalize().to_le_bytes();
        self.cobs.try_extend(&crc)?;
        self.cobs.finalize()
    }
}

/// Writes the leading delimiter, then whatever `write` puts through a
/// CRC+COBS flavor (which appends the CRC and the closing delimiter).
fn frame_into(
    out: &mut [u8],
    write: impl FnOnce(CrcCobs<'_>) -> postcard::Result<usize>,
) -> Result<&mut [u8]> {
    let (lead, rest) = out.split_first_mut().ok_or(Error::BufferTooSmall)?;
    *lead = DELIMITER;
    let len = write(CrcCobs { crc: CRC32.digest(), cobs: Cobs::try_new(Slice::new(rest))? })?;
    out.get_mut(..1 + len).ok_or(Error::BufferTooSmall)
}

/// Writes one complete frame (`header`, then `body` in postcard) into `out`
/// and returns it, both delimiters included.
pub fn encode<'o, T: Serialize + ?Sized>(
    header: &Header,
    body: &T,
    out: &'o mut [u8],
) -> Result<&'o mut [u8]> {
    frame_into(out, |f| Ok(postcard::serialize_with_flavor(&(header.to_bytes(), body), f)?.len()))
}

/// Writes one frame whose body is `body` as is (already encoded), into
/// `out`, both delimiters included.
pub fn encode_raw<'o>(header: &Header, body: &[u8], out: &'o mut [u8]) -> Result<&'o mut [u8]> {
    frame_into(out, |mut f| {
        f.try_extend(&header.to_bytes())?;
        f.try_extend(body)?;
        Ok(f.finalize()?.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const H: Header = Header { version: 1, command: 9, request_id: 0x0403_0201 };

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = [0u8; 512];
        encode(&H, body, &mut out).unwrap().to_vec()
    }

    fn feed_all<const N: usize>(
        acc: &mut Accumulator<N>,
        mut input: &[u8],
    ) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut got = Vec::new();
        while !input.is_empty() {
            let (ev, rest) = acc.feed(input);
            if let Some(ev) = ev {
                got.push(ev.map(<[u8]>::to_vec));
            }
            input = rest;
        }
        got
    }

    #[test]
    fn round_trip_whole_and_byte_by_byte() {
        let f = frame(&[0, 1, 2, 0, 0]);
        assert_eq!((f[0], *f.last().unwrap()), (0, 0));
        assert!(!f[1..f.len() - 1].contains(&0), "COBS leaves no zero inside a frame");
        let mut acc = Accumulator::<64>::new();
        let got = feed_all(&mut acc, &f);
        let payload = got[0].clone().unwrap();
        let (h, body) = Header::split(&payload).unwrap();
        assert_eq!(h, H);
        // postcard encodes a byte slice with a length prefix.
        assert_eq!(body, [5, 0, 1, 2, 0, 0]);
        let mut one = Vec::new();
        for b in &f {
            one.extend(feed_all(&mut acc, core::slice::from_ref(b)));
        }
        assert_eq!(one, got);
    }

    #[test]
    fn errors_and_resync() {
        let good = frame(b"hello");
        let mut acc = Accumulator::<32>::new();
        // Garbage without a zero runs into the limit, then the good frame is read.
        let mut input = [0x41u8; 100].to_vec();
        input.push(0);
        input.extend_from_slice(&good);
        let got = feed_all(&mut acc, &input);
        assert_eq!(got[0], Err(FrameError::TooLong));
        assert!(got[1].is_ok());
        // A flipped bit fails the CRC (or COBS), never yields a payload.
        for i in 1..good.len() - 1 {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                for ev in feed_all(&mut acc, &bad) {
                    assert!(ev.is_err(), "flip at {i}/{bit} accepted");
                }
                // And the accumulator is clean for the next frame.
                let mut probe = vec![0u8];
                probe.extend_from_slice(&good);
                assert!(feed_all(&mut acc, &probe).iter().any(Result::is_ok));
            }
        }
        assert_eq!(feed_all(&mut acc, &[0, 0, 0]), vec![]);
        assert_eq!(feed_all(&mut acc, &[1, 0]), vec![Err(FrameError::TooShort)]);
        assert_eq!(feed_all(&mut acc, &[5, 1, 0]), vec![Err(FrameError::BadCobs)]);
    }

    #[test]
    fn frame_exactly_at_the_limit() {
        // 6 header + 21 body + 4 CRC = 31 bytes, plus one COBS byte.
        let f = frame(&[7u8; 20]);
        assert_eq!(f.len() - 2, 32);
        assert!(feed_all(&mut Accumulator::<32>::new(), &f)[0].is_ok());
        assert_eq!(feed_all(&mut Accumulator::<31>::new(), &f)[0], Err(FrameError::TooLong));
        assert_eq!(encode(&H, &[0u8; 64][..], &mut [0u8; 16]).err(), Some(Error::BufferTooSmall));
    }
}
