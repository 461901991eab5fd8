//! dstack 0.6's `/v1` guest-agent API on the simulated dstack (its
//! `docs/guest-api-v1.md`): `GetKey{domain, algorithm}` with the v1 key
//! derivation and chain claim, `Attest` returning a V1 (MessagePack)
//! `VersionedAttestation`, `Info` without the TCB blob, `Version`,
//! `IssueCert`. v1 keys are not v0 keys: the same name gives other bytes.
//!
//! ```text
//! key   = HKDF-SHA256(salt "dstack-guest-v1", ikm = app key,
//!                     info = LP("dstack-guest-v1-key") ‖ LP(algorithm) ‖ LP(domain))
//! link0 = app key signs keccak256(LP("dstack-guest-v1-key-claim") ‖ LP(algorithm)
//!                                  ‖ LP(domain) ‖ LP(public key))
//! link1 = the KMS root's signature over the app key, as in v0
//! ```

use hkdf::Hkdf;
use serde_json::{Value, json};
use sha2::Sha256;
use tee_core::{SigningKey, hazmat};
use zeroize::Zeroizing;

use super::dstack::{SimDstack, SimError};
use super::guest::{DerivedKey, raw};
use tee_verify::keychain::{lp, v1_key_claim};
use tee_verify::versioned;

/// A v1 key algorithm: exactly these names, no default, no alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// `secp256k1`.
    Secp256k1,
    /// `ed25519`.
    Ed25519,
}

impl KeyAlgorithm {
    /// Parses a v1 algorithm name; anything else (also `k256`, empty) is refused.
    pub fn parse(name: &str) -> Result<KeyAlgorithm, SimError> {
        match name {
            "secp256k1" => Ok(KeyAlgorithm::Secp256k1),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            other => Err(SimError::BadRequest(format!(
                "unsupported algorithm {other:?}: expected \"secp256k1\" or \"ed25519\""
            ))),
        }
    }

