//! `0x0B` AttestAction: a quote binding a slot's address to the digest it
//! signed last (a per-action attestation).

use serde::{Deserialize, Serialize};

use super::{AttestResponse, Command};
use crate::primitives::B256;

/// `0x0B` AttestAction: a TDX quote whose `report_data` binds the slot's
/// address to the digest of the action it signed last, as a per-action
/// attestation ([`crate::binding::Purpose::ActionDigest`]). Only the action
/// at the slot's high-water mark can be attested this way, and only if this
/// slot's key signed it: the device never binds a digest it did not sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestAction {
    /// Slot number.
    pub slot: u8,
    /// The sequence the action was signed at (the slot's high-water mark).
    pub sequence: u64,
    /// The signed action's digest.
    pub digest: B256,
}

impl Command for AttestAction {
    const CODE: u8 = 0x0B;
    type Request<'a> = Self;
    type Response<'a> = AttestResponse<'a>;
}
