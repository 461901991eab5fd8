//! The text forms of the fixed-size types, for people and other languages:
//! in a human-readable format (JSON, TOML) an [`Address`] is its EIP-55
//! checksummed `0x` form, a [`B256`], a [`FixedBytes`] and a [`Signature`]
//! (`r ‖ s ‖ v`, `v` 27 or 28) are `0x`-hex, a [`U256`] is a decimal string.
//! Reading accepts hex with or without `0x`, either case (a mixed-case
//! address must carry a valid checksum), and a `U256` as a decimal or
//! `0x`-hex string or a JSON integer.
//!
//! In a binary format (postcard: the wire and the stored records) each type
//! is exactly the bytes its derived implementation would write, so the text
//! forms cost the wire nothing.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::primitives::{Address, B256, FixedBytes, Hex, U256};
use crate::signer::Signature;

/// Reads hex digits (`0x` optional, either case) into exactly `N` bytes.
pub fn decode<const N: usize>(text: &str) -> Result<[u8; N]> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    if digits.len() != 2 * N {
        return Err(Error::Malformed);
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.as_bytes().chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (pair.first().and_then(nibble), pair.get(1).and_then(nibble))
        else {
            return Err(Error::Malformed);
        };
        *byte = (hi << 4) | lo;
    }
    Ok(out)
}

fn nibble(c: &u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl core::str::FromStr for Address {
    type Err = Error;
    /// 40 hex digits (`0x` optional); mixed case must be the EIP-55
    /// checksum.
    fn from_str(s: &str) -> Result<Address> {
        let a = Address(decode(s)?);
        let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
        let mixed = digits.bytes().any(|c| c.is_ascii_lowercase())
            && digits.bytes().any(|c| c.is_ascii_uppercase());
        if mixed && a.to_checksum().get(2..) != Some(digits.as_bytes()) {
            return Err(Error::Malformed);
        }
        Ok(a)
    }
}

impl core::str::FromStr for B256 {
    type Err = Error;
    fn from_str(s: &str) -> Result<B256> {
        decode(s).map(B256)
    }
}

impl<const N: usize> core::str::FromStr for FixedBytes<N> {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        decode(s).map(FixedBytes)
    }
}

impl core::str::FromStr for U256 {
    type Err = Error;
    /// Decimal, or `0x`-hex of at most 32 bytes.
    fn from_str(s: &str) -> Result<U256> {
        if let Some(digits) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            if digits.is_empty() || digits.len() > 64 {
                return Err(Error::Malformed);
            }
            let mut padded = [b'0'; 64];
            padded
                .get_mut(64 - digits.len()..)
                .ok_or(Error::Malformed)?
                .copy_from_slice(digits.as_bytes());
            let padded = core::str::from_utf8(&padded).map_err(|_| Error::Malformed)?;
            return decode(padded).map(U256);
        }
        U256::from_decimal(s).ok_or(Error::Malformed)
    }
}

impl core::str::FromStr for Signature {
    type Err = Error;
    /// `r ‖ s ‖ v` in hex, `v` in {0, 1, 27, 28}; range and low-S checked.
    fn from_str(s: &str) -> Result<Signature> {
        Signature::from_bytes(&decode(s)?)
    }
}

/// Reads a value from its text form (any `FromStr` of this module).
struct TextVisitor<T>(PhantomData<T>, &'static str);

impl<T: core::str::FromStr> Visitor<'_> for TextVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> core::result::Result<T, E> {
        v.parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// `U256` also takes a JSON integer.
struct U256Visitor;

impl Visitor<'_> for U256Visitor {
    type Value = U256;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 256-bit unsigned integer (decimal or 0x-hex string, or an integer)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> core::result::Result<U256, E> {
        v.parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> core::result::Result<U256, E> {
        Ok(U256::from_u64(v))
    }
}

/// Serialize and Deserialize of a newtype over a byte array: text when the
/// format is human-readable, the derived form otherwise.
macro_rules! text_or_bytes {
    ($t:ident, $n:literal, $expecting:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    s.serialize_newtype_struct(stringify!($t), &self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
                if d.is_human_readable() {
                    d.deserialize_str(TextVisitor(PhantomData, $expecting))
                } else {
                    struct Bytes;
                    impl<'de> Visitor<'de> for Bytes {
                        type Value = $t;
                        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                            f.write_str(concat!(stringify!($n), " bytes"))
                        }
                        fn visit_newtype_struct<D: Deserializer<'de>>(
                            self,
                            d: D,
                        ) -> core::result::Result<$t, D::Error> {
                            <[u8; $n]>::deserialize(d).map($t)
                        }
                    }
                    d.deserialize_newtype_struct(stringify!($t), Bytes)
                }
            }
        }
    };
}

