//! Binding a TDX quote to a signing key: what `report_data` commits to.
//!
//! ```text
//! report_data (64 bytes) = address     (20)   the signer's Ethereum address, in clear
//!                        ‖ tag         (10)   "erc8004tee"
//!                        ‖ version     (1)    0x01
//!                        ‖ purpose     (1)    0x01 challenge, 0x02 action digest, 0x03 device identity
//!                        ‖ commitment  (32)   keccak256(tag ‖ version ‖ purpose ‖ address ‖ value)
//! ```
//! The address comes first so the on-chain verifiers that exist (which read
//! the agent address from the first 20 bytes) accept it as is; the rest
//! commits to the verifier's fresh challenge (or to one action's digest)
//! under a domain tag, so a quote made for one purpose, key or challenge
//! verifies for no other. keccak256 keeps the check cheap on chain.

use sha3::{Digest, Keccak256};

use crate::primitives::{Address, B256};

/// The domain tag.
pub const TAG: &[u8; 10] = b"erc8004tee";
/// The layout version.
pub const VERSION: u8 = 1;

/// What the bound value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Purpose {
    /// A verifier-chosen challenge (freshness).
    Challenge = 1,
    /// The digest of one signed action (a per-action attestation).
    ActionDigest = 2,
    /// A verifier-chosen challenge, bound to the device's identity key (the
    /// key that signs its admin statements) rather than a slot's.
    Device = 3,
}

/// Why `report_data` does not bind what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mismatch {
    /// Not this binding scheme (wrong tag).
    NotABinding,
    /// A layout version this code does not know.
    UnknownVersion(u8),
    /// A different purpose than expected.
    WrongPurpose,
    /// Bound to another address.
    WrongAddress,
    /// Bound to another challenge or digest (or the commitment is corrupt).
    WrongValue,
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Mismatch::NotABinding => f.write_str("not an erc8004tee binding (wrong tag)"),
            Mismatch::UnknownVersion(v) => write!(f, "unknown binding version {v}"),
            Mismatch::WrongPurpose => f.write_str("bound for another purpose"),
            Mismatch::WrongAddress => f.write_str("bound to another address"),
            Mismatch::WrongValue => f.write_str("bound to another challenge or digest"),
        }
    }
}

fn commitment(address: &Address, purpose: Purpose, value: &B256) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(TAG);
    h.update([VERSION, purpose as u8]);
    h.update(address.0);
    h.update(value.0);
    h.finalize().into()
}

/// The `report_data` binding `address` to `value`.
#[must_use]
pub fn bind(address: &Address, purpose: Purpose, value: &B256) -> [u8; 64] {
    let mut out = [0u8; 64];
    let (addr, rest) = out.split_at_mut(20);
    let (tag, rest) = rest.split_at_mut(10);
    let (meta, commit) = rest.split_at_mut(2);
    addr.copy_from_slice(&address.0);
    tag.copy_from_slice(TAG);
    meta.copy_from_slice(&[VERSION, purpose as u8]);
    commit.copy_from_slice(&commitment(address, purpose, value));
    out
}

/// The address in the first 20 bytes of `report_data`.
#[must_use]
pub fn bound_address(report_data: &[u8; 64]) -> Address {
    let mut a = [0u8; 20];
    a.copy_from_slice(report_data.get(..20).unwrap_or(&[0; 20]));
    Address(a)
}

/// Checks that `report_data` binds `address` to `value` for `purpose`.
pub fn check_binding(
    report_data: &[u8; 64],
    address: &Address,
    purpose: Purpose,
    value: &B256,
) -> Result<(), Mismatch> {
    let tag = report_data.get(20..30).ok_or(Mismatch::NotABinding)?;
    if tag != TAG {
        return Err(Mismatch::NotABinding);
    }
    match report_data.get(30..32) {
        Some(&[VERSION, p]) if p == purpose as u8 => {}
        Some(&[VERSION, _]) => return Err(Mismatch::WrongPurpose),
        Some(&[v, _]) => return Err(Mismatch::UnknownVersion(v)),
        _ => return Err(Mismatch::NotABinding),
    }
    if bound_address(report_data) != *address {
        return Err(Mismatch::WrongAddress);
    }
    if report_data.get(32..) != Some(&commitment(address, purpose, value)[..]) {
        return Err(Mismatch::WrongValue);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_and_check() {
        let a = Address([0x11; 20]);
        let c = B256([0x22; 32]);
        let rd = bind(&a, Purpose::Challenge, &c);
        assert_eq!(&rd[..20], &a.0);
        assert_eq!(&rd[20..30], b"erc8004tee");
        assert_eq!(check_binding(&rd, &a, Purpose::Challenge, &c), Ok(()));
        assert_eq!(
            check_binding(&rd, &Address([0x12; 20]), Purpose::Challenge, &c),
            Err(Mismatch::WrongAddress)
        );
        assert_eq!(
            check_binding(&rd, &a, Purpose::Challenge, &B256([0x23; 32])),
            Err(Mismatch::WrongValue)
        );
        assert_eq!(check_binding(&rd, &a, Purpose::ActionDigest, &c), Err(Mismatch::WrongPurpose));
        let mut bad = rd;
        bad[30] = 9;
        assert_eq!(
            check_binding(&bad, &a, Purpose::Challenge, &c),
            Err(Mismatch::UnknownVersion(9))
        );
        bad = rd;
        bad[25] ^= 1;
        assert_eq!(check_binding(&bad, &a, Purpose::Challenge, &c), Err(Mismatch::NotABinding));
        // Every bit of the commitment matters.
        for i in 32..64 {
            bad = rd;
            bad[i] ^= 0x80;
            assert_eq!(check_binding(&bad, &a, Purpose::Challenge, &c), Err(Mismatch::WrongValue));
        }
    }
}
