//! `0x10` SignApproved: `Sign` with the approvals a policy's approval rule
//! asks for (protocol version 12).
//!
//! An action the policy allows but its [`ApprovalRule`](super::ApprovalRule)
//! flags (a kind it names, a value or token amount above its bound) is
//! refused with [`DeviceError::ApprovalRequired`](super::DeviceError::ApprovalRequired)
//! until `threshold` of the rule's approvers have signed this EIP-712
//! message, and it comes back with their signatures:
//!
//! ```text
//! domain  = EIP712Domain(string name,string version)
//!           name "ERC8004TeeSignerApproval", version "1"
//! message = Approval(address signer,uint64 sequence,bytes32 action,uint64 expires)
//!           signer   the slot's key's address
//!           sequence the sequence the signature will be made at
//!           action   the action's digest (what the key signs)
//!           expires  unix seconds, by the device's clock
//! ```
//!
//! Any Ethereum wallet that signs EIP-712 can approve. An approval is good
//! for one signature: it names the key and the sequence, and the device
//! signs at a sequence once (a later request at it is a replay, or an
//! exact retry that releases nothing new). It is good until `expires`, and
//! the device refuses an `expires` further ahead of its clock than the
//! rule's `max_ttl_secs`, so no approval outlives the rule's window. The
//! signature's audit entry is this command's, with which approvers
//! approved ([`Outcome::Approved`](super::Outcome::Approved)).

use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use super::{Command, SignResponse};
use crate::abi::word;
use crate::action::{Action, Eip712Prehashed};
use crate::codec;
use crate::eip712::typed_data_digest;
use crate::error::{Error, Result};
use crate::limits::MAX_POLICY_APPROVERS;
use crate::primitives::{Address, B256, keccak256};

/// The approval domain's name.
pub const APPROVAL_DOMAIN_NAME: &str = "ERC8004TeeSignerApproval";
/// The approval domain's version.
pub const APPROVAL_DOMAIN_VERSION: &str = "1";
const APPROVAL_DOMAIN_TYPE: &[u8] = b"EIP712Domain(string name,string version)";
/// The approval's EIP-712 type.
pub const APPROVAL_TYPE: &str =
    "Approval(address signer,uint64 sequence,bytes32 action,uint64 expires)";
/// Bytes of one approval signature: `r ‖ s ‖ v`.
pub const APPROVAL_LEN: usize = 65;

/// `0x10` SignApproved: [`super::Sign`] with approvals. The action borrows
/// its fields, and `approvals` its bytes, from the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignApproved<'a> {
    /// Slot number.
    pub slot: u8,
    /// Anti-replay sequence, as for `Sign`; the approvals name it.
    pub sequence: u64,
    /// When the approvals expire (unix seconds, the device's clock); the
    /// approvals name it.
    pub expires: u64,
    /// The approvers' signatures over [`approval_digest`], each
    /// [`APPROVAL_LEN`] bytes (`r ‖ s ‖ v`), at most
    /// [`MAX_POLICY_APPROVERS`] of them.
    #[serde(borrow)]
    pub approvals: &'a [u8],
    /// What to sign.
    #[serde(borrow)]
    pub action: Action<'a>,
}

impl Command for SignApproved<'_> {
    const CODE: u8 = 0x10;
    type Request<'a> = SignApproved<'a>;
    type Response<'a> = SignResponse;

    /// The action is the last field; it goes through [`Action::decode`] so an
    /// unknown action tag is reported as such. The approvals are whole
    /// signatures, at most one per approver a policy can name.
    fn decode(body: &[u8]) -> Result<SignApproved<'_>> {
        let (prefix, rest) = postcard::take_from_bytes::<(u8, u64, u64, &[u8])>(body)?;
        let head = body.get(..body.len() - rest.len()).ok_or(Error::Malformed)?;
        if !codec::encodes_to(&prefix, head) {
            return Err(Error::NonCanonical);
        }
        let (slot, sequence, expires, approvals) = prefix;
        if !approvals.len().is_multiple_of(APPROVAL_LEN) {
            return Err(Error::Malformed);
        }
        if approvals.len() > MAX_POLICY_APPROVERS * APPROVAL_LEN {
            return Err(Error::TooLong);
        }
        Ok(SignApproved { slot, sequence, expires, approvals, action: Action::decode(rest)? })
    }
}

/// A `SignApproved`'s approvals, borrowed from its frame: what the device
/// checks them against besides the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approvals<'a> {
    /// When they expire.
    pub expires: u64,
    /// The signatures, [`APPROVAL_LEN`] bytes each.
    pub signatures: &'a [u8],
}

/// The approval domain's separator.
#[must_use]
pub fn approval_domain_separator() -> B256 {
    let mut h = Keccak256::new();
    h.update(keccak256(APPROVAL_DOMAIN_TYPE).0);
    h.update(keccak256(APPROVAL_DOMAIN_NAME.as_bytes()).0);
    h.update(keccak256(APPROVAL_DOMAIN_VERSION.as_bytes()).0);
    B256(h.finalize().into())
}

/// `hashStruct(Approval)` of an approval of the action whose digest is
/// `action`, to be signed by `signer` at `sequence`, good until `expires`.
#[must_use]
pub fn approval_struct_hash(signer: &Address, sequence: u64, action: &B256, expires: u64) -> B256 {
    let mut h = Keccak256::new();
    h.update(keccak256(APPROVAL_TYPE.as_bytes()).0);
    h.update(word::address(signer));
    h.update(word::uint(sequence));
    h.update(action.0);
    h.update(word::uint(expires));
    B256(h.finalize().into())
}

/// What an approver signs: the EIP-712 digest of that approval.
#[must_use]
pub fn approval_digest(signer: &Address, sequence: u64, action: &B256, expires: u64) -> B256 {
    let hash = approval_struct_hash(signer, sequence, action, expires);
    typed_data_digest(&approval_domain_separator(), &hash)
}

/// The approval as an action any signer can sign (an [`Eip712Prehashed`]
/// in the approval domain): how a key of this project approves.
#[must_use]
pub fn approval_action(
    signer: &Address,
    sequence: u64,
    action: &B256,
    expires: u64,
) -> Action<'static> {
    Action::Eip712Prehashed(Eip712Prehashed {
        domain_separator: approval_domain_separator(),
        struct_hash: approval_struct_hash(signer, sequence, action, expires),
    })
}

/// Why an action waits for approvals: how many of the rule's approvers
/// approved it (0 for a plain `Sign`), how many must, and the latest
/// `expires` the device takes now (its clock plus the rule's
/// `max_ttl_secs`). Small, as [`super::CapRefusal`] is: it rides in every
/// `Result<_, DeviceError>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ApprovalNeed {
    /// Distinct approvers whose approvals verified.
    pub have: u8,
    /// The rule's threshold.
    pub need: u8,
    /// The latest `expires` the device takes now: its clock plus the rule's
    /// `max_ttl_secs` (unix seconds, big-endian, so the error stays aligned
    /// to 4).
    pub expires_by_be: [u8; 8],
}

impl ApprovalNeed {
    /// The latest `expires` the device takes now.
    #[must_use]
    pub const fn expires_by(&self) -> u64 {
        u64::from_be_bytes(self.expires_by_be)
    }
}
