//! The sans-IO signing device: key slots, per-slot policy, anti-replay and
//! an audit log, behind [`Device::handle`], which takes a request frame and
//! writes a response frame. It touches no I/O: the outside world is the small
//! traits below, which a [`Backend`] implements.
//!
//! Anti-replay: each slot has a high-water mark: a sequence and a commitment
//! to the signing key's address and the action digest signed at it. A `Sign`
//! at or below the mark is refused, except an exact retry (same sequence,
//! same action, same key), which RFC 6979 answers with the same signature.
//! The key is in the commitment because an admin may put a new key into a
//! slot: the mark stays, and a retry must not be re-signed by the new key.
//! The new mark is committed through [`CounterStore::commit_counter`] before
//! the signature is computed, so whatever crashes where, no two different
//! signatures exist for one (slot, sequence).

use heapless::String;
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};
use zeroize::{Zeroize, Zeroizing};

use crate::binding::{self, Purpose};
use crate::codec;
use crate::error::Error;
use crate::frame::{self, FrameError, Header};
use crate::primitives::{Address, B256, keccak256};
use crate::protocol::{
    AdminCommand, Attest, AttestAction, AttestResponse, AuditEntry, AuditLogResponse, BackendKind,
    Command, DeriveKey, DeviceError, DeviceInfo, DeviceInfoResponse, Echo, EvidenceChunk,
    EvidencePart, FixedBytes, GenerateKey, GetAuditLog, GetEvidence, GetPolicy, GetPublicKey,
    KeyOrigin, MAX_EVIDENCE_CHUNK, MAX_PATH_LEN, MAX_REQUEST_FRAME, NUM_SLOTS, Outcome,
    PROTOCOL_VERSION, Policy, PolicySet, PolicyViolation, PublicKeyResponse, SetPolicy, Sign,
    SignResponse, admin_payload_hash,
};
use crate::signer::SigningKey;

/// Entries the audit ring holds.
pub const AUDIT_CAPACITY: usize = 16;

/// A backend operation failed. Deliberately coarse: the device maps it to a
/// typed response and never forwards backend detail to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BackendError {
    /// The backend does not offer this.
    Unsupported,
    /// It tried and failed (I/O, power, hardware).
    Failed,
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
    /// For a slot, [`retry_commitment`] of the signer and the action
    /// digest; for the admin counter, the command's payload hash.
    pub digest: B256,
}

/// What a slot's high-water mark commits to: `keccak256(address ‖ digest)`.
#[must_use]
pub fn retry_commitment(signer: &Address, digest: &B256) -> B256 {
    let mut h = Keccak256::new();
    h.update(signer.0);
    h.update(digest.0);
    B256(h.finalize().into())
}

/// Durable, monotonic counters.
pub trait CounterStore {
    /// The last committed value, if any.
    fn load_counter(&mut self, id: CounterId) -> Result<Option<HighWater>, BackendError>;
    /// Commits a new value; returns only once it is durable, and a crash
    /// leaves either the old or the new value. The device only commits
    /// values above the current one.
    fn commit_counter(&mut self, id: CounterId, value: &HighWater) -> Result<(), BackendError>;
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

/// Everything a device needs from the world it runs in.
pub trait Backend: Rng + Clock + KeyStore + CounterStore + QuoteSource {
    /// What `DeviceInfo` reports.
    fn kind(&self) -> BackendKind;
    /// [`crate::protocol::capability`] bits.
    fn capabilities(&self) -> u32;
}

/// Provisioning facts a device is opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The device's identity (bound into admin signatures).
    pub device_id: B256,
    /// The address whose EIP-712 signatures authorize admin commands.
    pub admin: Address,
}

/// 32 secret bytes that are zeroized on drop.
#[derive(Serialize, Deserialize)]
struct Secret([u8; 32]);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Where a slot's key comes from, as stored.
#[derive(Serialize, Deserialize)]
enum StoredKey {
    Generated(Secret),
    Derived(String<MAX_PATH_LEN>),
}

