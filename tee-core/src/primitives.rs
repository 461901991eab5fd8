//! Ethereum's fixed-size value types, as plain byte arrays.
//!
//! Each has exactly one byte representation (big-endian, fixed width), so
//! they cannot break canonical encoding.

use core::fmt;

use sha3::{Digest, Keccak256};

/// The one CRC-32 of the project: the common IEEE one (`CRC_32_ISO_HDLC`:
/// zlib, Ethernet, PNG). Frames, the flash store and the state directory
/// use it to catch torn and corrupted bytes; it is no defence against a
/// writer who means harm.
pub const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// keccak-256 of `data`.
#[must_use]
pub fn keccak256(data: &[u8]) -> B256 {
    B256(Keccak256::digest(data).into())
}

/// A 20-byte Ethereum address. `Display` gives the EIP-55 checksummed form
/// (and so does JSON, [`crate::hex`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The zero address.
    pub const ZERO: Address = Address([0; 20]);

    /// The EIP-55 mixed-case hex form, `0x` included.
    #[must_use]
    pub fn to_checksum(&self) -> [u8; 42] {
        let mut out = [0u8; 42];
        let mut lower = [0u8; 40];
        for (pair, byte) in lower.chunks_exact_mut(2).zip(self.0) {
            if let [hi, lo] = pair {
                *hi = hex_digit(byte >> 4);
                *lo = hex_digit(byte & 0x0f);
            }
        }
        let hash = keccak256(&lower);
        out[0] = b'0';
        out[1] = b'x';
        for (i, (dst, &c)) in out.iter_mut().skip(2).zip(lower.iter()).enumerate() {
            let nibble =
                hash.0.get(i / 2).map_or(0, |h| if i % 2 == 0 { h >> 4 } else { h & 0x0f });
            *dst = if c.is_ascii_alphabetic() && nibble >= 8 { c.to_ascii_uppercase() } else { c };
        }
        out
    }
}

/// Lowercase hex digit of a nibble.
const fn hex_digit(n: u8) -> u8 {
    if n < 10 { b'0' + n } else { b'a' + n - 10 }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_checksum();
        // The checksum form is ASCII by construction.
        f.write_str(core::str::from_utf8(&s).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<[u8; 20]> for Address {
    fn from(b: [u8; 20]) -> Self {
        Address(b)
    }
}

/// A 32-byte value: digests, hashes, `bytes32` arguments.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct B256(pub [u8; 32]);

impl B256 {
    /// All zero bytes.
    pub const ZERO: B256 = B256([0; 32]);
}

impl fmt::Display for B256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(&self.0), f)
    }
}

impl fmt::Debug for B256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<[u8; 32]> for B256 {
    fn from(b: [u8; 32]) -> Self {
        B256(b)
    }
}

/// An unsigned 256-bit integer, big-endian. Byte order equals numeric order,
/// so the derived `Ord` is numeric.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct U256(pub [u8; 32]);

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256([0; 32]);

    /// From a `u64`.
    #[must_use]
    pub const fn from_u64(v: u64) -> Self {
        U256::from_u128(v as u128)
    }

    /// From a `u128`.
    #[must_use]
    pub const fn from_u128(v: u128) -> Self {
        let mut out = [0u8; 32];
        let (_, low) = out.split_at_mut(16);
        low.copy_from_slice(&v.to_be_bytes());
        U256(out)
    }

    /// `self + other`, or `None` past 2^256 - 1 (a test checks carries
    /// across every byte against `u128` arithmetic).
    #[must_use]
    pub fn checked_add(&self, other: &U256) -> Option<U256> {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for ((o, a), b) in out.iter_mut().zip(&self.0).zip(&other.0).rev() {
            let sum = u16::from(*a) + u16::from(*b) + carry;
            *o = (sum & 0xff) as u8;
            carry = sum >> 8;
        }
        (carry == 0).then_some(U256(out))
    }

    /// `self - other`, or zero if `other` is larger.
    #[must_use]
    pub fn saturating_sub(&self, other: &U256) -> U256 {
        if other >= self {
            return U256::ZERO;
        }
        let mut out = [0u8; 32];
        let mut borrow = 0i16;
        for ((o, a), b) in out.iter_mut().zip(&self.0).zip(&other.0).rev() {
            let diff = i16::from(*a) - i16::from(*b) - borrow;
            borrow = i16::from(diff < 0);
            *o = (diff + (borrow << 8)) as u8;
        }
        U256(out)
    }

    /// The value as `u64`, if it fits.
    #[must_use]
    pub fn to_u64(&self) -> Option<u64> {
        let (high, low) = self.0.split_at(24);
        if high.iter().any(|&b| b != 0) {
            return None;
        }
        Some(u64::from_be_bytes(low.try_into().ok()?))
    }

    /// The value as `u128`, if it fits.
    #[must_use]
    pub fn to_u128(&self) -> Option<u128> {
        let (high, low) = self.0.split_at(16);
        if high.iter().any(|&b| b != 0) {
            return None;
        }
        Some(u128::from_be_bytes(low.try_into().ok()?))
    }

    /// From decimal digits (no sign, no separators); `None` if empty, not
    /// decimal, or above 2^256 - 1.
    #[must_use]
    pub fn from_decimal(digits: &str) -> Option<U256> {
        if digits.is_empty() {
            return None;
        }
        let mut n = [0u8; 32];
        for c in digits.bytes() {
            let d = c.checked_sub(b'0').filter(|d| *d < 10)?;
            // n = n * 10 + d, byte by byte from the least significant.
            let mut carry = u16::from(d);
            for b in n.iter_mut().rev() {
                let v = u16::from(*b) * 10 + carry;
                *b = (v & 0xff) as u8;
                carry = v >> 8;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(U256(n))
    }

    /// Whether the value is zero.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }

    /// The big-endian bytes without leading zeros (empty for zero), as RLP
    /// encodes an integer.
    #[must_use]
    pub fn trimmed(&self) -> &[u8] {
        trim_leading_zeros(&self.0)
    }
}

/// `n` in decimal ASCII, written at the end of `buf`; returns the digits.
pub fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

/// `bytes` without its leading zero bytes.
pub(crate) fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or(&[])
}

