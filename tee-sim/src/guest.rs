//! The rest of dstack's v0.5 guest-agent API on the simulated dstack, with
//! dstack's semantics (its `guest-agent/src/rpc_service.rs`): `GetKey` for
//! ed25519 as well as secp256k1, `Sign` and `Verify` with the fixed key
//! (path `vms`, purpose `signing`) and its three-entry chain, `Attest`'s
//! versioned attestation, and `Info` with every field the SDKs parse.

use ed25519_dalek::Signer as _;
use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use k256::ecdsa::signature::{Signer, Verifier};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tee_core::primitives::keccak256;
use tee_core::{SigningKey, hazmat};
use zeroize::Zeroizing;

use super::dstack::{SimDstack, SimError};
use tee_verify::eventlog::{self, Event};

/// A key algorithm of `GetKey`, `Sign` and `Verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// secp256k1 (`secp256k1`, `k256` or empty); `Sign` hashes with SHA-256.
    Secp256k1,
    /// secp256k1 over a 32-byte digest the caller hashed (`Sign`, `Verify`).
    Secp256k1Prehashed,
    /// Ed25519.
    Ed25519,
}

impl Algorithm {
    /// Parses dstack's algorithm names.
    pub fn parse(name: &str) -> Result<Algorithm, SimError> {
        match name {
            "" | "secp256k1" | "k256" => Ok(Algorithm::Secp256k1),
            "secp256k1_prehashed" => Ok(Algorithm::Secp256k1Prehashed),
            "ed25519" => Ok(Algorithm::Ed25519),
            other => Err(SimError::BadRequest(format!("unsupported algorithm {other:?}"))),
        }
    }
}

/// A derived key as `GetKey` returns it.
pub struct DerivedKey {
    /// The 32-byte secret.
    pub secret: Zeroizing<[u8; 32]>,
    /// Its public key (SEC1 compressed, or the 32-byte ed25519 key).
    pub public: Vec<u8>,
    /// `[app key's signature over "{purpose}:{hex(public)}", KMS root's
    /// signature over the app key]`, each `r ‖ s ‖ recovery id`.
    pub chain: [[u8; 65]; 2],
}

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivedKey")
            .field("public", &hex::encode(&self.public))
            .finish_non_exhaustive()
    }
}

/// A signature as dstack's chains hold it: `r ‖ s ‖ recovery id (0/1)`.
pub(super) fn raw(s: tee_core::Signature) -> [u8; 65] {
    let mut b = s.to_bytes();
    b[64] = u8::from(s.y_parity);
    b
}

fn crypto(e: impl std::fmt::Display) -> SimError {
    SimError::BadRequest(e.to_string())
}

/// What `Sign` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `r ‖ s`, or ed25519's 64 bytes.
    pub signature: Vec<u8>,
    /// `[signature, the key's app signature, the KMS signature]`.
    pub chain: [Vec<u8>; 3],
    /// The fixed key's public key (SEC1 compressed, or ed25519's 32 bytes).
    pub public_key: Vec<u8>,
}

impl SimDstack {
    /// dstack `GetKey(path, purpose, algorithm)`: the same 32 bytes for
    /// every algorithm, the chain over the algorithm's public key.
    pub fn get_key_with(
        &self,
        path: &str,
        purpose: &str,
        algorithm: Algorithm,
    ) -> Result<DerivedKey, SimError> {
        let secret = self.derived_secret(path);
        let public = match algorithm {
            Algorithm::Secp256k1 => {
                SigningKey::from_bytes(&secret)?.public_key().to_compressed().to_vec()
            }
            Algorithm::Ed25519 => {
                ed25519_dalek::SigningKey::from_bytes(&secret).verifying_key().to_bytes().to_vec()
            }
            Algorithm::Secp256k1Prehashed => {
                return Err(SimError::BadRequest("GetKey takes secp256k1 or ed25519".into()));
            }
        };
        let msg = format!("{purpose}:{}", hex::encode(&public));
        let app = hazmat::sign_prehash(&self.app_key()?, &keccak256(msg.as_bytes()))?;
        Ok(DerivedKey { secret, public, chain: [raw(app), raw(self.kms_signature()?)] })
    }

    /// dstack `Sign(algorithm, data)`: signed with the app's fixed signing
    /// key (path `vms`, purpose `signing`).
    pub fn sign(&self, algorithm: Algorithm, data: &[u8]) -> Result<Signed, SimError> {
        let key_algorithm = match algorithm {
            Algorithm::Ed25519 => Algorithm::Ed25519,
            _ => Algorithm::Secp256k1,
        };
        let key = self.get_key_with("vms", "signing", key_algorithm)?;
        let signature = match algorithm {
            Algorithm::Ed25519 => {
                ed25519_dalek::SigningKey::from_bytes(&key.secret).sign(data).to_bytes().to_vec()
            }
            Algorithm::Secp256k1 => {
                let k = k256::ecdsa::SigningKey::from_slice(&key.secret[..]).map_err(crypto)?;
                let s: k256::ecdsa::Signature = k.sign(data);
                s.to_bytes().to_vec()
            }
            Algorithm::Secp256k1Prehashed => {
                if data.len() != 32 {
                    return Err(SimError::BadRequest(format!(
                        "Pre-hashed signing requires a 32-byte digest, but received {} bytes",
                        data.len()
                    )));
                }
                let k = k256::ecdsa::SigningKey::from_slice(&key.secret[..]).map_err(crypto)?;
                let s: k256::ecdsa::Signature = k.sign_prehash(data).map_err(crypto)?;
                s.to_bytes().to_vec()
            }
        };
        let [app, kms] = key.chain;
        let chain = [signature.clone(), app.to_vec(), kms.to_vec()];
        Ok(Signed { signature, chain, public_key: key.public })
    }