/// A slot as stored through [`KeyStore`]. A derived key is stored as its
/// path only and derived again when the device opens.
#[derive(Serialize, Deserialize)]
struct SlotRecord {
    key: StoredKey,
    policy: Policy,
}

/// Upper bound of an encoded [`SlotRecord`].
pub const MAX_SLOT_RECORD: usize = 640;

struct LoadedKey {
    key: SigningKey,
    origin: KeyOrigin,
}

#[derive(Default)]
struct Slot {
    key: Option<LoadedKey>,
    policy: Policy,
    high_water: Option<HighWater>,
    /// Rate-limit window: start time and signatures in it. Volatile: a
    /// reboot starts a new window.
    window: (u64, u32),
}

/// The hash-chained audit ring.
struct AuditLog {
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
    fn new() -> Self {
        AuditLog {
            ring: [None; AUDIT_CAPACITY],
            next_index: 0,
            head: B256::ZERO,
            read_cursor: 0,
            overwritten_unread: 0,
        }
    }

    fn append(&mut self, command: u8, slot: u8, sequence: u64, digest: B256, outcome: Outcome) {
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

    fn read(&mut self, from: u64) -> AuditLogResponse {
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

/// The device. See the module documentation.
///
/// `SLOTS` is how many key slots it has, at most the protocol's
/// [`NUM_SLOTS`] (the default); a microcontroller may offer fewer to save
/// RAM (a slot is about 800 bytes). `DeviceInfo` reports the number.
pub struct Device<B: Backend, const SLOTS: usize = NUM_SLOTS> {
    backend: B,
    config: DeviceConfig,
    slots: [Slot; SLOTS],
    admin_counter: Option<u64>,
    audit: AuditLog,
}

impl<B: Backend, const SLOTS: usize> core::fmt::Debug for Device<B, SLOTS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device")
            .field("config", &self.config)
            .field("kind", &self.backend.kind())
            .finish_non_exhaustive()
    }
}

fn map_backend(e: BackendError) -> DeviceError {
    match e {
        BackendError::Unsupported => DeviceError::Unsupported,
        BackendError::Failed => DeviceError::Backend,
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
        const { assert!(SLOTS >= 1 && SLOTS <= NUM_SLOTS, "1 to NUM_SLOTS slots") };
        Device {
            backend,
            config,
            slots: core::array::from_fn(|_| Slot::default()),
            admin_counter: None,
            audit: AuditLog::new(),
        }
    }

    /// Loads the slots and counters from the backend's durable state, and
    /// starts the audit log with a boot entry. Fails closed (see [`Device::open`]);
    /// on failure the device must not be used.
    pub fn load(&mut self) -> Result<(), DeviceError> {
        let mut buf = Zeroizing::new([0u8; MAX_SLOT_RECORD]);
        let Device { backend, slots, .. } = self;
        for (n, slot) in (0u8..).zip(slots.iter_mut()) {
            *slot = Slot::default();
            slot.high_water =
                backend.load_counter(CounterId::Slot(n)).map_err(|_| DeviceError::Storage)?;
            let Some(len) = backend.load_slot(n, &mut buf[..]).map_err(|_| DeviceError::Storage)?
            else {
                continue;
            };
            let bytes = buf.get(..len).ok_or(DeviceError::Storage)?;
            let record: SlotRecord = codec::decode(bytes).map_err(|_| DeviceError::Storage)?;
            let (key, origin) = match &record.key {
                StoredKey::Generated(secret) => (
                    SigningKey::from_bytes(&secret.0).map_err(|_| DeviceError::Storage)?,
                    KeyOrigin::Generated,
                ),
                StoredKey::Derived(path) => {
                    let secret = backend.derive_key(path).map_err(map_backend)?;
                    let key = SigningKey::from_bytes(&secret).map_err(|_| DeviceError::Storage)?;
                    (key, KeyOrigin::Derived(path.clone()))
                }
            };
            slot.key = Some(LoadedKey { key, origin });
            slot.policy = record.policy.clone();
        }
        self.admin_counter = self
            .backend
            .load_counter(CounterId::Admin)
            .map_err(|_| DeviceError::Storage)?
            .map(|h| h.value);
        self.audit = AuditLog::new();
        self.audit.append(0, 0, 0, self.config.device_id, Outcome::Ok);
        Ok(())
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

    /// Handles one received frame (or the reason it could not be read) and
    /// writes the response frame into `out`. Returns the response length; 0
    /// only if `out` cannot hold even an error response.
    pub fn handle(&mut self, frame: Result<&[u8], FrameError>, out: &mut [u8]) -> usize {
        let unknown = Header { version: PROTOCOL_VERSION, command: 0, request_id: 0 };
        let payload = match frame {
            Ok(p) => p,
            Err(e) => return respond::<()>(&unknown, Err(DeviceError::Frame(e)), out),
        };
        let Ok((request, body)) = Header::split(payload) else {
            return respond::<()>(&unknown, Err(DeviceError::Frame(FrameError::TooShort)), out);
        };
        let h = Header { version: PROTOCOL_VERSION, ..request };
        if request.version != PROTOCOL_VERSION {
            let e = DeviceError::UnsupportedVersion { supported: PROTOCOL_VERSION };
            return respond::<()>(&h, Err(e), out);
        }
        // Each command runs in its own (not inlined) function, so only the
        // running command's frame is on the stack: on a microcontroller the
        // sum of all of them would not fit.
        match h.command {
            DeviceInfo::CODE => self.on_device_info(&h, body, out),
            GetPublicKey::CODE => self.on_get_public_key(&h, body, out),
            GenerateKey::CODE => self.on_generate_key(&h, body, out),
            DeriveKey::CODE => self.on_derive_key(&h, body, out),
            SetPolicy::CODE => self.on_set_policy(&h, body, out),
            Sign::CODE => self.on_sign(&h, body, out),
            Attest::CODE => self.on_attest(&h, body, out),
            GetAuditLog::CODE => self.on_get_audit_log(&h, body, out),
            Echo::CODE => on_echo(&h, body, out),
            GetPolicy::CODE => self.on_get_policy(&h, body, out),
            AttestAction::CODE => self.on_attest_action(&h, body, out),
            GetEvidence::CODE => self.on_get_evidence(&h, body, out),
            _ => respond::<()>(&h, Err(DeviceError::UnknownCommand), out),
        }
    }

    #[inline(never)]
    fn on_device_info(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        respond(h, decode::<DeviceInfo>(body).map(|_| self.info()), out)
    }

    #[inline(never)]
    fn on_get_public_key(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        let r = decode::<GetPublicKey>(body).and_then(|c| self.public_key(c.slot));
        respond(h, r, out)
    }

    #[inline(never)]
    fn on_generate_key(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        let r = decode::<GenerateKey>(body).and_then(|c| self.generate_key(&c, body));
        respond(h, r, out)
    }

    #[inline(never)]
    fn on_derive_key(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        let r = decode::<DeriveKey>(body).and_then(|c| self.derive_key(&c, body));
        respond(h, r, out)
    }

    #[inline(never)]
    fn on_set_policy(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        let r = decode::<SetPolicy>(body).and_then(|c| self.set_policy(&c, body));
        respond(h, r, out)
    }

    #[inline(never)]
    fn on_sign(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        let r = decode::<Sign>(body).and_then(|c| self.sign(&c));
        respond(h, r, out)
    }

    #[inline(never)]
    fn on_attest(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        match decode::<Attest>(body) {
            Ok(c) => {
                let r = self.attest(&c);
                respond(h, r, out)
            }
            Err(e) => respond::<()>(h, Err(e), out),
        }
    }

    #[inline(never)]
    fn on_attest_action(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        match decode::<AttestAction>(body) {
            Ok(c) => {
                let r = self.attest_action(&c);
                respond(h, r, out)
            }
            Err(e) => respond::<()>(h, Err(e), out),
        }
    }

    #[inline(never)]
    fn on_get_evidence(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        match decode::<GetEvidence>(body) {
            Ok(c) => {
                let r = self.evidence(&c);
                respond(h, r, out)
            }
            Err(e) => respond::<()>(h, Err(e), out),
        }
    }

    #[inline(never)]
    fn on_get_audit_log(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        respond(h, decode::<GetAuditLog>(body).map(|c| self.audit.read(c.from)), out)
    }

    #[inline(never)]
    fn on_get_policy(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
        let r = decode::<GetPolicy>(body).and_then(|c| Ok(self.slot(c.slot)?.policy.clone()));
        respond(h, r, out)
    }

    fn slot(&self, n: u8) -> Result<&Slot, DeviceError> {
        self.slots.get(usize::from(n)).ok_or(DeviceError::NoSuchSlot)
    }

    fn info(&self) -> DeviceInfoResponse {
        let mut firmware = String::new();
        let _ = firmware.push_str(env!("CARGO_PKG_VERSION"));
        DeviceInfoResponse {
            protocol_version: PROTOCOL_VERSION,
            firmware,
            backend: self.backend.kind(),
            capabilities: self.backend.capabilities(),
            slots: SLOTS as u8,
            max_request_frame: MAX_REQUEST_FRAME as u32,
            device_id: self.config.device_id,
            admin: self.config.admin,
        }
    }

    fn public_key(&self, n: u8) -> Result<PublicKeyResponse, DeviceError> {
        let slot = self.slot(n)?;
        let loaded = slot.key.as_ref().ok_or(DeviceError::SlotEmpty)?;
        Ok(PublicKeyResponse {
            slot: n,
            public_key: FixedBytes(loaded.key.public_key().to_compressed()),
            address: loaded.key.address(),
            origin: loaded.origin.clone(),
            high_water: slot.high_water.map(|h| h.value),
        })
    }

    /// Verifies an admin command and burns its counter; audits a refusal.
    fn authorize<C: AdminCommand>(
        &mut self,
        cmd: &C,
        slot: u8,
        body: &[u8],
    ) -> Result<(), DeviceError> {
        let r = self.check_admin(cmd, body);
        let (counter, payload) = (cmd.auth().counter, admin_payload_hash(body, cmd));
        if let Err(e) = r {
            self.audit.append(C::CODE, slot, counter, payload, Outcome::Refused(e));
        }
        r
    }

    fn check_admin<C: AdminCommand>(&mut self, cmd: &C, body: &[u8]) -> Result<(), DeviceError> {
        let auth = cmd.auth();
        let payload = admin_payload_hash(body, cmd);
        let digest =
            crate::protocol::admin_digest(&self.config.device_id, C::CODE, auth.counter, &payload);
        match auth.signature.recover_address(&digest) {
            Ok(who) if who == self.config.admin => {}
            _ => return Err(DeviceError::Unauthorized),
        }
        if let Some(last) = self.admin_counter
            && auth.counter <= last
        {
            return Err(DeviceError::AdminReplay { last });
        }
        self.backend
            .commit_counter(CounterId::Admin, &HighWater { value: auth.counter, digest: payload })
            .map_err(|_| DeviceError::Storage)?;
        self.admin_counter = Some(auth.counter);
        Ok(())
    }

    /// Makes slot `n`'s record durable; the caller updates the slot after.
    fn persist(&mut self, n: u8, record: &SlotRecord) -> Result<(), DeviceError> {
        let mut buf = Zeroizing::new([0u8; MAX_SLOT_RECORD]);
        let bytes = codec::encode(record, &mut buf[..]).map_err(|_| DeviceError::Storage)?;
        self.backend.store_slot(n, bytes).map_err(|_| DeviceError::Storage)
    }

    /// Stores a new key with a deny-all policy in slot `n`, then installs it.
    fn install(&mut self, n: u8, stored: StoredKey, key: SigningKey) -> Result<(), DeviceError> {
        let origin = match &stored {
            StoredKey::Generated(_) => KeyOrigin::Generated,
            StoredKey::Derived(p) => KeyOrigin::Derived(p.clone()),
        };
        self.persist(n, &SlotRecord { key: stored, policy: Policy::default() })?;
        let slot = self.slots.get_mut(usize::from(n)).ok_or(DeviceError::NoSuchSlot)?;
        *slot = Slot {
            key: Some(LoadedKey { key, origin }),
            high_water: slot.high_water,
            ..Slot::default()
        };
        Ok(())
    }

    fn generate_key(
        &mut self,
        cmd: &GenerateKey,
        body: &[u8],
    ) -> Result<PublicKeyResponse, DeviceError> {
        self.slot(cmd.slot)?;
        self.authorize(cmd, cmd.slot, body)?;
        let result = (|| {
            let mut secret = Secret([0; 32]);
            // A uniformly random 32-byte string is a valid scalar except
            // with probability ~2^-128; a few tries make failure moot.
            let mut key = None;
            for _ in 0..4 {
                self.backend.fill_bytes(&mut secret.0).map_err(|_| DeviceError::Entropy)?;
                if let Ok(k) = SigningKey::from_bytes(&secret.0) {
                    key = Some(k);
                    break;
                }
            }
            let key = key.ok_or(DeviceError::Entropy)?;
            self.install(cmd.slot, StoredKey::Generated(secret), key)?;
            self.public_key(cmd.slot)
        })();
        self.audit_admin(cmd, cmd.slot, body, &result);
        result
    }

    fn derive_key(
        &mut self,
        cmd: &DeriveKey,
        body: &[u8],
    ) -> Result<PublicKeyResponse, DeviceError> {
        self.slot(cmd.slot)?;
        self.authorize(cmd, cmd.slot, body)?;
        let result = (|| {
            let secret = self.backend.derive_key(&cmd.path).map_err(map_backend)?;
            let key = SigningKey::from_bytes(&secret).map_err(|_| DeviceError::Backend)?;
            self.install(cmd.slot, StoredKey::Derived(cmd.path.clone()), key)?;
            self.public_key(cmd.slot)
        })();
        self.audit_admin(cmd, cmd.slot, body, &result);
        result
    }

    fn set_policy(&mut self, cmd: &SetPolicy, body: &[u8]) -> Result<PolicySet, DeviceError> {
        let slot = self.slot(cmd.slot)?;
        if slot.key.is_none() {
            return Err(DeviceError::SlotEmpty);
        }
        self.authorize(cmd, cmd.slot, body)?;
        let result = (|| {
            let loaded = self
                .slots
                .get(usize::from(cmd.slot))
                .and_then(|s| s.key.as_ref())
                .ok_or(DeviceError::SlotEmpty)?;
            let key = match &loaded.origin {
                KeyOrigin::Generated => StoredKey::Generated(Secret(*loaded.key.to_secret_bytes())),
                KeyOrigin::Derived(p) => StoredKey::Derived(p.clone()),
            };
            self.persist(cmd.slot, &SlotRecord { key, policy: cmd.policy.clone() })?;
            if let Some(slot) = self.slots.get_mut(usize::from(cmd.slot)) {
                slot.policy = cmd.policy.clone();
                slot.window = (0, 0);
            }
            let mut buf = [0u8; MAX_SLOT_RECORD];
            let enc = codec::encode(&cmd.policy, &mut buf).map_err(|_| DeviceError::Storage)?;
            Ok(PolicySet { slot: cmd.slot, policy_hash: keccak256(enc) })
        })();
        self.audit_admin(cmd, cmd.slot, body, &result);
        result
    }

    fn audit_admin<C: AdminCommand, T>(
        &mut self,
        cmd: &C,
        slot: u8,
        body: &[u8],
        r: &Result<T, DeviceError>,
    ) {
        let outcome = match r {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Refused(*e),
        };
        let payload = admin_payload_hash(body, cmd);
        self.audit.append(C::CODE, slot, cmd.auth().counter, payload, outcome);
    }

    #[inline(never)]
    fn sign(&mut self, req: &Sign) -> Result<SignResponse, DeviceError> {
        let digest = req.action.digest();
        let result = self.sign_inner(req, &digest);
        let outcome = match &result {
            Ok((_, true)) => Outcome::Retry,
            Ok((_, false)) => Outcome::Ok,
            Err(e) => Outcome::Refused(*e),
        };
        self.audit.append(Sign::CODE, req.slot, req.sequence, digest, outcome);
        result.map(|(r, _)| r)
    }

    /// Returns the response and whether it was an exact retry.
    fn sign_inner(
        &mut self,
        req: &Sign,
        digest: &B256,
    ) -> Result<(SignResponse, bool), DeviceError> {
        let now = self.backend.now();
        let Device { slots, backend, .. } = self;
        let slot = slots.get_mut(usize::from(req.slot)).ok_or(DeviceError::NoSuchSlot)?;
        let loaded = slot.key.as_ref().ok_or(DeviceError::SlotEmpty)?;
        let respond = |key: &SigningKey| -> Result<SignResponse, DeviceError> {
            let signature = key.sign_digest(digest).map_err(|_| DeviceError::SigningFailed)?;
            Ok(SignResponse { signature, digest: *digest, sequence: req.sequence })
        };
        let commitment = retry_commitment(&loaded.key.address(), digest);
        if let Some(hw) = slot.high_water {
            if req.sequence == hw.value && hw.digest == commitment {
                // The exact action this key already signed at this sequence:
                // the signature is deterministic, so this releases nothing new.
                return Ok((respond(&loaded.key)?, true));
            }
            if req.sequence <= hw.value {
                return Err(DeviceError::Replay { high_water: hw.value });
            }
        }
        slot.policy.check(&req.action, &loaded.key.address(), now).map_err(DeviceError::Denied)?;
        if let Some(limit) = slot.policy.rate_limit {
            let now = now.ok_or(DeviceError::Denied(PolicyViolation::NoClock))?;
            let (start, count) = slot.window;
            let (start, count) = if now.saturating_sub(start) >= u64::from(limit.window_secs) {
                (now, 0)
            } else {
                (start, count)
            };
            if count >= limit.max {
                return Err(DeviceError::Denied(PolicyViolation::RateLimited));
            }
            slot.window = (start, count + 1);
        }
        let mark = HighWater { value: req.sequence, digest: commitment };
        backend
            .commit_counter(CounterId::Slot(req.slot), &mark)
            .map_err(|_| DeviceError::Storage)?;
        slot.high_water = Some(mark);
        Ok((respond(&loaded.key)?, false))
    }

    fn attest(&mut self, req: &Attest) -> Result<AttestResponse<'_>, DeviceError> {
        let address = self
            .slot(req.slot)?
            .key
            .as_ref()
            .map(|k| k.key.address())
            .ok_or(DeviceError::SlotEmpty)?;
        self.quote_for(Attest::CODE, req.slot, 0, address, Purpose::Challenge, &req.challenge)
    }

    fn attest_action(&mut self, req: &AttestAction) -> Result<AttestResponse<'_>, DeviceError> {
        let checked = (|| {
            let slot = self.slot(req.slot)?;
            let address =
                slot.key.as_ref().map(|k| k.key.address()).ok_or(DeviceError::SlotEmpty)?;
            match slot.high_water {
                Some(hw)
                    if hw.value == req.sequence
                        && hw.digest == retry_commitment(&address, &req.digest) =>
                {
                    Ok(address)
                }
                _ => Err(DeviceError::NotLastSigned),
            }
        })();
        let address = match checked {
            Ok(a) => a,
            Err(e) => {
                let outcome = Outcome::Refused(e);
                self.audit.append(AttestAction::CODE, req.slot, req.sequence, req.digest, outcome);
                return Err(e);
            }
        };
        let (code, slot, seq) = (AttestAction::CODE, req.slot, req.sequence);
        self.quote_for(code, slot, seq, address, Purpose::ActionDigest, &req.digest)
    }