impl fmt::Display for U256 {
    /// Decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Schoolbook division by 10; 2^256 has 78 decimal digits.
        let mut n = self.0;
        let mut digits = [0u8; 78];
        let mut len = 0;
        loop {
            let mut rem: u16 = 0;
            for b in n.iter_mut() {
                let acc = (rem << 8) | u16::from(*b);
                *b = (acc / 10) as u8;
                rem = acc % 10;
            }
            if let Some(d) = digits.get_mut(len) {
                *d = b'0' + rem as u8;
            }
            len += 1;
            if n.iter().all(|&b| b == 0) || len == digits.len() {
                break;
            }
        }
        let digits = digits.get_mut(..len).ok_or(fmt::Error)?;
        digits.reverse();
        f.write_str(core::str::from_utf8(digits).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<u64> for U256 {
    fn from(v: u64) -> Self {
        U256::from_u64(v)
    }
}

impl From<u128> for U256 {
    fn from(v: u128) -> Self {
        U256::from_u128(v)
    }
}

/// `N` bytes of any length (serde's own arrays stop at 32): on the wire
/// exactly `N` bytes, no length prefix; in JSON `0x`-hex ([`crate::hex`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FixedBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> fmt::Debug for FixedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(&self.0), f)
    }
}

impl<const N: usize> fmt::Display for FixedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(&self.0), f)
    }
}

#[cfg(feature = "defmt")]
impl<const N: usize> defmt::Format for FixedBytes<N> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[u8]:x}", self.0.as_slice())
    }
}

/// Formats bytes as `0x`-prefixed lowercase hex.
#[derive(Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::ToString;

    #[test]
    fn u256_add_and_sub_carry_across_every_byte() {
        let values = [0u128, 1, 0xff, 0x100, 0xffff_ffff, u128::MAX / 3, u128::MAX - 1, u128::MAX];
        for &a in &values {
            for &b in &values {
                let (x, y) = (U256::from_u128(a), U256::from_u128(b));
                let sum = x.checked_add(&y).unwrap();
                match a.checked_add(b) {
                    Some(s) => assert_eq!(sum, U256::from_u128(s), "{a} + {b}"),
                    // Past 2^128: the carry reaches the high half.
                    None => {
                        assert_eq!(sum.0[15], 1, "{a} + {b}");
                        assert_eq!(sum.to_u128(), None);
                        assert_eq!(&sum.0[16..], &a.wrapping_add(b).to_be_bytes());
                    }
                }
                let want = U256::from_u128(a.saturating_sub(b));
                assert_eq!(x.saturating_sub(&y), want, "{a} - {b}");
            }
        }
        let max = U256([0xff; 32]);
        assert_eq!(max.checked_add(&U256::from_u64(1)), None);
        assert_eq!(max.checked_add(&U256::ZERO), Some(max));
        assert_eq!(max.saturating_sub(&U256::from_u64(1)).0[31], 0xfe);
        assert_eq!(U256::from_u64(1).saturating_sub(&max), U256::ZERO);
        // A borrow through every byte: 2^255 - 1.
        let mut high = [0u8; 32];
        high[0] = 0x80;
        let mut want = [0xff; 32];
        want[0] = 0x7f;
        assert_eq!(U256(high).saturating_sub(&U256::from_u64(1)), U256(want));
    }

    #[test]
    fn eip55_checksum() {
        // Test vectors from EIP-55 itself.
        for s in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let mut a = [0u8; 20];
            for (i, b) in a.iter_mut().enumerate() {
                *b = u8::from_str_radix(&s[2 + 2 * i..4 + 2 * i], 16).unwrap();
            }
            assert_eq!(Address(a).to_string(), s);
        }
    }

    #[test]
    fn u256_decimal() {
        assert_eq!(U256::ZERO.to_string(), "0");
        assert_eq!(U256::from_u64(1234567890).to_string(), "1234567890");
        assert_eq!(U256::from_u128(u128::MAX).to_string(), u128::MAX.to_string());
        assert_eq!(
            U256([0xff; 32]).to_string(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        assert_eq!(U256::from_u64(7).to_u64(), Some(7));
        assert_eq!(U256([0xff; 32]).to_u128(), None);
        assert_eq!(U256::from_u64(0x0102).trimmed(), &[1, 2]);
        assert_eq!(format!("{}", Hex(&[0xab, 0x01])), "0xab01");
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(1_234_567, &mut b), b"1234567");
        assert_eq!(decimal(usize::MAX, &mut b), usize::MAX.to_string().as_bytes());
    }
}
