//! The hash-chained audit log: every signature, refusal and admin change.
//! The newest entries are in RAM; a backend that keeps the chain durably
//! ([`super::AuditStore`]) is handed every entry, and the chain goes on
//! across restarts. Entry `i`'s hash is `keccak256(hash(i-1) ‖ postcard(entry i))`,
//! so a reader can check that what it reads joins what it read before.

use sha3::{Digest, Keccak256};

use crate::limits::AUDIT_CAPACITY;
use crate::primitives::B256;
use crate::protocol::{AuditEntry, Outcome};

/// The hash-chained audit ring: the newest entries, in RAM. Older ones
/// are the backend's to keep ([`super::AuditStore`]), if it keeps any.
pub(super) struct AuditLog {
    ring: [Option<(AuditEntry, B256)>; AUDIT_CAPACITY],
    next_index: u64,
    head: B256,
}

/// A postcard flavor that hashes instead of storing.
struct HashFlavor(Keccak256);

impl postcard::ser_flavors::Flavor for HashFlavor {
    type Output = B256;
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.update([b]);
        Ok(())
    }
    fn try_extend(&mut self, b: &[u8]) -> postcard::Result<()> {
        self.0.update(b);
        Ok(())
    }
    fn finalize(self) -> postcard::Result<B256> {
        Ok(B256(self.0.finalize().into()))
    }
}

/// `keccak256(prev ‖ postcard(entry))`: the audit chain step.
#[must_use]
pub fn audit_chain_hash(prev: &B256, entry: &AuditEntry) -> B256 {
    let mut h = Keccak256::new();
    h.update(prev.0);
    postcard::serialize_with_flavor(entry, HashFlavor(h)).unwrap_or_default()
}

impl AuditLog {
    pub(super) fn new() -> Self {
        AuditLog { ring: [None; AUDIT_CAPACITY], next_index: 0, head: B256::ZERO }
    }

    /// Goes on from a stored chain's head.
    pub(super) fn resume(next_index: u64, head: B256) -> Self {
        AuditLog { next_index, head, ..AuditLog::new() }
    }

    /// The next entry, and the chain hash before it, not yet appended.
    pub(super) fn next(
        &self,
        command: u8,
        slot: u8,
        sequence: u64,
        digest: B256,
        outcome: Outcome,
    ) -> (AuditEntry, B256) {
        (AuditEntry { index: self.next_index, command, slot, sequence, digest, outcome }, self.head)
    }

    /// Appends `entry`, made by [`AuditLog::next`] since the last append.
    pub(super) fn push(&mut self, entry: AuditEntry) {
        let pos = (entry.index % AUDIT_CAPACITY as u64) as usize;
        if let Some(cell) = self.ring.get_mut(pos) {
            *cell = Some((entry, self.head));
        }
        self.head = audit_chain_hash(&self.head, &entry);
        self.next_index = entry.index + 1;
    }

    /// Entry `index` and the hash before it, if the ring still holds it.
    pub(super) fn get(&self, index: u64) -> Option<(AuditEntry, B256)> {
        let cell = self.ring.get((index % AUDIT_CAPACITY as u64) as usize)?;
        cell.filter(|(e, _)| e.index == index)
    }

    /// The oldest index the ring holds.
    pub(super) fn oldest(&self) -> u64 {
        self.next_index.saturating_sub(AUDIT_CAPACITY as u64)
    }

    pub(super) fn next_index(&self) -> u64 {
        self.next_index
    }

    pub(super) fn head(&self) -> B256 {
        self.head
    }
}
