//! What a signer presents and what it must bind: the quote with dstack's
//! event log and key chain ([`Evidence`], borrowed), the value
//! `report_data` must bind ([`Expected`]), and the JSON bundles a signer
//! hands out and a validator checks offline ([`Attestation`],
//! [`TeeSignature`]).

use serde::{Deserialize, Serialize};
use tee_core::primitives::FixedBytes;
use tee_core::{Address, B256};

use super::eventlog::Event;

/// What `report_data` must bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The verifier's fresh challenge.
    Challenge(B256),
    /// One signed action's digest.
    ActionDigest(B256),
    /// The verifier's fresh challenge, bound to the device's identity key
    /// (which signs its admin statements) rather than a slot's.
    Device(B256),
}

/// dstack's proof that a key was derived for this app: `GetKey`'s
/// `signature_chain`, with what it covers. A chain from dstack's v0 API
/// names the `purpose` it was asked for; one from the v1 API (dstack 0.6,
/// `/v1/GetKey`) names its `domain` instead (and has an empty purpose): the
/// two APIs' claims are different byte strings (see
/// [`crate::keychain::v1_key_claim`]).
/// JSON keys camelCase (`publicKey`, `appSignature`, `kmsSignature`); the
/// snake_case keys of earlier versions are read too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyChain {
    /// `GetKey`'s purpose argument (v0; empty for v1).
    pub purpose: String,
    /// The v1 key's domain (`/v1/GetKey{domain, algorithm: secp256k1}`);
    /// absent for a v0 chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The derived key (SEC1 compressed).
    #[serde(alias = "public_key")]
    pub public_key: FixedBytes<33>,
    /// The app key's signature over the key's claim: v0
    /// `keccak256("{purpose}:{hex(public_key)}")`, v1
    /// `keccak256(LP("dstack-guest-v1-key-claim") ‖ LP("secp256k1") ‖
    /// LP(domain) ‖ LP(public_key))`.
    #[serde(alias = "app_signature")]
    pub app_signature: FixedBytes<65>,
    /// The KMS root's signature over
    /// `keccak256("dstack-kms-issued:" ‖ app_id ‖ app_public_key)`.
    #[serde(alias = "kms_signature")]
    pub kms_signature: FixedBytes<65>,
}

/// Everything a signer presents.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The TDX quote.
    pub quote: &'a [u8],
    /// dstack's event log, if any.
    pub event_log: Option<&'a [Event]>,
    /// dstack's key signature chain, for a derived key.
    pub key_chain: Option<&'a KeyChain>,
}

/// What an attestation binds: a verifier's challenge, a signed action's
/// digest, or a challenge for the device's identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "purpose", content = "value")]
pub enum Bound {
    /// A fresh challenge.
    Challenge(B256),
    /// One action's digest.
    ActionDigest(B256),
    /// A fresh challenge, bound to the device's identity key.
    Device(B256),
}

impl From<Bound> for Expected {
    fn from(b: Bound) -> Expected {
        match b {
            Bound::Challenge(c) => Expected::Challenge(c),
            Bound::ActionDigest(d) => Expected::ActionDigest(d),
            Bound::Device(c) => Expected::Device(c),
        }
    }
}

/// Everything a verifier needs to check that `address` is a key in a
/// measured TEE: the quote, what it binds, the event log and, for a dstack
/// key, its KMS signature chain. Serializes to JSON for other languages,
/// keys camelCase (`reportData`, `eventLog`, `keyChain`; the snake_case
/// keys of earlier versions are read too); the event log's entries are
/// dstack's own (`event_type`, `event_payload`), as dstack writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// The provider (`phala-dstack`).
    pub provider: String,
    /// The key's address.
    pub address: Address,
    /// What `report_data` binds besides the address.
    pub bound: Bound,
    /// The quote's `report_data`.
    #[serde(alias = "report_data")]
    pub report_data: FixedBytes<64>,
    /// The TDX quote.
    #[serde(with = "crate::json::hex")]
    pub quote: Vec<u8>,
    /// dstack's event log.
    #[serde(alias = "event_log")]
    pub event_log: Vec<Event>,
    /// The key's KMS signature chain (derived keys).
    #[serde(alias = "key_chain")]
    pub key_chain: Option<KeyChain>,
    /// The signer's backend kind (`Simulated` quotes never pass DCAP).
    pub backend: String,
}

