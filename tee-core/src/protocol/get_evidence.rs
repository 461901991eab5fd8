//! `0x0C` GetEvidence: what a verifier needs besides the quote, in chunks.

use serde::{Deserialize, Serialize};

use super::Command;

/// What a verifier needs besides the quote, from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EvidencePart {
    /// The event log that came with the backend's last quote (dstack's
    /// JSON event log): it replays to RTMR3 and names the app and its
    /// compose hash.
    EventLog,
    /// The slot's derived key's signature chain from the backend's KMS
    /// (JSON), up to the KMS root.
    KeyChain,
}

/// `0x0C` GetEvidence: a chunk of evidence, from byte `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEvidence {
    /// Slot number.
    pub slot: u8,
    /// Which evidence.
    pub part: EvidencePart,
    /// First byte wanted.
    pub offset: u32,
}

/// Response to [`GetEvidence`]: up to [`crate::limits::MAX_EVIDENCE_CHUNK`] bytes from the
/// offset; an offset at or past `total` gets none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceChunk<'a> {
    /// The evidence's whole length.
    pub total: u32,
    /// The bytes from the offset.
    #[serde(borrow)]
    pub data: &'a [u8],
}

impl Command for GetEvidence {
    const CODE: u8 = 0x0C;
    type Request<'a> = Self;
    type Response<'a> = EvidenceChunk<'a>;
}
