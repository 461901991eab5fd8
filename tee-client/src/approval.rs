//! m-of-n approvals from the client's side: what an agent gets back when
//! the slot's policy holds its action for approval ([`ApprovalRequest`]:
//! the EIP-712 typed data its approvers sign, with any wallet), how an
//! approver signs it with a key of its own ([`approve`]), and what the
//! agent sends back ([`Approvals`]). The approval's type and digest are
//! tee-core's (`tee_core::protocol::approval_digest`); this module writes
//! them as JSON and checks what comes back against them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tee_core::protocol::{
    APPROVAL_DOMAIN_NAME, APPROVAL_DOMAIN_VERSION, APPROVAL_LEN, ApprovalNeed, approval_action,
    approval_digest,
};
use tee_core::{Address, B256, Signature, SigningKey};

/// An action the slot's policy holds until `need` of `approvers` approve
/// it: everything an approver needs to check and sign, as JSON (camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    /// The slot.
    pub slot: u8,
    /// The slot's key's address (the approval names it).
    pub signer: Address,
    /// The sequence the signature will be made at (the approval names it;
    /// sign nothing else at it before the approvals come back).
    pub sequence: u64,
    /// The action's digest: what the key will sign.
    pub digest: B256,
    /// When the approvals expire: the latest the device took when it
    /// refused (its clock plus the rule's `max_ttl_secs`).
    pub expires: u64,
    /// How many distinct approvers must approve.
    pub need: u8,
    /// How many had (0 for a request without approvals).
    pub have: u8,
    /// Who may approve (from the slot's policy).
    pub approvers: Vec<Address>,
    /// The action as the agent asked for it (its JSON), when it came as
    /// JSON: an approver reads it and checks it hashes to `digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Value>,
}

impl ApprovalRequest {
    /// The request for `need`, an action of digest `digest` to be signed by
    /// `signer` at `sequence`.
    #[must_use]
    pub fn new(
        slot: u8,
        signer: Address,
        sequence: u64,
        digest: B256,
        need: ApprovalNeed,
        approvers: Vec<Address>,
    ) -> ApprovalRequest {
        ApprovalRequest {
            slot,
            signer,
            sequence,
            digest,
            expires: need.expires_by(),
            need: need.need,
            have: need.have,
            approvers,
            action: None,
        }
    }

    /// The EIP-712 typed data an approver signs (`eth_signTypedData_v4`,
    /// eth-account's `sign_typed_data(full_message=…)`, viem's
    /// `signTypedData`): numbers as decimal strings above 2^53.
    #[must_use]
    pub fn typed_data(&self) -> Value {
        json!({
            "types": {
                "EIP712Domain": [
                    { "name": "name", "type": "string" },
                    { "name": "version", "type": "string" },
                ],
                "Approval": [
                    { "name": "signer", "type": "address" },
                    { "name": "sequence", "type": "uint64" },
                    { "name": "action", "type": "bytes32" },
                    { "name": "expires", "type": "uint64" },
                ],
            },
            "primaryType": "Approval",
            "domain": { "name": APPROVAL_DOMAIN_NAME, "version": APPROVAL_DOMAIN_VERSION },
            "message": {
                "signer": self.signer.to_string(),
                "sequence": number(self.sequence),
                "action": self.digest.to_string(),
                "expires": number(self.expires),
            },
        })
    }

    /// The digest an approver's signature is over.
    #[must_use]
    pub fn digest_to_sign(&self) -> B256 {
        approval_digest(&self.signer, self.sequence, &self.digest, self.expires)
    }

    /// Who signed `signature` over this request (`None`: it recovers to no
    /// key, or is not a signature).
    #[must_use]
    pub fn approver_of(&self, signature: &[u8; APPROVAL_LEN]) -> Option<Address> {
        Signature::from_bytes(signature).ok()?.recover_address(&self.digest_to_sign()).ok()
    }
}

/// A JSON number, or a decimal string above 2^53 (as the Ethereum JSON-RPC
/// writes them).
fn number(v: u64) -> Value {
    if v < 1 << 53 { json!(v) } else { json!(v.to_string()) }
}

/// An approver's signature over `request`, made with `key`.
pub fn approve(request: &ApprovalRequest, key: &SigningKey) -> Result<[u8; 65], tee_core::Error> {
    let action =
        approval_action(&request.signer, request.sequence, &request.digest, request.expires);
    Ok(key.sign(&action)?.signature.to_bytes())
}

/// Approvals an agent sends back with its action: the sequence and expiry
/// they name and the approvers' signatures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Approvals {
    /// The sequence they name.
    pub sequence: u64,
    /// When they expire.
    pub expires: u64,
    /// The approvers' signatures (`r ‖ s ‖ v`).
    pub signatures: Vec<[u8; 65]>,
}

impl Approvals {
    /// `signatures` over `request`.
    #[must_use]
    pub fn of(request: &ApprovalRequest, signatures: Vec<[u8; 65]>) -> Approvals {
        Approvals { sequence: request.sequence, expires: request.expires, signatures }
    }

    /// The signatures as the wire carries them, one after the other.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        self.signatures.concat()
    }
}

/// A 65-byte signature from `0x`-prefixed hex.
pub fn signature_from_hex(text: &str) -> Option<[u8; 65]> {
    tee_core::hex::decode::<65>(text.trim()).ok()
}
