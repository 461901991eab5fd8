//! dstack's key signature chains: a key signed by its app key (for a
//! purpose in v0, a domain in v1), the app key by the KMS root for the app.

use tee_core::primitives::keccak256;
use tee_core::signer::PublicKey;
use tee_core::{Address, B256, Signature};

use super::evidence::KeyChain;
use super::report::Failure;

/// `LP(x) = u32 BE length ‖ x`, dstack v1's injective field encoding (the
/// simulator encodes its claims with it too).
pub fn lp(out: &mut Vec<u8>, x: &[u8]) {
    // Fields here are names and keys, far below 4 GiB.
    out.extend_from_slice(&u32::try_from(x.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(x);
}

/// dstack v1's key claim digest (its `docs/guest-api-v1.md`, link 0):
/// `keccak256(LP("dstack-guest-v1-key-claim") ‖ LP(algorithm) ‖ LP(domain)
/// ‖ LP(public_key))`, the public key raw (SEC1 compressed for secp256k1).
#[must_use]
pub fn v1_key_claim(algorithm: &str, domain: &[u8], public_key: &[u8]) -> B256 {
    let mut claim = Vec::with_capacity(96 + domain.len());
    for field in [&b"dstack-guest-v1-key-claim"[..], algorithm.as_bytes(), domain, public_key] {
        lp(&mut claim, field);
    }
    keccak256(&claim)
}

/// Verifies dstack's key signature chain: `key` (whose address must be
/// `address`) signed by the app key for its purpose (v0) or domain (v1),
/// the app key signed by the KMS root for `app_id`. Returns the app key's
/// address.
pub fn verify_key_chain(
    chain: &KeyChain,
    address: &Address,
    app_id: Option<&[u8]>,
    kms_root: &Address,
) -> Result<Address, Failure> {
    let fail = |m: &str| Failure::KeyChain(m.to_owned());
    let key =
        PublicKey::from_sec1_bytes(&chain.public_key.0).map_err(|_| fail("not a public key"))?;
    if key.address() != *address {
        return Err(fail("the chain is for another key than the signer's"));
    }
    let app_id =
        app_id.ok_or(Failure::Missing("app-id event (the chain is bound to the app id)"))?;
    let claim = match &chain.domain {
        None => {
            keccak256(format!("{}:{}", chain.purpose, hex::encode(chain.public_key.0)).as_bytes())
        }
        Some(_) if !chain.purpose.is_empty() => {
            return Err(fail("a chain names a v0 purpose or a v1 domain, not both"));
        }
        Some(domain) => v1_key_claim("secp256k1", domain.as_bytes(), &chain.public_key.0),
    };
    let app_sig = Signature::from_bytes(&chain.app_signature.0)
        .map_err(|_| fail("malformed app signature"))?;
    let app_key =
        app_sig.recover_public_key(&claim).map_err(|_| fail("app signature does not recover"))?;
    let issued = [&b"dstack-kms-issued:"[..], app_id, &app_key.to_compressed()].concat();
    let kms_sig = Signature::from_bytes(&chain.kms_signature.0)
        .map_err(|_| fail("malformed KMS signature"))?;
    let signer = kms_sig
        .recover_address(&keccak256(&issued))
        .map_err(|_| fail("KMS signature does not recover"))?;
    if signer != *kms_root {
        return Err(fail(&format!("app key issued by {signer}, not the KMS root {kms_root}")));
    }
    Ok(app_key.address())
}