    /// dstack `Verify(algorithm, data, signature, public_key)`: whether the
    /// signature verifies (malformed keys and signatures are errors).
    pub fn verify(
        &self,
        algorithm: Algorithm,
        data: &[u8],
        signature: &[u8],
        public_key: &[u8],
    ) -> Result<bool, SimError> {
        Ok(match algorithm {
            Algorithm::Ed25519 => {
                let key: [u8; 32] = public_key
                    .try_into()
                    .map_err(|_| SimError::BadRequest("invalid public key".into()))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(crypto)?;
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(crypto)?;
                key.verify_strict(data, &sig).is_ok()
            }
            Algorithm::Secp256k1 | Algorithm::Secp256k1Prehashed => {
                let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(crypto)?;
                let sig = k256::ecdsa::Signature::from_slice(signature).map_err(crypto)?;
                if algorithm == Algorithm::Secp256k1 {
                    key.verify(data, &sig).is_ok()
                } else {
                    key.verify_prehash(data, &sig).is_ok()
                }
            }
        })
    }

    /// dstack `Attest(report_data)`: the versioned attestation in its
    /// legacy (V0, SCALE) encoding: `00` (V0) ‖ `00` (a dstack TDX quote) ‖
    /// the quote ‖ the event log ‖ no platform runtime events ‖
    /// `report_data` ‖ the VM config (empty).
    #[must_use]
    pub fn attest(&self, report_data: &[u8; 64]) -> Vec<u8> {
        let (quote, log) = self.get_quote(report_data);
        let mut out = vec![0u8, 0u8];
        scale_bytes(&mut out, &quote);
        scale_compact(&mut out, log.len());
        for e in &log {
            out.extend_from_slice(&e.imr.to_le_bytes());
            out.extend_from_slice(&e.event_type.to_le_bytes());
            scale_bytes(&mut out, &e.digest);
            scale_bytes(&mut out, e.event.as_bytes());
            scale_bytes(&mut out, &e.event_payload);
        }
        scale_compact(&mut out, 0);
        out.extend_from_slice(report_data);
        scale_bytes(&mut out, b"");
        out
    }

    /// dstack `Info`, with every field the SDKs parse: the TCB info (a
    /// JSON string, dstack 0.5's `TcbInfoV05x`: measurements,
    /// `mr_aggregated`, `os_image_hash`, compose hash, device id, the
    /// app-compose file and the event log), ids, key provider.
    #[must_use]
    pub fn info(&self) -> Value {
        let log = self.event_log();
        let m = self.measurements();
        // dstack: SHA-256 of MRTD and RTMR0-3, RTMR3 replayed to the end of
        // boot (up to `boot-mr-done`).
        let boot_rtmr3 = eventlog::replay(&boot_part(&self.boot_log()), 3).unwrap_or([0; 48]);
        let mut h = Sha256::new();
        for r in [&m.mrtd, &m.rtmr[0], &m.rtmr[1], &m.rtmr[2], &boot_rtmr3] {
            h.update(r);
        }
        let mr_aggregated = hex::encode(h.finalize());
        let os_image_hash =
            hex::encode(Sha256::digest(b"erc8004-tee-signer simulated dstack image"));
        // dstack: SHA-256 of the platform's device identity (the PPID for
        // TDX); the simulated PCK certificate's PPID is zero.
        let device_id = hex::encode(Sha256::digest([0u8; 16]));
        let compose_hash = hex::encode(self.compose_hash());
        let key_provider = json!({ "name": "kms", "id": self.kms_root().to_string() }).to_string();
        let tcb_info = json!({
            "mrtd": hex::encode(m.mrtd),
            "rtmr0": hex::encode(m.rtmr[0]),
            "rtmr1": hex::encode(m.rtmr[1]),
            "rtmr2": hex::encode(m.rtmr[2]),
            "rtmr3": hex::encode(m.rtmr[3]),
            "mr_aggregated": mr_aggregated,
            "os_image_hash": os_image_hash,
            "compose_hash": compose_hash,
            "device_id": device_id,
            "app_compose": self.app_compose(),
            "event_log": log,
        });
        json!({
            "app_id": hex::encode(self.app_id()),
            "instance_id": hex::encode(&keccak256(&self.app_id()).0[..20]),
            "app_cert": "",
            "tcb_info": tcb_info.to_string(),
            "app_name": "erc8004-tee-signer (simulated)",
            "device_id": device_id,
            "mr_aggregated": mr_aggregated,
            "os_image_hash": os_image_hash,
            "key_provider_info": key_provider,
            "compose_hash": compose_hash,
            "vm_config": "",
            "cloud_vendor": "",
            "cloud_product": "",
        })
    }
}

