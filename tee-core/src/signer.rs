//! secp256k1 signing the way Ethereum expects it: RFC 6979 deterministic
//! ECDSA (k256), low-S, a recovery bit, 65-byte `r ‖ s ‖ v`, and addresses
//! from public keys.
//!
//! Actions are signed through `SigningKey::sign` ([`crate::action`]); a raw
//! 32-byte digest can be signed only through [`crate::hazmat`] (feature
//! `hazmat`).

use core::fmt;

use k256::ecdsa::{self, VerifyingKey};
use k256::elliptic_curve::scalar::IsHigh;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::primitives::{Address, B256, keccak256};

/// A secp256k1 secret key with its cached Ethereum address.
///
/// The secret is zeroized when the key is dropped (k256 does it) and never
/// appears in `Debug` output.
pub struct SigningKey {
    inner: ecdsa::SigningKey,
    address: Address,
}

impl SigningKey {
    /// A key from its 32 big-endian secret bytes. Zero and values not below
    /// the curve order are [`Error::InvalidKey`].
    pub fn from_bytes(secret: &[u8; 32]) -> Result<Self> {
        let inner =
            ecdsa::SigningKey::from_bytes(&(*secret).into()).map_err(|_| Error::InvalidKey)?;
        let address = PublicKey(*inner.verifying_key()).address();
        Ok(SigningKey { inner, address })
    }

    /// The Ethereum address of this key.
    #[must_use]
    pub fn address(&self) -> Address {
        self.address
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.inner.verifying_key())
    }

    /// The secret scalar's bytes, for the device to persist a generated key.
    pub(crate) fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut bytes = self.inner.to_bytes();
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&bytes);
        bytes.as_mut_slice().zeroize();
        out
    }

    /// Signs a digest. Crate-private: outside callers go through actions or
    /// [`crate::hazmat`].
    /// A second handle on the same secret (zeroized when dropped, as this
    /// one), for a signature computed outside the device's lock.
    pub(crate) fn duplicate(&self) -> SigningKey {
        SigningKey { inner: self.inner.clone(), address: self.address }
    }

    pub(crate) fn sign_digest(&self, digest: &B256) -> Result<Signature> {
        let (sig, recid) = self.inner.sign_prehash_recoverable(&digest.0);
        // An x-coordinate above the group order (probability ~2^-128) cannot
        // be expressed with Ethereum's one-bit v.
        if recid.is_x_reduced() {
            return Err(Error::SigningFailed);
        }
        let (r, s) = sig.split_bytes();
        Ok(Signature { r: r.into(), s: s.into(), y_parity: recid.is_y_odd() })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("address", &self.address).finish_non_exhaustive()
    }
}

/// A secp256k1 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// From SEC1 bytes (33-byte compressed or 65-byte uncompressed).
    pub fn from_sec1_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(PublicKey(VerifyingKey::from_sec1_bytes(bytes).map_err(|_| Error::InvalidKey)?))
    }

    /// SEC1 compressed form.
    #[must_use]
    pub fn to_compressed(&self) -> [u8; 33] {
        self.sec1(true)
    }

    /// SEC1 uncompressed form (`04 ‖ x ‖ y`).
    #[must_use]
    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.sec1(false)
    }

    fn sec1<const N: usize>(&self, compress: bool) -> [u8; N] {
        let mut out = [0u8; N];
        let p = self.0.to_sec1_point(compress);
        if let Some(dst) = out.get_mut(..p.as_bytes().len()) {
            dst.copy_from_slice(p.as_bytes());
        }
        out
    }

    /// The Ethereum address: the last 20 bytes of keccak-256 of `x ‖ y`.
    #[must_use]
    pub fn address(&self) -> Address {
        let p = self.to_uncompressed();
        let h = keccak256(p.get(1..).unwrap_or(&[]));
        let mut a = [0u8; 20];
        a.copy_from_slice(h.0.get(12..).unwrap_or(&[0; 20]));
        Address(a)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", crate::primitives::Hex(&self.to_compressed()))
    }
}

/// An Ethereum ECDSA signature: `r`, `s` (low) and the parity of `R.y`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Signature {
    /// `r`, big-endian.
    pub r: [u8; 32],
    /// `s`, big-endian, at most half the group order.
    pub s: [u8; 32],
    /// Whether `R.y` is odd (the EIP-1559 `y_parity`, `v - 27` for messages).
    pub y_parity: bool,
}

