//! RLP, as EIP-1559 transactions need it: a streaming encoder and a strict
//! decoder that accepts only canonical encodings.
//!
//! Strict means: a single byte below `0x80` is never wrapped in a string
//! header; lengths use the short form below 56 and the long form has no
//! leading zeros and is at least 56; integers have no leading zero bytes
//! (zero is the empty string); no bytes follow the outermost item.

use crate::error::{Error, Result};
use crate::primitives::{Address, U256, trim_leading_zeros};
use crate::sink::Sink;

/// Length of the header of a string or list whose payload is `len` bytes.
pub(crate) fn header_len(len: usize) -> usize {
    crate::limits::rlp_header(len)
}

fn put_header<S: Sink>(s: &mut S, short_base: u8, len: usize) {
    if len < 56 {
        s.put_byte(short_base + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let len_bytes = trim_leading_zeros(&be);
        s.put_byte(short_base + 55 + len_bytes.len() as u8);
        s.put(len_bytes);
    }
}

/// Header of a list with a `payload_len`-byte payload.
pub(crate) fn put_list_header<S: Sink>(s: &mut S, payload_len: usize) {
    put_header(s, 0xc0, payload_len);
}

/// Header of a string with a `len`-byte payload (the caller writes the payload).
pub(crate) fn put_string_header<S: Sink>(s: &mut S, len: usize) {
    put_header(s, 0x80, len);
}

/// Encoded length of the byte string `b`.
pub(crate) fn bytes_len(b: &[u8]) -> usize {
    match b {
        [x] if *x < 0x80 => 1,
        _ => header_len(b.len()) + b.len(),
    }
}

/// Encodes the byte string `b`.
pub(crate) fn put_bytes<S: Sink>(s: &mut S, b: &[u8]) {
    match b {
        [x] if *x < 0x80 => s.put_byte(*x),
        _ => {
            put_string_header(s, b.len());
            s.put(b);
        }
    }
}

/// Encoded length of an unsigned integer given as big-endian bytes.
pub(crate) fn uint_len(be: &[u8]) -> usize {
    bytes_len(trim_leading_zeros(be))
}

/// Encodes an unsigned integer given as big-endian bytes (any width).
pub(crate) fn put_uint<S: Sink>(s: &mut S, be: &[u8]) {
    put_bytes(s, trim_leading_zeros(be));
}

/// One decoded item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A byte string's payload.
    Bytes(&'a [u8]),
    /// A list's payload (its items, still encoded).
    List(&'a [u8]),
}

/// A strict RLP reader over a sequence of items.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads the items of `payload`.
    #[must_use]
    pub fn new(payload: &'a [u8]) -> Self {
        Reader { rest: payload }
    }

    /// Whether every item has been read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The bytes not read yet.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Takes `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(Error::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    /// A long-form length: `n` big-endian bytes, no leading zero, >= 56.
    fn long_len(&mut self, n: usize) -> Result<usize> {
        let bytes = self.take(n)?;
        if bytes.first() == Some(&0) {
            return Err(Error::NonCanonical);
        }
        if n > core::mem::size_of::<usize>() {
            return Err(Error::TooLong);
        }
        let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 56 {
            return Err(Error::NonCanonical);
        }
        Ok(len)
    }

    /// Reads the next item.
    pub fn item(&mut self) -> Result<Item<'a>> {
        let input = self.rest;
        let &[tag, ..] = input else {
            return Err(Error::Truncated);
        };
        self.rest = input.get(1..).unwrap_or(&[]);
        match tag {
            // A byte below 0x80 is its own encoding.
            0x00..=0x7f => Ok(Item::Bytes(input.get(..1).unwrap_or(&[]))),
            0x80..=0xb7 => {
                let len = usize::from(tag - 0x80);
                let b = self.take(len)?;
                if let [x] = b
                    && *x < 0x80
                {
                    return Err(Error::NonCanonical);
                }
                Ok(Item::Bytes(b))
            }
            0xb8..=0xbf => {
                let len = self.long_len(usize::from(tag - 0xb7))?;
                Ok(Item::Bytes(self.take(len)?))
            }
            0xc0..=0xf7 => Ok(Item::List(self.take(usize::from(tag - 0xc0))?)),
            0xf8..=0xff => {
                let len = self.long_len(usize::from(tag - 0xf7))?;
                Ok(Item::List(self.take(len)?))
            }
        }
    }

    /// The next item, which must be a byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        match self.item()? {
            Item::Bytes(b) => Ok(b),
            Item::List(_) => Err(Error::Malformed),
        }
    }

    /// The next item, which must be a list; returns a reader over its items.
    pub fn list(&mut self) -> Result<Reader<'a>> {
        match self.item()? {
            Item::List(p) => Ok(Reader::new(p)),
            Item::Bytes(_) => Err(Error::Malformed),
        }
    }

    /// An unsigned integer of at most `N` bytes, big-endian, right-aligned.
    fn uint<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes()?;
        if b.first() == Some(&0) {
            return Err(Error::NonCanonical);
        }
        let mut out = [0u8; N];
        let start = N.checked_sub(b.len()).ok_or(Error::TooLong)?;
        out.get_mut(start..).ok_or(Error::TooLong)?.copy_from_slice(b);
        Ok(out)
    }

    /// A `u64` integer.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.uint::<8>()?))
    }

    /// A `u128` integer.
    pub fn u128(&mut self) -> Result<u128> {
        Ok(u128::from_be_bytes(self.uint::<16>()?))
    }

    /// A 256-bit integer.
    pub fn u256(&mut self) -> Result<U256> {
        Ok(U256(self.uint::<32>()?))
    }

    /// A 20-byte address.
    pub fn address(&mut self) -> Result<Address> {
        let b = self.bytes()?;
        Ok(Address(b.try_into().map_err(|_| Error::Malformed)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SliceWriter;

    fn enc(f: impl FnOnce(&mut SliceWriter<'_>)) -> std::vec::Vec<u8> {
        let mut buf = [0u8; 2048];
        let mut w = SliceWriter::new(&mut buf);
        f(&mut w);
        w.finish().unwrap().to_vec()
    }

    #[test]
    fn encoder_known_answers() {
        // Examples from the Ethereum wiki's RLP page.
        assert_eq!(enc(|s| put_bytes(s, b"dog")), b"\x83dog");
        assert_eq!(enc(|s| put_bytes(s, b"")), [0x80]);
        assert_eq!(enc(|s| put_uint(s, &[0])), [0x80]);
        assert_eq!(enc(|s| put_uint(s, &15u64.to_be_bytes())), [0x0f]);
        assert_eq!(enc(|s| put_uint(s, &1024u64.to_be_bytes())), [0x82, 0x04, 0x00]);
        let lorem = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit";
        let mut expected = std::vec![0xb8, 0x38];
        expected.extend_from_slice(lorem);
        assert_eq!(enc(|s| put_bytes(s, lorem)), expected);
        assert_eq!(bytes_len(lorem), expected.len());
        assert_eq!(enc(|s| put_list_header(s, 0)), [0xc0]);
    }

    #[test]
    fn decoder_rejects_non_canonical() {
        // Single byte wrapped in a header.
        assert_eq!(Reader::new(&[0x81, 0x05]).bytes(), Err(Error::NonCanonical));
        assert_eq!(Reader::new(&[0x81, 0x80]).bytes(), Ok(&[0x80][..]));
        // Long form for a short payload.
        let mut v = std::vec![0xb8, 0x02, 1, 2];
        assert_eq!(Reader::new(&v).bytes(), Err(Error::NonCanonical));
        // Leading zero in the length of the length.
        v = std::vec![0xb9, 0x00, 0x38];
        v.extend_from_slice(&[1; 56]);
        assert_eq!(Reader::new(&v).bytes(), Err(Error::NonCanonical));
        // Leading zero in an integer.
        assert_eq!(Reader::new(&[0x82, 0x00, 0x01]).u64(), Err(Error::NonCanonical));
        // Integer too wide.
        assert_eq!(Reader::new(&[0x89, 1, 0, 0, 0, 0, 0, 0, 0, 0]).u64(), Err(Error::TooLong));
        // Truncated.
        assert_eq!(Reader::new(&[0x83, b'd']).bytes(), Err(Error::Truncated));
        assert_eq!(Reader::new(&[]).bytes(), Err(Error::Truncated));
        // Huge declared lengths do not overflow.
        assert_eq!(
            Reader::new(&[0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).bytes(),
            Err(Error::Truncated)
        );
        // Shape errors.
        assert_eq!(Reader::new(&[0xc0]).bytes(), Err(Error::Malformed));
        assert!(matches!(Reader::new(&[0x80]).list(), Err(Error::Malformed)));
        assert_eq!(Reader::new(&[0x05]).u64(), Ok(5));
        assert_eq!(Reader::new(&[0x80]).u64(), Ok(0));
    }
}
