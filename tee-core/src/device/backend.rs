//! What a device needs from the world it runs in: small traits a board or
//! a host implements. Each operation either succeeds or fails coarsely
//! ([`BackendError`]); the device turns failures into typed responses and
//! never forwards backend detail to a client.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::slot::Spent;
use crate::policy::SpendWindow;
use crate::primitives::{Address, B256};
use crate::protocol::{AuditEntry, BackendKind};

/// A backend operation failed. Deliberately coarse: the device maps it to a
/// typed response and never forwards backend detail to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BackendError {
    /// The backend does not offer this.
    Unsupported,
    /// It tried and failed (I/O, power, hardware).
    Failed,
    /// A counter store that devices holding the same key share (replicas
    /// of one app) already holds a mark at or above this one, for another
    /// action: the sequence is used ([`CounterStore::commit_signature_mark`]).
    Used {
        /// The shared mark.
        stored: u64,
    },
    /// A counter store whose spend windows replicas share refused the
    /// mark's reservation ([`crate::device::SignClaim::spend`]): the
    /// window has less than the action's value left. Nothing was raised.
    OverCap(crate::protocol::CapRefusal),
}

/// Randomness for key generation.
pub trait Rng {
    /// Fills `buf` with cryptographically secure random bytes.
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), BackendError>;
}

/// Wall-clock time, for deadlines and rate limits.
pub trait Clock {
    /// Unix time in seconds, or `None` where the device has no trusted clock.
    fn now(&mut self) -> Option<u64>;
}

/// Durable storage of slot records, and the backend's key derivation.
pub trait KeyStore {
    /// Reads slot `slot`'s record into `buf`; `Ok(None)` if the slot is empty.
    fn load_slot(&mut self, slot: u8, buf: &mut [u8]) -> Result<Option<usize>, BackendError>;
    /// Replaces slot `slot`'s record; returns only once it is durable, and a
    /// crash leaves either the old or the new record.
    fn store_slot(&mut self, slot: u8, record: &[u8]) -> Result<(), BackendError>;
    /// The backend's key for `path` (dstack `GetKey`); `Unsupported` where
    /// there is no key derivation.
    fn derive_key(&mut self, path: &str) -> Result<Zeroizing<[u8; 32]>, BackendError>;
}

/// Which durable counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CounterId {
    /// A slot's anti-replay high-water mark.
    Slot(u8),
    /// The last admin counter used.
    Admin,
}

/// A durable counter value with what it was committed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HighWater {
    /// The sequence (or admin counter).
    pub value: u64,
    /// For a slot, [`super::retry_commitment`] of the signer and the action
    /// digest; for the admin counter, the command's payload hash.
    pub digest: B256,
}

/// How far a backend's writes had reached when a response was made: the
/// response may leave only once they are durable up to here. A backend that
/// commits as it writes never gives one; a host that writes now and makes
/// many writes durable with one sync (group commit) does
/// ([`CounterStore::ticket`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ticket(pub u64);

/// A mark to commit with the audit entry that records it, in one durable
/// write ([`CounterStore::commit_counter_audited`]).
#[derive(Debug, Clone, Copy)]
pub struct AuditedMark<'a> {
    /// The new value.
    pub mark: &'a HighWater,
    /// The audit entry that records it.
    pub entry: &'a AuditEntry,
    /// The audit chain's hash before the entry.
    pub prev: &'a B256,
    /// A signature's spend window (the native value's or a token's) with
    /// its reservation in it, where the slot's policy caps spending:
    /// committed in the same write as the mark, so a restart finds the
    /// reservation wherever it finds the mark. Only a store that
    /// [`CounterStore::reserves_spend`] is given one.
    pub spend: Option<&'a Spent>,
}

/// Durable, monotonic counters.
///
/// A store may defer durability: `commit_counter` then returns once the
/// value is written (in order after every earlier write), and
/// [`CounterStore::ticket`] says how far writes reached. The device then
/// hands each response out as a [`Reply`](super::Reply) carrying that
/// ticket, which may leave only after the caller had the store make it
/// durable (one sync shared by every request that arrived meanwhile), or
/// [`Device::handle`](super::Device::handle) makes it durable itself
/// before it returns. Either way no signature leaves before its mark is
/// durable.
pub trait CounterStore {
    /// Commits a mark together with the audit entry that records it, in
    /// one durable write, where the backend keeps an audit log
    /// ([`AuditStore`]); by default the counter alone.
    fn commit_counter_audited(
        &mut self,
        id: CounterId,
        m: AuditedMark<'_>,
    ) -> Result<(), BackendError> {
        self.commit_counter(id, m.mark)
    }

    /// Commits the mark of a signature by `signer` (slot `slot`'s key) with
    /// the audit entry that records it; by default
    /// [`CounterStore::commit_counter_audited`]. A store that replicas
    /// holding the same key share claims the (key, sequence) there first,
    /// and answers [`BackendError::Used`] if another replica signed another
    /// action at it (the same action is an exact retry: `Ok`).
    fn commit_signature_mark(
        &mut self,
        slot: u8,
        signer: &Address,
        m: AuditedMark<'_>,
    ) -> Result<(), BackendError> {
        let _ = signer;
        self.commit_counter_audited(CounterId::Slot(slot), m)
    }