impl Signature {
    /// The `v` byte of the 65-byte message signature form: 27 or 28.
    #[must_use]
    pub fn v(&self) -> u8 {
        27 + u8::from(self.y_parity)
    }

    /// `r ‖ s ‖ v` with `v` in {27, 28}, as `ecrecover`, OpenZeppelin's
    /// `ECDSA.recover` and `personal_sign` use it.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        let (r, rest) = out.split_at_mut(32);
        let (s, v) = rest.split_at_mut(32);
        r.copy_from_slice(&self.r);
        s.copy_from_slice(&self.s);
        if let Some(v) = v.first_mut() {
            *v = self.v();
        }
        out
    }

    /// Parses `r ‖ s ‖ v` (`v` in {0, 1, 27, 28}), rejecting zero or
    /// out-of-range scalars and high `s`.
    pub fn from_bytes(bytes: &[u8; 65]) -> Result<Self> {
        let (r, rest) = bytes.split_at(32);
        let (s, v) = rest.split_at(32);
        let y_parity = match v {
            [0 | 27] => false,
            [1 | 28] => true,
            _ => return Err(Error::InvalidSignature),
        };
        let sig = Signature {
            r: r.try_into().map_err(|_| Error::InvalidSignature)?,
            s: s.try_into().map_err(|_| Error::InvalidSignature)?,
            y_parity,
        };
        sig.to_k256()?;
        Ok(sig)
    }

    /// The k256 signature, checking range and low-S.
    fn to_k256(self) -> Result<ecdsa::Signature> {
        let sig =
            ecdsa::Signature::from_scalars(self.r, self.s).map_err(|_| Error::InvalidSignature)?;
        if bool::from(sig.s().is_high()) {
            return Err(Error::InvalidSignature);
        }
        Ok(sig)
    }

    /// The public key that produced this signature over `digest`:
    /// `Q = r⁻¹(s·R − z·G)`, where `R` is the point whose x is `r` and
    /// whose y has this signature's parity (SEC 1 §4.1.6, as
    /// `ecrecover`; `r` is taken below the group order, as Ethereum does).
    ///
    /// The two products are made one after the other, each in a frame of
    /// its own, not as one two-point combination: that keeps half the
    /// tables on the stack at once (a microcontroller's admin path, where
    /// recovery is the deepest stack: docs/performance.md). Both products
    /// are k256's constant-time ones: slower than a variable-time
    /// two-point combination (a signature is public), never less safe.
    pub fn recover_public_key(&self, digest: &B256) -> Result<PublicKey> {
        // Only the two scalars and `R` are live across the products.
        let (u1, u2, big_r) = self.recovery_terms(digest)?;
        let q = generator_times(&u1) + point_times(&big_r, &u2);
        key_of(&q)
    }

    /// `(−z·r⁻¹, s·r⁻¹, R)` for [`Signature::recover_public_key`], in a
    /// frame of its own.
    #[inline(never)]
    fn recovery_terms(
        &self,
        digest: &B256,
    ) -> Result<(k256::Scalar, k256::Scalar, k256::ProjectivePoint)> {
        use k256::elliptic_curve::PrimeField;
        use k256::elliptic_curve::ops::Reduce;
        use k256::elliptic_curve::point::DecompressPoint;
        use k256::elliptic_curve::subtle::Choice;
        use k256::{AffinePoint, Scalar, U256};

        let sig = self.to_k256()?;
        let (r, s) = sig.split_scalars();
        let z = <Scalar as Reduce<U256>>::reduce(&U256::from_be_slice(&digest.0));
        let big_r = AffinePoint::decompress(&r.to_repr(), Choice::from(u8::from(self.y_parity)));
        let big_r = Option::<AffinePoint>::from(big_r).ok_or(Error::InvalidSignature)?;
        let r_inv = Option::<Scalar>::from(r.invert()).ok_or(Error::InvalidSignature)?;
        Ok((-(r_inv * z), r_inv * *s, big_r.into()))
    }

    /// The address that produced this signature over `digest`.
    pub fn recover_address(&self, digest: &B256) -> Result<Address> {
        recovered_address(self.recover_public_key(digest))
    }
}