impl Attestation {
    /// The evidence, as the verifier takes it.
    #[must_use]
    pub fn evidence(&self) -> Evidence<'_> {
        Evidence {
            quote: &self.quote,
            event_log: Some(&self.event_log),
            key_chain: self.key_chain.as_ref(),
        }
    }
}

/// A signature with its per-action attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeSignature {
    /// The provider (`phala-dstack`).
    pub provider: String,
    /// The slot that signed.
    pub slot: u8,
    /// The sequence it signed at.
    pub sequence: u64,
    /// The digest signed (EIP-712, transaction or EIP-191 hash).
    pub digest: B256,
    /// `r ‖ s ‖ v` (v = 27 + y parity), as Ethereum tools take it.
    pub signature: FixedBytes<65>,
    /// The signer's address.
    pub address: Address,
    /// For a transaction: the signed transaction (EIP-2718 type 2), ready
    /// for `eth_sendRawTransaction`.
    #[serde(
        rename = "rawTransaction",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::json::hex_opt"
    )]
    pub raw_transaction: Option<Vec<u8>>,
    /// For a transaction: its hash (keccak-256 of the signed transaction).
    #[serde(rename = "transactionHash", default, skip_serializing_if = "Option::is_none")]
    pub transaction_hash: Option<B256>,
    /// A quote binding the address to this digest.
    pub attestation: Attestation,
}

/// A fresh random 32-byte challenge (what a verifier sends to `Attest`).
pub fn random_challenge() -> Result<tee_core::B256, getrandom::Error> {
    let mut c = [0u8; 32];
    getrandom::fill(&mut c)?;
    Ok(tee_core::B256(c))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    /// The JSON's keys are camelCase, as in the Ethereum JSON-RPC; an
    /// attestation an earlier version wrote in snake_case still reads, to
    /// the same value.
    #[test]
    fn attestation_json_is_camel_case_and_earlier_files_still_read() {
        let a = Attestation {
            provider: "phala-dstack".into(),
            address: Address([0x11; 20]),
            bound: Bound::ActionDigest(B256([0x22; 32])),
            report_data: FixedBytes([0x33; 64]),
            quote: vec![1, 2, 3],
            event_log: Vec::new(),
            key_chain: Some(KeyChain {
                purpose: "signing".into(),
                domain: None,
                public_key: FixedBytes([0x02; 33]),
                app_signature: FixedBytes([0x44; 65]),
                kms_signature: FixedBytes([0x55; 65]),
            }),
            backend: "Simulated".into(),
        };
        let json = serde_json::to_value(&a).unwrap();
        let keys = |v: &serde_json::Value| {
            v.as_object().unwrap().keys().cloned().collect::<std::collections::BTreeSet<_>>()
        };
        let want = ["address", "backend", "bound", "eventLog", "keyChain", "provider", "quote"];
        assert_eq!(keys(&json), want.into_iter().chain(["reportData"]).map(String::from).collect());
        let chain = ["appSignature", "kmsSignature", "publicKey", "purpose"];
        assert_eq!(keys(&json["keyChain"]), chain.into_iter().map(String::from).collect());

        let mut old = json.to_string();
        for (new, was) in [
            ("reportData", "report_data"),
            ("eventLog", "event_log"),
            ("keyChain", "key_chain"),
            ("publicKey", "public_key"),
            ("appSignature", "app_signature"),
            ("kmsSignature", "kms_signature"),
        ] {
            old = old.replace(&format!("\"{new}\""), &format!("\"{was}\""));
        }
        assert!(old.contains("\"report_data\""));
        assert_eq!(serde_json::from_str::<Attestation>(&old).unwrap(), a);
    }
}