/// The boot log up to and including `boot-mr-done`.
fn boot_part(log: &[Event]) -> Vec<Event> {
    let end = log.iter().position(|e| e.event == "boot-mr-done").map_or(log.len(), |i| i + 1);
    log.iter().take(end).cloned().collect()
}

/// SCALE's compact length prefix.
fn scale_compact(out: &mut Vec<u8>, n: usize) {
    match u32::try_from(n) {
        Ok(n) if n < 1 << 6 => out.push((n << 2) as u8),
        Ok(n) if n < 1 << 14 => out.extend_from_slice(&(((n << 2) | 1) as u16).to_le_bytes()),
        Ok(n) if n < 1 << 30 => out.extend_from_slice(&((n << 2) | 2).to_le_bytes()),
        _ => {
            let bytes = (n as u64).to_le_bytes();
            let len = bytes.iter().rposition(|&b| b != 0).map_or(1, |i| i + 1);
            out.push((((len - 4) << 2) | 3) as u8);
            out.extend_from_slice(bytes.get(..len).unwrap_or(&bytes));
        }
    }
}

/// SCALE `Vec<u8>` / `String`: compact length, then the bytes.
fn scale_bytes(out: &mut Vec<u8>, b: &[u8]) {
    scale_compact(out, b.len());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn sim() -> SimDstack {
        SimDstack::with_app_compose(&[0x11; 32], [0x22; 20], r#"{"name":"x"}"#).unwrap()
    }

    #[test]
    fn scale_compact_lengths() {
        for (n, want) in [
            (0usize, vec![0x00]),
            (1, vec![0x04]),
            (63, vec![0xfc]),
            (64, vec![0x01, 0x01]),
            (16_383, vec![0xfd, 0xff]),
            (16_384, vec![0x02, 0x00, 0x01, 0x00]),
            (1 << 30, vec![0x03, 0x00, 0x00, 0x00, 0x40]),
        ] {
            let mut out = Vec::new();
            scale_compact(&mut out, n);
            assert_eq!(out, want, "{n}");
        }
    }

    /// Sign and Verify round-trip for every algorithm, with the fixed key
    /// whose chain is GetKey's for `vms`/`signing`.
    #[test]
    fn sign_and_verify() {
        let s = sim();
        for alg in [Algorithm::Secp256k1, Algorithm::Secp256k1Prehashed, Algorithm::Ed25519] {
            let data = [7u8; 32];
            let Signed { signature: sig, chain, public_key: public } = s.sign(alg, &data).unwrap();
            assert_eq!(chain[0], sig);
            assert!(s.verify(alg, &data, &sig, &public).unwrap(), "{alg:?}");
            assert!(!s.verify(alg, &[8u8; 32], &sig, &public).unwrap(), "{alg:?}");
            let key_alg = if alg == Algorithm::Ed25519 { alg } else { Algorithm::Secp256k1 };
            let key = s.get_key_with("vms", "signing", key_alg).unwrap();
            assert_eq!(key.public, public);
            assert_eq!(chain[1], key.chain[0].to_vec());
        }
        assert!(s.sign(Algorithm::Secp256k1Prehashed, &[1; 31]).is_err());
        assert!(s.verify(Algorithm::Ed25519, b"x", &[0; 64], &[0; 31]).is_err());
        assert!(Algorithm::parse("rsa").is_err());
    }

    /// Emitted events extend the log and RTMR3, and stay after boot's
    /// identity (the verifier reports them, never as identity).
    #[test]
    fn emitted_events_extend_rtmr3() {
        let s = sim();
        let before = s.measurements().rtmr[3];
        s.emit_event("agent-config", b"v2").unwrap();
        let log = s.event_log();
        assert_eq!(log.last().unwrap().event, "agent-config");
        assert_ne!(s.measurements().rtmr[3], before);
        assert_eq!(eventlog::replay(&log, 3).unwrap(), s.measurements().rtmr[3]);
        let boot = eventlog::BootLog::read(&log).unwrap();
        assert_eq!(boot.runtime.len(), 1);
        assert!(s.emit_event("", b"").is_err());
        let info = s.info();
        let tcb: Value = serde_json::from_str(info["tcb_info"].as_str().unwrap()).unwrap();
        assert_eq!(tcb["rtmr3"], hex::encode(s.measurements().rtmr[3]));
        // The compose hash is the app-compose file's SHA-256.
        let compose = tcb["app_compose"].as_str().unwrap();
        assert_eq!(tcb["compose_hash"], hex::encode(Sha256::digest(compose.as_bytes())));
    }
}