/// The key at `q`, unless `q` is the point at infinity (no key); in a
/// frame of its own (see [`Signature::recover_public_key`]).
#[inline(never)]
fn key_of(q: &k256::ProjectivePoint) -> Result<PublicKey> {
    VerifyingKey::from_affine(q.to_affine()).map(PublicKey).map_err(|_| Error::InvalidSignature)
}

/// The address of a recovered key: its hashing in a frame apart from the
/// recovery's (see [`Signature::recover_public_key`]).
#[inline(never)]
fn recovered_address(key: Result<PublicKey>) -> Result<Address> {
    Ok(key?.address())
}

/// `k·G`, in a frame of its own (see [`Signature::recover_public_key`]).
#[inline(never)]
fn generator_times(k: &k256::Scalar) -> k256::ProjectivePoint {
    k256::ProjectivePoint::mul_by_generator(k)
}

/// `k·p`, in a frame of its own (see [`Signature::recover_public_key`]).
#[inline(never)]
fn point_times(p: &k256::ProjectivePoint, k: &k256::Scalar) -> k256::ProjectivePoint {
    *p * *k
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Signature {
    /// The 65-byte hex form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::primitives::Hex(&self.to_bytes()), f)
    }
}

/// An action's digest and the signature over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Signed {
    /// What was signed.
    pub digest: B256,
    /// The signature.
    pub signature: Signature,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    /// eth_account's documentation example key (`Account.from_key`) and its
    /// address; `python3 -c "from eth_account import Account;
    /// print(Account.from_key('0x4c08…2318').address)"` prints the same.
    #[test]
    fn address_from_key() {
        let k = SigningKey::from_bytes(&hex!(
            "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
        ))
        .unwrap();
        assert_eq!(k.address().0, hex!("2c7536E3605D9C16a7a3D7b1898e529396a65c23"));
        // The EIP-712 example's signer: keccak256("cow").
        let cow = SigningKey::from_bytes(&keccak256(b"cow").0).unwrap();
        assert_eq!(cow.address().0, hex!("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"));
    }

    #[test]
    fn invalid_keys() {
        assert!(matches!(SigningKey::from_bytes(&[0; 32]), Err(Error::InvalidKey)));
        assert!(matches!(SigningKey::from_bytes(&[0xff; 32]), Err(Error::InvalidKey)));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = hex!("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318");
        let k = SigningKey::from_bytes(&secret).unwrap();
        let dbg = std::format!("{k:?}");
        assert!(dbg.contains("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"));
        assert!(!dbg.to_lowercase().contains("4c0883a6"));
    }

    /// The EIP-712 specification's `Example.js` signs the `Mail` digest with
    /// the "cow" key and prints v=28, r=0x4355…1c9d, s=0x0729…1562.
    #[test]
    fn eip712_spec_mail_signature() {
        let cow = SigningKey::from_bytes(&keccak256(b"cow").0).unwrap();
        let digest = B256(hex!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"));
        let sig = cow.sign_digest(&digest).unwrap();
        assert_eq!(sig.v(), 28);
        assert_eq!(sig.r, hex!("4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"));
        assert_eq!(sig.s, hex!("07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"));
        assert_eq!(sig.recover_address(&digest).unwrap(), cow.address());
    }

    #[test]
    fn signature_bytes_round_trip_and_rejects_high_s() {
        let cow = SigningKey::from_bytes(&keccak256(b"cow").0).unwrap();
        let d = keccak256(b"x");
        let sig = cow.sign_digest(&d).unwrap();
        assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
        // s' = n - s is the malleated twin; it must be refused.
        let n = hex!("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
        let mut s2 = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let v = i16::from(n[i]) - i16::from(sig.s[i]) - borrow;
            s2[i] = v.rem_euclid(256) as u8;
            borrow = i16::from(v < 0);
        }
        let mut b = sig.to_bytes();
        b[32..64].copy_from_slice(&s2);
        assert_eq!(Signature::from_bytes(&b), Err(Error::InvalidSignature));
        b = sig.to_bytes();
        b[64] = 29;
        assert_eq!(Signature::from_bytes(&b), Err(Error::InvalidSignature));
        assert_eq!(Signature::from_bytes(&[0; 65]), Err(Error::InvalidSignature));
    }
}
