//! Solidity ABI words, shared by the calldata encoder
//! ([`crate::action::calldata`]) and the EIP-712 hashes ([`crate::eip712`]).

/// 32-byte ABI words of static values.
pub mod word {
    use crate::primitives::{Address, U256};

    /// `address`: left-padded with zeros.
    #[must_use]
    pub fn address(a: &Address) -> [u8; 32] {
        let mut w = [0u8; 32];
        if let Some(dst) = w.get_mut(12..) {
            dst.copy_from_slice(&a.0);
        }
        w
    }

    /// `uint<N>` of a value that fits in 64 bits.
    #[must_use]
    pub const fn uint(v: u64) -> [u8; 32] {
        U256::from_u64(v).0
    }

    /// `int128`, sign-extended to 256 bits.
    #[must_use]
    pub fn int(v: i128) -> [u8; 32] {
        let mut w = if v < 0 { [0xff; 32] } else { [0; 32] };
        if let Some(dst) = w.get_mut(16..) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
        w
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn negative_int128_is_sign_extended() {
            let w = super::int(-2);
            assert_eq!(w[..31], [0xff; 31]);
            assert_eq!(w[31], 0xfe);
            assert_eq!(super::int(5), super::uint(5));
        }
    }
}