text_or_bytes!(Address, 20, "an address: 0x and 40 hex digits");
text_or_bytes!(B256, 32, "32 bytes: 0x and 64 hex digits");

impl Serialize for U256 {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_newtype_struct("U256", &self.0)
        }
    }
}

impl<'de> Deserialize<'de> for U256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(U256Visitor)
        } else {
            struct Bytes;
            impl<'de> Visitor<'de> for Bytes {
                type Value = U256;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("32 bytes")
                }
                fn visit_newtype_struct<D: Deserializer<'de>>(
                    self,
                    d: D,
                ) -> core::result::Result<U256, D::Error> {
                    <[u8; 32]>::deserialize(d).map(U256)
                }
            }
            d.deserialize_newtype_struct("U256", Bytes)
        }
    }
}

impl<const N: usize> Serialize for FixedBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        if s.is_human_readable() {
            return s.collect_str(&Hex(&self.0));
        }
        let mut t = s.serialize_tuple(N)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de, const N: usize> Deserialize<'de> for FixedBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        struct Tuple<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for Tuple<N> {
            type Value = FixedBytes<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> core::result::Result<Self::Value, A::Error> {
                let mut out = [0u8; N];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(FixedBytes(out))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(TextVisitor(PhantomData, "0x-hex bytes of the expected length"))
        } else {
            d.deserialize_tuple(N, Tuple::<N>)
        }
    }
}

/// The wire form of a signature, as derived.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Signature")]
struct SignatureFields {
    r: [u8; 32],
    s: [u8; 32],
    y_parity: bool,
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            SignatureFields { r: self.r, s: self.s, y_parity: self.y_parity }.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(TextVisitor(PhantomData, "a signature: 0x and r ‖ s ‖ v in hex"))
        } else {
            let f = SignatureFields::deserialize(d)?;
            Ok(Signature { r: f.r, s: f.s, y_parity: f.y_parity })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn parses_and_refuses() {
        let a: Address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse().unwrap();
        assert_eq!(a.0[0], 0x5a);
        assert_eq!("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse::<Address>(), Ok(a));
        assert_eq!("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse::<Address>(), Ok(a));
        assert_eq!("0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED".parse::<Address>(), Ok(a));
        // One letter's case flipped: a bad checksum.
        assert!("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD".parse::<Address>().is_err());
        assert!("0x5aAeb6".parse::<Address>().is_err());
        assert!("0xzz".parse::<B256>().is_err());
        assert_eq!("1234".parse::<U256>(), Ok(U256::from_u64(1234)));
        assert_eq!("0x4d2".parse::<U256>(), Ok(U256::from_u64(1234)));
        assert!("0x".parse::<U256>().is_err());
        assert!("12a".parse::<U256>().is_err());
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(max.parse::<U256>(), Ok(U256([0xff; 32])));
        assert!(
            "115792089237316195423570985008687907853269984665640564039457584007913129639936"
                .parse::<U256>()
                .is_err()
        );
    }

    /// The binary form is the derived one: the same bytes as the plain
    /// arrays.
    #[test]
    fn binary_form_is_the_bytes() {
        let mut buf = [0u8; 128];
        let a = Address([7; 20]);
        assert_eq!(codec::encode(&a, &mut buf).unwrap(), &[7u8; 20][..]);
        let enc = codec::encode(&U256::from_u64(5), &mut buf).unwrap().to_vec();
        assert_eq!(enc.len(), 32);
        assert_eq!(codec::decode::<U256>(&enc), Ok(U256::from_u64(5)));
        let sig = Signature { r: [1; 32], s: [2; 32], y_parity: true };
        let enc = codec::encode(&sig, &mut buf).unwrap().to_vec();
        assert_eq!(enc.len(), 65);
        assert_eq!(enc[64], 1);
        assert_eq!(codec::decode::<Signature>(&enc), Ok(sig));
        let fb = FixedBytes([9u8; 33]);
        assert_eq!(codec::encode(&fb, &mut buf).unwrap(), &[9u8; 33][..]);
    }
}