    /// A quote binding `address` to `value` for `purpose`; audited.
    fn quote_for(
        &mut self,
        code: u8,
        slot: u8,
        sequence: u64,
        address: Address,
        purpose: Purpose,
        value: &B256,
    ) -> Result<AttestResponse<'_>, DeviceError> {
        let report_data = binding::bind(&address, purpose, value);
        let Device { backend, audit, .. } = self;
        let quote = backend.quote(&report_data).map_err(map_backend);
        let outcome = quote.as_ref().map_or_else(|e| Outcome::Refused(*e), |_| Outcome::Ok);
        audit.append(code, slot, sequence, *value, outcome);
        Ok(AttestResponse { address, report_data: FixedBytes(report_data), quote: quote? })
    }

    fn evidence(&mut self, req: &GetEvidence) -> Result<EvidenceChunk<'_>, DeviceError> {
        let Device { backend, slots, .. } = self;
        let slot = slots.get(usize::from(req.slot)).ok_or(DeviceError::NoSuchSlot)?;
        let which = match req.part {
            EvidencePart::EventLog => EvidenceRef::EventLog,
            EvidencePart::KeyChain => match &slot.key {
                None => return Err(DeviceError::SlotEmpty),
                // A generated key has no chain.
                Some(LoadedKey { origin: KeyOrigin::Generated, .. }) => {
                    return Err(DeviceError::Unsupported);
                }
                Some(LoadedKey { origin: KeyOrigin::Derived(path), .. }) => {
                    EvidenceRef::KeyChain(path.as_str())
                }
            },
        };
        let all = backend.evidence(which).map_err(map_backend)?;
        let total = u32::try_from(all.len()).map_err(|_| DeviceError::Backend)?;
        let start = usize::try_from(req.offset).unwrap_or(usize::MAX).min(all.len());
        let data = all.get(start..).unwrap_or(&[]);
        let data = data.get(..MAX_EVIDENCE_CHUNK).unwrap_or(data);
        Ok(EvidenceChunk { total, data })
    }
}

