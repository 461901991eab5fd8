//! Raw-digest signing (feature `hazmat`).
//!
//! Signing a caller-supplied 32-byte digest bypasses everything the signer
//! knows about what it signs: no canonical action, no policy. It exists for
//! tests and tools that already hold a digest of a format tee-core does not
//! model; a device never exposes it.

use crate::error::Result;
use crate::primitives::B256;
use crate::signer::{Signature, SigningKey};

/// Signs `digest` as is (RFC 6979, low-S).
pub fn sign_prehash(key: &SigningKey, digest: &B256) -> Result<Signature> {
    key.sign_digest(digest)
}
