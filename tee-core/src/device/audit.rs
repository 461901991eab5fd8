//! The hash-chained audit ring: every signature, refusal and admin change,
//! in RAM. Entry `i`'s hash is `keccak256(hash(i-1) ‖ postcard(entry i))`,
//! so a reader can check that what it reads joins what it read before.

use sha3::{Digest, Keccak256};

use crate::limits::AUDIT_CAPACITY;
use crate::primitives::B256;
use crate::protocol::{AuditEntry, AuditLogResponse, Outcome};

/// The hash-chained audit ring.
pub(super) struct AuditLog {
    ring: [Option<(AuditEntry, B256)>; AUDIT_CAPACITY],
    next_index: u64,
    head: B256,
    read_cursor: u64,
    overwritten_unread: u64,
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
        AuditLog {
            ring: [None; AUDIT_CAPACITY],
            next_index: 0,
            head: B256::ZERO,
            read_cursor: 0,
            overwritten_unread: 0,
        }
    }

    pub(super) fn append(
        &mut self,
        command: u8,
        slot: u8,
        sequence: u64,
        digest: B256,
        outcome: Outcome,
    ) {
        let entry = AuditEntry { index: self.next_index, command, slot, sequence, digest, outcome };
        let pos = (self.next_index % AUDIT_CAPACITY as u64) as usize;
        if let Some(cell) = self.ring.get_mut(pos) {
            if let Some((old, _)) = cell
                && old.index >= self.read_cursor
            {
                self.overwritten_unread += 1;
            }
            *cell = Some((entry, self.head));
        }
        self.head = audit_chain_hash(&self.head, &entry);
        self.next_index += 1;
    }

    pub(super) fn read(&mut self, from: u64) -> AuditLogResponse {
        let oldest = self.next_index.saturating_sub(AUDIT_CAPACITY as u64);
        let start = from.max(oldest);
        let mut entries = heapless::Vec::new();
        let mut prev_hash = self.head;
        for index in start..self.next_index {
            let cell = self.ring.get((index % AUDIT_CAPACITY as u64) as usize);
            if let Some(Some((entry, prev))) = cell {
                if entries.is_empty() {
                    prev_hash = *prev;
                }
                if entries.push(*entry).is_err() {
                    break;
                }
            }
        }
        let end = start + entries.len() as u64;
        self.read_cursor = self.read_cursor.max(end);
        AuditLogResponse {
            prev_hash,
            entries,
            next_index: self.next_index,
            head_hash: self.head,
            overwritten_unread: self.overwritten_unread,
        }
    }
}