    /// The canonical name, as bound into the derivation and the claim.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Secp256k1 => "secp256k1",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

/// The v1 KDF over the app root key.
#[must_use]
pub fn derive(app_root: &[u8; 32], algorithm: KeyAlgorithm, domain: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut info = Vec::with_capacity(40 + domain.len());
    for field in [&b"dstack-guest-v1-key"[..], algorithm.name().as_bytes(), domain] {
        lp(&mut info, field);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit.
    let _ = Hkdf::<Sha256>::new(Some(b"dstack-guest-v1"), app_root).expand(&info, &mut out[..]);
    out
}

/// The simulator's V1 attestations carry this VM config (the VMM's JSON).
const VM_CONFIG: &str = r#"{"spec_version":1,"cpu_count":2,"memory_size":2147483648}"#;

impl SimDstack {
    /// dstack `/v1/GetKey(domain, algorithm)`: the v1 key, its public key
    /// and its two-link chain.
    pub fn get_key_v1(
        &self,
        domain: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<DerivedKey, SimError> {
        let secret = derive(&self.app_key_secret(), algorithm, domain.as_bytes());
        let public = match algorithm {
            // No folding into range: an out-of-range scalar is an error.
            KeyAlgorithm::Secp256k1 => SigningKey::from_bytes(&secret)
                .map_err(|_| SimError::BadRequest("derived scalar out of range".into()))?
                .public_key()
                .to_compressed()
                .to_vec(),
            KeyAlgorithm::Ed25519 => {
                ed25519_dalek::SigningKey::from_bytes(&secret).verifying_key().to_bytes().to_vec()
            }
        };
        let claim = v1_key_claim(algorithm.name(), domain.as_bytes(), &public);
        let link0 = hazmat::sign_prehash(&self.app_key()?, &claim)?;
        Ok(DerivedKey { secret, public, chain: [raw(link0), raw(self.kms_signature()?)] })
    }

    /// dstack `/v1/Attest(report_data)`: a V1 `VersionedAttestation` of the
    /// TDX platform (the quote and the stripped event log) and the dstack stack.
    #[must_use]
    pub fn attest_v1(&self, report_data: &[u8; 64]) -> Vec<u8> {
        let (quote, log) = self.get_quote(report_data);
        versioned::encode_v1(&quote, &log, report_data, VM_CONFIG)
    }

    /// dstack `/v1/Info`: identity and configuration, bytes as hex, no
    /// measurement registers and no event log (those come with `Attest`).
    #[must_use]
    pub fn info_v1(&self) -> Value {
        let v0 = self.info();
        let field = |k: &str| v0.get(k).cloned().unwrap_or(Value::String(String::new()));
        json!({
            "app_id": field("app_id"),
            "app_name": field("app_name"),
            "compose_hash": field("compose_hash"),
            "app_compose": self.app_compose(),
            "instance_id": field("instance_id"),
            "device_id": field("device_id"),
            "os_image_hash": field("os_image_hash"),
            "mr_aggregated": field("mr_aggregated"),
            "vm_config": VM_CONFIG,
            "key_provider_info": field("key_provider_info"),
            "cloud_vendor": "",
            "cloud_product": "",
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use hex_literal::hex;
    use tee_core::Signature;
    use tee_core::primitives::keccak256;

    use super::*;

    const ROOT: [u8; 32] = hex!("1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b");

    /// dstack's own vectors (`docs/guest-api-v1.md`, "Test vectors").
    #[test]
    fn the_specification_vectors() {
        use KeyAlgorithm::{Ed25519, Secp256k1};
        let vectors: [(&[u8], KeyAlgorithm, [u8; 32], &str); 6] = [
            (
                b"",
                Secp256k1,
                hex!("59f60584ce6fd2a3a31997256db9d77322463fc8a6b1520110401bcb1ee92387"),
                "0377c7fb050db181d392266a3cee9adb2901c6d665f11bac68be5457f577ba4908",
            ),
            (
                b"",
                Ed25519,
                hex!("b023493030669cf22e9cafa6a464d4cf3ae4edfe5474ec796710f21ea011946d"),
                "a3dc149fd5b765eab2eb7d3174fa939e39386898f10b15b7b146f6f1358ecf2a",
            ),
            (
                b"storage-encryption",
                Secp256k1,
                hex!("5510330f86902ddae38c6d89c93a8408019332c17a429e1abd01c4a28d1544a6"),
                "03d962450a41748021c8b02787ac36ce642ff0ae25f4c55019eb527e1112cfd764",
            ),
            (
                b"storage-encryption",
                Ed25519,
                hex!("3c4c3ece12fa99ccb93fc0090877f80e70545fdd971e2ac93d3398c4684538d3"),
                "2380c4a33a60b60613fa43866421e5b96eb8dcde211317200fd0d41e7e491288",
            ),
            (
                b"a/b/c",
                Secp256k1,
                hex!("7f0973449298085d2d36a3b4c4d3243c100ba1981ffa885fe9e9dee883e69538"),
                "02e9b1a61b6d70aa9b241753828c316bf90e33e77b2e113f9ba75a8b6dc3cde5c1",
            ),
            (
                b"k\0:ey",
                Ed25519,
                hex!("42da8bf0b479ed125c370e3b91f982735bf08ff592abbd586985affa43ee96a1"),
                "c833107822b003ff5675b33b90b151d4315c3ab9162b17d876e8dffde41abf9b",
            ),
        ];
        for (domain, alg, key, public) in vectors {
            let got = derive(&ROOT, alg, domain);
            assert_eq!(*got, key, "{domain:?} {alg:?}");
            let pk = match alg {
                Secp256k1 => {
                    SigningKey::from_bytes(&got).unwrap().public_key().to_compressed().to_vec()
                }
                Ed25519 => {
                    ed25519_dalek::SigningKey::from_bytes(&got).verifying_key().to_bytes().to_vec()
                }
            };
            assert_eq!(hex::encode(pk), public);
        }
        // Link 0 for storage-encryption/secp256k1, RFC 6979 so exact.
        let public = hex!("03d962450a41748021c8b02787ac36ce642ff0ae25f4c55019eb527e1112cfd764");
        let claim = v1_key_claim("secp256k1", b"storage-encryption", &public);
        let link0 =
            raw(hazmat::sign_prehash(&SigningKey::from_bytes(&ROOT).unwrap(), &claim).unwrap());
        assert_eq!(
            link0,
            hex!(
                "5b6193729ce7976ec67863f21692d4b98c69832698aae8e001a7d33a6f818b6e"
                "46ca950725b6e90e8ca9bcf394abd03ce264bf9b7eec1e91693247f9dd53c269"
                "01"
            )
        );
    }

    /// A v1 key is not the v0 key of the same name, the chain recovers to
    /// the app key and the KMS root signs it as in v0.
    #[test]
    fn v1_keys_and_chains() {
        let s = SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap();
        let k = s.get_key_v1("agent/1", KeyAlgorithm::Secp256k1).unwrap();
        let (v0, _) = s.get_key("agent/1", "x").unwrap();
        assert_ne!(*k.secret, *v0);
        assert_ne!(
            *s.get_key_v1("agent/1", KeyAlgorithm::Ed25519).unwrap().secret,
            *k.secret,
            "the curves do not share a secret"
        );
        let claim = v1_key_claim("secp256k1", b"agent/1", &k.public);
        let app = Signature::from_bytes(&k.chain[0]).unwrap().recover_public_key(&claim).unwrap();
        assert_eq!(app.address(), s.app_key().unwrap().address());
        let issued = [&b"dstack-kms-issued:"[..], &[0x22; 20], &app.to_compressed()].concat();
        let root = Signature::from_bytes(&k.chain[1]).unwrap().recover_address(&keccak256(&issued));
        assert_eq!(root.unwrap(), s.kms_root());
        assert!(KeyAlgorithm::parse("k256").is_err() && KeyAlgorithm::parse("").is_err());
    }
}
