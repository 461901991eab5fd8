//! `0x0D` AdminState: the device's admin state, signed by its identity key,
//! so an admin tool can trust what it reads through any middleman.

use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use super::{Command, admin_domain_separator};
use crate::abi::word;
use crate::eip712::typed_data_digest;
use crate::primitives::{Address, B256, keccak256};
use crate::signer::Signature;

const ADMIN_STATE_TYPE: &[u8] = b"AdminState(bytes32 nonce,uint64 lastCounter,bytes32 lastPayload,\
uint8 slot,address key,bytes32 policyHash,uint64 sequence,bytes32 commitment)";

/// `0x0D` AdminState: the last admin counter the device accepted and the
/// payload hash of that command, and one slot's key, policy hash and
/// anti-replay mark (the highest sequence signed and its commitment), signed
/// by the device's identity key over the reader's `nonce`
/// ([`AdminStatement`]). An admin tool reads the counter to use next (the
/// device accepts only the one after it) and, after a command, confirms it
/// took effect; a middleman can neither forge the answer nor replay an old
/// one. The slot's mark in a statement is what `tee-signer marks export`
/// carries to another state directory or host ([`super::ImportMark`]).
/// `Unsupported` on a device without an identity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminState {
    /// The slot whose key and policy to state ([`super::DEVICE_SLOT`]: none).
    pub slot: u8,
    /// The reader's fresh nonce.
    pub nonce: B256,
}

/// What the identity key signs: an EIP-712 `AdminState(bytes32
/// nonce,uint64 lastCounter,bytes32 lastPayload,uint8 slot,address
/// key,bytes32 policyHash,uint64 sequence,bytes32 commitment)` in the
/// device's admin domain, so any EIP-712 library can check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminStatement {
    /// The reader's nonce, echoed.
    pub nonce: B256,
    /// The last admin counter accepted (0: none yet).
    pub last_counter: u64,
    /// The payload hash of the command accepted at `last_counter`
    /// ([`super::admin_payload_hash`]; zero before the first).
    pub last_payload: B256,
    /// The slot stated.
    pub slot: u8,
    /// The slot's key's address (zero for an empty slot).
    pub key: Address,
    /// keccak-256 of the slot's policy's canonical encoding (zero for an
    /// empty slot).
    pub policy_hash: B256,
    /// The slot's anti-replay mark: the highest sequence its key signed at
    /// (zero, with a zero commitment, for a slot without a mark).
    pub sequence: u64,
    /// What the mark commits to ([`crate::device::retry_commitment`] of the
    /// key and the action's digest; zero: no mark).
    pub commitment: B256,
}

impl AdminStatement {
    /// The EIP-712 digest the identity signs, for the device `device_id`.
    #[must_use]
    pub fn digest(&self, device_id: &B256) -> B256 {
        typed_data_digest(&admin_domain_separator(device_id), &self.struct_hash())
    }

    /// Whether the statement names a mark (a slot that has signed).
    #[must_use]
    pub fn has_mark(&self) -> bool {
        self.commitment != B256::ZERO
    }

    /// `hashStruct(AdminState)`.
    #[must_use]
    pub fn struct_hash(&self) -> B256 {
        let mut h = Keccak256::new();
        h.update(keccak256(ADMIN_STATE_TYPE).0);
        h.update(self.nonce.0);
        h.update(word::uint(self.last_counter));
        h.update(self.last_payload.0);
        h.update(word::uint(u64::from(self.slot)));
        h.update(word::address(&self.key));
        h.update(self.policy_hash.0);
        h.update(word::uint(self.sequence));
        h.update(self.commitment.0);
        B256(h.finalize().into())
    }
}

/// Response to [`AdminState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminStateResponse {
    /// The device's identity key's address (which `Attest` at
    /// [`super::DEVICE_SLOT`] binds).
    pub identity: Address,
    /// What it states.
    pub statement: AdminStatement,
    /// The identity's signature over the statement's digest.
    pub signature: Signature,
}

impl AdminStateResponse {
    /// Whether `signature` is `identity`'s over the statement for
    /// `device_id`. (Whether `identity` is the device's is the reader's
    /// to know: pinned, or bound by an attestation.)
    #[must_use]
    pub fn is_signed(&self, device_id: &B256) -> bool {
        self.signature.recover_address(&self.statement.digest(device_id)) == Ok(self.identity)
    }
}

impl Command for AdminState {
    const CODE: u8 = 0x0D;
    type Request<'a> = Self;
    type Response<'a> = AdminStateResponse;
}
