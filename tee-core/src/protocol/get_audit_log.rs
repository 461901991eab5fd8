//! `0x08` GetAuditLog: the hash-chained audit log, from an index on.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use super::{Command, DeviceError};
use crate::limits::AUDIT_BATCH;
use crate::primitives::B256;

/// `0x08` GetAuditLog: entries from index `from` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAuditLog {
    /// First index wanted.
    pub from: u64,
}

/// What happened, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// Done.
    Ok,
    /// An exact retry answered with the earlier signature.
    Retry,
    /// Refused, and why.
    Refused(DeviceError),
    /// Signed with approvals (`SignApproved`, protocol version 12): which
    /// of the policy's approvers approved, one bit each by their place in
    /// the rule's list.
    Approved(u8),
}

/// One audit log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AuditEntry {
    /// Position in the chain (a device without a durable log starts it
    /// again at 0 at every boot; a boot is the entry with command 0).
    pub index: u64,
    /// The command code (0 for the boot entry).
    pub command: u8,
    /// The slot concerned (0 where none).
    pub slot: u8,
    /// The sequence (sign) or admin counter (admin commands).
    pub sequence: u64,
    /// The action digest (sign), payload hash (admin), or zero.
    pub digest: B256,
    /// What happened.
    pub outcome: Outcome,
}

/// Response to [`GetAuditLog`]. Entry `i`'s hash is
/// `keccak256(hash(i-1) ‖ postcard(entry i))`; `prev_hash` is the hash
/// before the first entry returned, so a reader can check every batch
/// joins the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLogResponse {
    /// Hash of the entry before the first one returned.
    pub prev_hash: B256,
    /// Up to [`AUDIT_BATCH`] consecutive entries.
    pub entries: Vec<AuditEntry, AUDIT_BATCH>,
    /// Index of the next entry to be written.
    pub next_index: u64,
    /// Hash of the newest entry.
    pub head_hash: B256,
    /// The oldest index the device still keeps (in RAM, or durably where
    /// the backend keeps the chain): a reader whose last index is below it
    /// lost entries. Reading moves nothing: every reader sees the same.
    pub oldest_kept: u64,
}

impl Command for GetAuditLog {
    const CODE: u8 = 0x08;
    type Request<'a> = Self;
    type Response<'a> = AuditLogResponse;
}
