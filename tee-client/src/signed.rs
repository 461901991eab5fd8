//! What the provider hands back: a key in the signer with its
//! attestation, and a signed action with its signature.

use serde::{Deserialize, Serialize};
use tee_core::Address;
use tee_core::primitives::FixedBytes;
use tee_verify::{Attestation, TeeSignature};

/// A key in the signer, with an attestation bound to a fresh challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeeKey {
    /// The signer's slot.
    pub slot: u8,
    /// The address.
    pub address: Address,
    /// SEC1 compressed public key.
    #[serde(alias = "public_key")]
    pub public_key: FixedBytes<33>,
    /// The dstack derivation path, for a derived key.
    pub path: Option<String>,
    /// Proof that the key is in the TEE.
    pub attestation: Attestation,
}

/// A signed action and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedJson {
    /// The action as decoded.
    pub action: crate::actions::OwnedAction,
    /// Its attested signature.
    pub signature: TeeSignature,
}

impl SignedJson {
    /// The signature's JSON with the action beside it, for people: `kind`,
    /// `action` (its one-line description) and `request` (the action as a
    /// wallet would send it).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::to_value(&self.signature).unwrap_or_default();
        if let Some(o) = out.as_object_mut() {
            o.insert("kind".into(), self.action.view().kind().name().into());
            o.insert("action".into(), self.action.to_string().into());
            if let Some(request) = crate::actions::to_json(&self.action.view()) {
                o.insert("request".into(), request);
            }
        }
        out
    }
}
