//! The sans-IO signing device: key slots, per-slot policy, anti-replay and
//! an audit log, behind [`Device::handle`], which takes a request frame and
//! writes a response frame. It touches no I/O: the outside world is the small
//! traits re-exported here, which a [`Backend`] implements.
//!
//! Anti-replay: each slot has a high-water mark: a sequence and a commitment
//! to the signing key's address and the action digest signed at it. A `Sign`
//! at or below the mark is refused, except an exact retry (same sequence,
//! same action, same key), which RFC 6979 answers with the same signature.
//! The key is in the commitment because an admin may put a new key into a
//! slot: the mark stays, and a retry must not be re-signed by the new key.
//! The new mark is committed through [`CounterStore::commit_counter`] before
//! the signature is computed, and the signature leaves only once the mark
//! is durable (at once, or with its [`Reply`]'s ticket where the store
//! commits in groups), so whatever crashes where, no two different
//! signatures exist for one (slot, sequence).
//!
//! One concern per file: `backend` (the traits), `record` (a slot as
//! stored), `slot` (a slot's state, anti-replay and `Sign`), `admin` (admin
//! authorization and the commands that change slots), `attest` (quotes and
//! evidence), `audit` (the hash-chained ring), `query` (read-only commands)
//! and `dispatch` (frames in, one handler per command, frames out).

mod backend;

mod admin;
mod attest;
mod audit;
mod dispatch;
mod query;
mod record;
mod reply;
mod slot;

pub use attest::PendingQuote;
pub use audit::audit_chain_hash;
pub use backend::{
    AuditStore, AuditedMark, Backend, BackendError, Clock, CounterId, CounterStore, EvidenceRef,
    HighWater, KeyStore, QuoteSource, Rng, Ticket,
};
pub use dispatch::{DecodedSign, Incoming, PendingSign, Step};
pub use reply::Reply;
pub use slot::{SignClaim, SpendAsk, Spent, retry_commitment};

use crate::action::ActionBounds;
use crate::limits::{MAX_SLOTS, NUM_SLOTS};
use crate::primitives::{Address, B256};
use crate::protocol::{AuditEntry, DeviceError, Outcome};
use crate::signer::SigningKey;
use audit::AuditLog;
use slot::Slot;

/// Provisioning facts a device is opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The device's identity (bound into admin signatures).
    pub device_id: B256,
    /// The address whose EIP-712 signatures authorize admin commands.
    pub admin: Address,
    /// How long an action's fields may be ([`ActionBounds::MCU`],
    /// [`ActionBounds::HOST`]): `DeviceInfo` reports them, `Sign` refuses
    /// a longer field. The receive buffer in front of the device must hold
    /// a frame of [`crate::limits::request_frame_len`] of them.
    pub bounds: ActionBounds,
}

/// The device. See the module documentation.
///
/// `SLOTS` is how many key slots it has: [`NUM_SLOTS`] by default, at most
/// [`MAX_SLOTS`]; a microcontroller offers fewer to save RAM (a slot is
/// about 750 bytes), a host more (the std signer: 255). `DeviceInfo`
/// reports the number.
pub struct Device<B: Backend, const SLOTS: usize = NUM_SLOTS> {
    backend: B,
    config: DeviceConfig,
    slots: [Slot; SLOTS],
    /// The last admin counter accepted and its command's payload hash.
    admin_mark: Option<HighWater>,
    /// The key that signs the device's admin statements (`AdminState`).
    identity: Option<SigningKey>,
    audit: AuditLog,
    /// An audit entry the ring has and the backend has not yet been handed
    /// (a quote made by the backend itself borrowed it when the entry was
    /// made); handed over before the next request.
    unsynced: Option<(AuditEntry, B256)>,
    /// A `SetPolicy`'s admin signature, checked before its policy was
    /// decoded ([`Device::pre_authorize`]): the command code, counter and
    /// payload hash the admin signed, if the admin did. Set for every
    /// `SetPolicy` frame, read by its authorization only.
    pre_auth: Option<(u8, u64, B256)>,
}

impl<B: Backend, const SLOTS: usize> core::fmt::Debug for Device<B, SLOTS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device")
            .field("config", &self.config)
            .field("kind", &self.backend.kind())
            .finish_non_exhaustive()
    }
}

