//! Byte sinks: the ABI and RLP encoders write once into a hasher, a counter
//! or a caller's buffer, so digests need no intermediate buffer at all.

use sha3::{Digest, Keccak256};

use crate::error::{Error, Result};

pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn put_byte(&mut self, b: u8) {
        self.put(&[b]);
    }

    /// `n` zero bytes.
    fn put_zeros(&mut self, mut n: usize) {
        const Z: [u8; 32] = [0; 32];
        while n > 0 {
            let k = n.min(Z.len());
            self.put(Z.get(..k).unwrap_or(&[]));
            n -= k;
        }
    }
}

impl Sink for Keccak256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Counts bytes; used by tests to check the arithmetic length functions.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Counter(pub usize);

#[cfg(test)]
impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Writes into a caller's buffer, remembering overflow instead of panicking.
pub(crate) struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> SliceWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { buf, pos: 0, overflow: false }
    }

    /// The written prefix, or [`Error::BufferTooSmall`].
    pub(crate) fn finish(self) -> Result<&'a mut [u8]> {
        if self.overflow {
            return Err(Error::BufferTooSmall);
        }
        self.buf.get_mut(..self.pos).ok_or(Error::BufferTooSmall)
    }
}

impl Sink for SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        let end = self.pos + bytes.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
            }
            None => self.overflow = true,
        }
    }
}
