//! Canonical postcard encoding: every wire value has exactly one accepted
//! byte string.
//!
//! postcard itself is lenient (it accepts non-minimal varints such as
//! `80 00` for zero, and `from_bytes` ignores trailing bytes). So decoding
//! here is: postcard decode, reject trailing bytes, then measure the value's
//! canonical encoding, which is as long as the input only if it is the input
//! (see [`decode`]). The measure runs as a postcard output flavor, so it
//! needs no buffer.

use postcard::ser_flavors::Flavor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Decodes `bytes` as `T`, accepting only `T`'s canonical encoding.
///
/// Errors: [`Error::Truncated`], [`Error::TrailingBytes`],
/// [`Error::UnknownVariant`], [`Error::TooLong`], [`Error::InvalidUtf8`],
/// [`Error::Malformed`], and [`Error::NonCanonical`] where the bytes decode but
/// are not the encoding of the value they decode to.
pub fn decode<'de, T>(bytes: &'de [u8]) -> Result<T>
where
    T: Deserialize<'de> + Serialize,
{
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes);
    }
    // The value's canonical encoding is as long as the input exactly when
    // it is the input: postcard refuses every other malformed byte (a
    // varint's overflow bits, a bool or an Option tag above 1), so the one
    // leniency left is a varint longer than it needs to be, which makes the
    // input longer. Measuring (not comparing) shares the code that sizes
    // an action for the bounds check: on a microcontroller every
    // serializer instantiated per type costs flash.
    if encoded_len(&value)? != bytes.len() {
        return Err(Error::NonCanonical);
    }
    Ok(value)
}

/// Encodes `value` into `buf`, returning the written prefix.
pub fn encode<'b, T: Serialize + ?Sized>(value: &T, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
    Ok(postcard::to_slice(value, buf)?)
}

/// The length of `value`'s encoding.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize> {
    Ok(postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())?)
}

/// Whether `value` serializes to exactly `expected`.
pub fn encodes_to<T: Serialize + ?Sized>(value: &T, expected: &[u8]) -> bool {
    let cmp = Compare { rest: expected, equal: true };
    postcard::serialize_with_flavor(value, cmp).unwrap_or(false)
}

/// A postcard output flavor that compares instead of storing.
struct Compare<'a> {
    rest: &'a [u8],
    equal: bool,
}

impl Flavor for Compare<'_> {
    type Output = bool;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match self.rest.split_at_checked(data.len()) {
            Some((head, tail)) if head == data => self.rest = tail,
            _ => {
                self.equal = false;
                self.rest = &[];
            }
        }
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<bool> {
        Ok(self.equal && self.rest.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct T {
        a: u32,
        b: heapless::String<4>,
    }

    #[test]
    fn rejects_lenient_postcard_inputs() {
        let ok = [5u8, 2, b'h', b'i'];
        assert_eq!(decode::<T>(&ok).unwrap().a, 5);
        // Non-minimal varint for `a`: postcard alone accepts it.
        let long = [0x85u8, 0x00, 2, b'h', b'i'];
        assert!(postcard::from_bytes::<T>(&long).is_ok());
        assert_eq!(decode::<T>(&long), Err(Error::NonCanonical));
        // Non-minimal length prefix.
        assert_eq!(decode::<T>(&[5, 0x82, 0x00, b'h', b'i']), Err(Error::NonCanonical));
        assert_eq!(decode::<T>(&[5, 2, b'h', b'i', 0]), Err(Error::TrailingBytes));
        assert_eq!(decode::<T>(&[5, 2, b'h']), Err(Error::Truncated));
        assert_eq!(decode::<T>(&[5, 5, b'h', b'e', b'l', b'l', b'o']), Err(Error::TooLong));
        assert_eq!(decode::<T>(&[5, 2, 0xff, 0xfe]), Err(Error::InvalidUtf8));
        assert_eq!(decode::<T>(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), Err(Error::Malformed));
    }
}