/// A backend failure as a client sees it.
fn map_backend(e: BackendError) -> DeviceError {
    match e {
        BackendError::Unsupported => DeviceError::Unsupported,
        BackendError::Failed => DeviceError::Backend,
        BackendError::Used { stored } => DeviceError::Replay { high_water: stored },
        BackendError::OverCap(refusal) => DeviceError::OverCap(refusal),
    }
}

impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
    /// Opens a device over `backend`'s durable state: [`Device::new`] then
    /// [`Device::load`]. Fails closed: a slot record or counter that cannot
    /// be read is [`DeviceError::Storage`], since anti-replay cannot be
    /// promised without it.
    pub fn open(backend: B, config: DeviceConfig) -> Result<Self, DeviceError> {
        let mut device = Device::new(backend, config);
        device.load()?;
        Ok(device)
    }

    /// A device with every slot empty and nothing loaded yet. Infallible, so
    /// a caller can build the (several KiB) device in place and then
    /// [`Device::load`] it, where RAM is scarce.
    #[inline(never)]
    pub fn new(backend: B, config: DeviceConfig) -> Self {
        const { assert!(SLOTS >= 1 && SLOTS <= MAX_SLOTS, "1 to MAX_SLOTS slots") };
        Device {
            backend,
            config,
            slots: core::array::from_fn(|_| Slot::default()),
            admin_mark: None,
            identity: None,
            audit: AuditLog::new(),
            unsynced: None,
            pre_auth: None,
        }
    }

    /// Loads the slots and counters from the backend's durable state, and
    /// starts the audit log with a boot entry. Fails closed (see
    /// [`Device::open`]); on failure the device must not be used. Not
    /// inlined: on a microcontroller its temporaries (a slot record being
    /// decoded) must not stay in the caller's frame.
    #[inline(never)]
    pub fn load(&mut self) -> Result<(), DeviceError> {
        let Device { backend, slots, .. } = self;
        for (n, slot) in (0..=u8::MAX).zip(slots.iter_mut()) {
            *slot = Slot::default();
            slot.high_water =
                backend.load_counter(CounterId::Slot(n)).map_err(|_| DeviceError::Storage)?;
            if let Some((key, policy)) = record::load(backend, n)? {
                slot.key = Some(key);
                slot.policy = policy;
            }
        }
        self.admin_mark =
            self.backend.load_counter(CounterId::Admin).map_err(|_| DeviceError::Storage)?;
        self.audit = match self.backend.audit_head().map_err(|_| DeviceError::Storage)? {
            Some((next_index, head)) => AuditLog::resume(next_index, head),
            None => AuditLog::new(),
        };
        self.unsynced = None;
        self.log(0, 0, 0, self.config.device_id, Outcome::Ok, false);
        Ok(())
    }

    /// Appends an audit entry to the ring and hands it to the backend's
    /// store (`durable`: on disk before this returns).
    fn log(
        &mut self,
        command: u8,
        slot: u8,
        sequence: u64,
        digest: B256,
        outcome: Outcome,
        durable: bool,
    ) {
        self.sync_audit();
        let (entry, prev) = self.audit.next(command, slot, sequence, digest, outcome);
        // A store that cannot take the entry does not stop the device: the
        // ring has it, and the store's own failure shows at its next write.
        let _ = self.backend.audit_append(&entry, &prev, durable);
        self.audit.push(entry);
    }

    /// Hands the backend an entry it was not given when it was made.
    fn sync_audit(&mut self) {
        if let Some((entry, prev)) = self.unsynced.take() {
            let _ = self.backend.audit_append(&entry, &prev, false);
        }
    }

    /// Gives the device its identity key: the key that signs its admin
    /// statements (`AdminState`) and that `Attest` at
    /// [`DEVICE_SLOT`](crate::protocol::DEVICE_SLOT) binds. A host derives
    /// it from its TEE; without one, `AdminState` is `Unsupported`.
    pub fn set_identity(&mut self, key: SigningKey) {
        self.identity = Some(key);
    }

    /// The identity key's address, if the device has one.
    #[must_use]
    pub fn identity(&self) -> Option<Address> {
        self.identity.as_ref().map(SigningKey::address)
    }

    /// The backend (for the adapter that owns the device).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Closes the device, returning its backend (what survives a restart
    /// is whatever the backend made durable).
    pub fn into_backend(self) -> B {
        self.backend
    }

    fn slot(&self, n: u8) -> Result<&Slot, DeviceError> {
        self.slots.get(usize::from(n)).ok_or(DeviceError::NoSuchSlot)
    }
}