    /// Whether the store commits [`AuditedMark::spend`] with the mark and
    /// reads it back ([`CounterStore::load_spend`]), or keeps the spend
    /// window where the replicas of a key share it and decides the
    /// reservation there with the mark's claim
    /// ([`crate::device::SignClaim::spend`], refused with
    /// [`BackendError::OverCap`]): only then does the device take a policy
    /// with a spend cap (`Unsupported` otherwise). By default not: a store
    /// that dropped the reservation would let a restart spend the window
    /// again.
    fn reserves_spend(&self) -> bool {
        false
    }

    /// Slot `slot`'s spend window of `asset` (`None`: wei; else a token's)
    /// as last committed with its mark. A store whose windows are shared
    /// answers `None` (a fresh window: the device then refuses only an
    /// amount above the cap by itself) and decides the reservation with
    /// the claim.
    fn load_spend(
        &mut self,
        slot: u8,
        asset: Option<&Address>,
    ) -> Result<Option<SpendWindow>, BackendError> {
        let _ = (slot, asset);
        Ok(None)
    }

    /// The last committed value, if any.
    fn load_counter(&mut self, id: CounterId) -> Result<Option<HighWater>, BackendError>;
    /// Commits a new value: durable when this returns, or, for a store that
    /// defers, once its [`CounterStore::ticket`] is; a crash leaves either
    /// the old or the new value. The device commits only values above the
    /// current one (it checks that itself, for every backend), so a store
    /// need not read before it writes.
    fn commit_counter(&mut self, id: CounterId, value: &HighWater) -> Result<(), BackendError>;

    /// Where writes reached that are not durable yet; `None` when every
    /// write is (the default: a store that commits as it writes).
    fn ticket(&mut self) -> Option<Ticket> {
        None
    }

    /// Makes every write up to `ticket` durable before it returns. A
    /// failure means those writes may be lost: nothing that depends on
    /// them may leave.
    fn make_durable(&mut self, ticket: Ticket) -> Result<(), BackendError> {
        let _ = ticket;
        Ok(())
    }
}

/// Which evidence a backend is asked for ([`QuoteSource::evidence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EvidenceRef<'a> {
    /// The event log of the last quote.
    EventLog,
    /// The signature chain of the key derived at this path.
    KeyChain(&'a str),
}

/// TDX quotes (or none).
pub trait QuoteSource {
    /// A quote over `report_data`, borrowed from the backend;
    /// `Unsupported` where there is no TEE.
    fn quote(&mut self, report_data: &[u8; 64]) -> Result<&[u8], BackendError>;

    /// The whole of a piece of evidence, serialized as the backend keeps it
    /// (the device pages it out); `Unsupported` where there is none.
    fn evidence(&mut self, which: EvidenceRef<'_>) -> Result<&[u8], BackendError> {
        let _ = which;
        Err(BackendError::Unsupported)
    }
}

/// Where the audit chain is kept beyond the device's RAM ring: a host's
/// state directory. A board without one keeps the defaults: the chain
/// lives in RAM and starts again at every boot.
pub trait AuditStore {
    /// The stored chain's next index and head hash, to go on from; `None`
    /// to start a new chain at 0.
    fn audit_head(&mut self) -> Result<Option<(u64, B256)>, BackendError> {
        Ok(None)
    }

    /// Keeps `entry` (`prev`: the chain hash before it). With `durable` it
    /// returns only once the entry is on disk; otherwise it becomes durable
    /// with the next durable write.
    fn audit_append(
        &mut self,
        entry: &AuditEntry,
        prev: &B256,
        durable: bool,
    ) -> Result<(), BackendError> {
        let _ = (entry, prev, durable);
        Ok(())
    }

    /// Entry `index` and the chain hash before it, if kept.
    fn audit_entry(&mut self, index: u64) -> Result<Option<(AuditEntry, B256)>, BackendError> {
        let _ = index;
        Ok(None)
    }

    /// The oldest index kept (`u64::MAX`: none).
    fn audit_oldest(&mut self) -> u64 {
        u64::MAX
    }
}

/// Everything a device needs from the world it runs in.
pub trait Backend: Rng + Clock + KeyStore + CounterStore + QuoteSource + AuditStore {
    /// Whether the device takes `ImportMark` (marks carried from another
    /// state directory or host). A board whose flash has no room for it
    /// says `false`: the command is then answered `Unsupported` and its code
    /// is not in the image (a microcontroller's marks live in its own flash,
    /// which no host puts back).
    const IMPORTS_MARKS: bool = true;

    /// Whether the device takes approvals (`SignApproved`, a policy's
    /// approval rule), which need a trusted clock to bound them. A board
    /// without one says `false`: `SignApproved` is answered `Unsupported`,
    /// a policy with an approval rule is refused, and none of that code is
    /// in the image.
    const APPROVALS: bool = true;

    /// What `DeviceInfo` reports.
    fn kind(&self) -> BackendKind;
    /// [`crate::protocol::capability`] bits.
    fn capabilities(&self) -> u32;
}