fn decode<C: Command>(body: &[u8]) -> Result<C, DeviceError> {
    C::decode(body).map_err(DeviceError::Malformed)
}

#[inline(never)]
fn on_echo(h: &Header, body: &[u8], out: &mut [u8]) -> usize {
    respond(h, decode::<Echo>(body), out)
}

/// Encodes a response frame; falls back to a `ResponseTooLarge` error when
/// `out` is too small for the response itself.
fn respond<T: Serialize>(h: &Header, r: Result<T, DeviceError>, out: &mut [u8]) -> usize {
    if let Ok(f) = frame::encode(h, &r, out) {
        return f.len();
    }
    let e: Result<(), DeviceError> = Err(DeviceError::ResponseTooLarge);
    frame::encode(h, &e, out).map_or(0, |f| f.len())
}

/// A response frame's header and body, decoded canonically: the client side
/// of [`Device::handle`].
pub fn decode_response<'p, C: Command>(
    payload: &'p [u8],
) -> Result<(Header, Result<C::Response<'p>, DeviceError>), Error> {
    let (h, body) = Header::split(payload)?;
    // Errors without a readable request (frame errors) have command 0.
    if h.command != C::CODE && h.command != 0 {
        return Err(Error::Malformed);
    }
    Ok((h, codec::decode(body)?))
}

/// Encodes a request frame for command `cmd` into `out`.
pub fn encode_request<'o, C: Command>(
    request_id: u32,
    cmd: &C,
    out: &'o mut [u8],
) -> Result<&'o mut [u8], Error> {
    let h = Header { version: PROTOCOL_VERSION, command: C::CODE, request_id };
    frame::encode(&h, cmd, out)
}
