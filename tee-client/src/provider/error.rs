//! Why a provider call failed: [`ProviderError`].

use tee_core::Address;
use tee_core::protocol::{DeviceError, MAX_PATH_LEN};

use crate::ClientError;
use crate::approval::ApprovalRequest;

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The signer could not be reached or answered nonsense.
    #[error("signer at {endpoint}: {source}")]
    Client {
        /// Where.
        endpoint: String,
        /// Why.
        source: ClientError,
    },
    /// The signer refused, with its typed reason.
    #[error("the signer refused: {0:?}")]
    Refused(DeviceError),
    /// The slot's policy refused the action: the device's typed reason
    /// (`Denied` or `DeniedAt`) and, in words, what the action was read as
    /// and the limit it met ([`crate::explain::refusal`], from the slot's
    /// policy read back on the same connection).
    #[error("the signer {why}")]
    Denied {
        /// The device's answer.
        reason: DeviceError,
        /// What the action was read as, the rule's limit and the device's time.
        why: String,
    },
    /// The slot's policy holds the action until enough of its approvers
    /// approve it: the request they sign ([`crate::approval`]); sign it
    /// again with their signatures (`sign_*_approved`).
    #[error(
        "the signer holds this action for approval: {have} of {need} approvers have approved \
         (approvers {approvers:?}); have them sign the approval of digest {digest} at sequence \
         {sequence}, expiring {expires} (`tee-signer approve`), then sign again with them",
        have = .0.have, need = .0.need, approvers = .0.approvers, digest = .0.digest,
        sequence = .0.sequence, expires = .0.expires
    )]
    ApprovalRequired(Box<ApprovalRequest>),
    /// Generating a key needs the admin key, which this provider lacks.
    #[error("generate_key needs the signer's admin key (PhalaDstackProvider::with_admin)")]
    NotAdmin,
    /// A derivation path longer than the signer takes.
    #[error("derivation path is longer than {MAX_PATH_LEN} bytes")]
    PathTooLong,
    /// An action with a field longer than the signer takes (its
    /// `DeviceInfo` bounds: a microcontroller's are smaller than the std
    /// signer's); a message longer than its `message` bound among them.
    #[error("the signer takes {} up to {} (DeviceInfo bounds); this action's is {}", .0.field, .0.max, .0.len)]
    OverBound(tee_core::action::OverBound),
    /// A JSON action that is not one the signer takes.
    #[error("{0}")]
    Action(#[from] crate::actions::JsonActionError),
    /// A request naming another signer than the slot's (`from`).
    #[error("the request is from {from}, slot {slot} is {address}")]
    NotFrom {
        /// The request's `from`.
        from: Address,
        /// The slot.
        slot: u8,
        /// The slot's address.
        address: Address,
    },
    /// A signed transaction that cannot be encoded (its action is not one).
    #[error("the signed transaction cannot be encoded: {0}")]
    Transaction(tee_core::Error),
    /// Signed at `sequence`, then the attestation failed: the sequence is
    /// spent; asking again at it gets the same signature (an exact retry).
    #[error(
        "signed at sequence {sequence}; attestation failed: {source}; retry with --sequence \
         {sequence} (the same request gets the same signature)"
    )]
    AttestationFailed {
        /// The sequence signed at.
        sequence: u64,
        /// Why the attestation failed.
        source: Box<ProviderError>,
    },
    /// Evidence that does not parse.
    #[error("the signer's {what} does not parse: {message}")]
    Evidence {
        /// Which evidence.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The TCB could not be read: no collateral, or the PCCS did not
    /// answer ([`super::PhalaDstackProvider::tcb`]).
    #[error("the TCB: {0}")]
    Tcb(tee_verify::Failure),
}
