//! tee-core's [`Backend`] on a host: slot records and counters in a
//! [`FileStore`], randomness from the OS, the system clock, and, where the
//! host is a dstack CVM (or the built-in simulator), key derivation and TDX
//! quotes from dstack.
//!
//! It also keeps what a verifier needs besides the quote, which the device
//! protocol does not carry in full: the event log of the last quote and the
//! KMS signature chain of every derived key (`GetEvidence`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tee_core::device::{
    AuditStore, AuditedMark, Backend, BackendError, Clock, CounterId, CounterStore, Device,
    DeviceConfig, EvidenceRef, HighWater, KeyStore, QuoteSource, Rng,
};
use tee_core::policy::SpendWindow;
use tee_core::protocol::{
    AuditEntry, BackendKind, DeviceError, HealthResponse, Probe, Replication, capability,
};
use tee_core::{Address, B256, SigningKey};
use zeroize::Zeroizing;

use tee_verify::KeyChain;
use tee_verify::eventlog::Event;

use super::dstack::QuoteEvidence;
use super::served::{Committer, Prober, Quoter, Served};
use crate::dstack::Dstack;
use crate::marks::MarksError;
use crate::marks::anchor::{Anchor, AnchorError};
use crate::marks::pool::{Claimed, Claims, MarksPool, POOL_SIZE};
use crate::marks::replication::ReplicationRule;
use tee_store::store::{FileStore, StateKey, StoreError};

/// Derivation paths under this prefix are the signer's own (the sealing
/// key); `DeriveKey` refuses them.
pub const RESERVED_PATH_PREFIX: &str = "tee-signer/";
/// The dstack path of the state key: it authenticates the state journal
/// and seals its slot records, so they open only inside this app's CVM.
pub const STATE_KEY_PATH: &str = "tee-signer/state/v1";
/// The dstack path of the key that MACs the marks replicas share
/// ([`super::marks`]): the same on every replica of the app.
pub const MARKS_KEY_PATH: &str = "tee-signer/marks/v1";
/// The sequence space of a key's signatures in the shared marks.
pub const ACTIONS_SPACE: &str = "actions";
/// Key slots of the std signer: as many as slot numbers allow (255 is the
/// device's identity). A slot that holds nothing costs its ~750 bytes of
/// RAM and no start-up time; a derived slot's key is derived again at
/// start (one dstack `GetKey`).
pub const HOST_SLOTS: usize = tee_core::protocol::MAX_SLOTS;

/// The std signer's device.
pub type HostDevice = Device<HostBackend, HOST_SLOTS>;

/// The `purpose` the signer passes to dstack's `GetKey`: it is part of what
/// the app key signs in the key's chain.
pub const KEY_PURPOSE: &str = "erc8004-signer";

/// The host backend. See the module documentation.
pub struct HostBackend {
    store: FileStore,
    dstack: Option<Arc<Dstack>>,
    kind: BackendKind,
    quote: Vec<u8>,
    event_log: Vec<Event>,
    key_chains: BTreeMap<String, KeyChain>,
    evidence: Vec<u8>,
    shared: Option<Arc<Claims>>,
    /// The rollback anchor, kept with the shared marks.
    anchor: Option<Arc<Anchor>>,
}

impl std::fmt::Debug for HostBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBackend")
            .field("store", &self.store)
            .field("dstack", &self.dstack)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a signer could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The state directory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// dstack.
    #[error(transparent)]
    Dstack(#[from] crate::dstack::DstackError),
    /// The durable state does not load (fails closed: a record or counter
    /// that cannot be read, or a derived key dstack no longer gives).
    #[error("the device state does not load: {0:?}")]
    Device(DeviceError),
    /// The shared marks database.
    #[error(transparent)]
    Marks(#[from] MarksError),
    /// The rollback anchor: the state directory is behind what the marks
    /// database recorded of it, or it could not be checked.
    #[error(transparent)]
    Anchor(#[from] AnchorError),
}

/// How to open a signer.
#[derive(Debug, Clone)]
pub struct SignerConfig {
    /// The state directory.
    pub state: std::path::PathBuf,
    /// dstack's endpoint, or `None` for a signer without a TEE (no key
    /// derivation, no quotes).
    pub dstack: Option<String>,
    /// What `DeviceInfo` reports.
    pub kind: BackendKind,
    /// The admin address: required on the first start, checked after.
    pub admin: Option<Address>,
    /// The PostgreSQL database whose marks the app's replicas share
    /// ([`super::marks`]), or `None` for this signer's own marks only.
    pub marks: Option<String>,
    /// Serve shared marks from a primary whose standbys are asynchronous
    /// (or hidden from the signer's role): [`crate::marks::replication`].
    pub accept_async_standbys: bool,
}

/// Opens the signer: takes the state directory, reads or makes its
/// provisioning, connects dstack and loads the device (deriving every
/// derived slot's key again). Boxed, and loaded in place: a device of 255
/// slots is about 330 KB, which a debug build would otherwise copy onto
/// the stack once per frame it passes through.
pub fn open_device(config: &SignerConfig) -> Result<Box<HostDevice>, OpenError> {
    let dstack = match config.dstack.as_deref() {
        Some(e) => Some(with_state_api(&config.state, Dstack::new(Some(e))?)?),
        None => None,
    };
    // With a TEE, the state key is one only this app's CVM derives;
    // without, a key file (weaker: whoever reads the disk has it).
    let key = match &dstack {
        Some(d) => StateKey::Tee(d.get_key(STATE_KEY_PATH, "state")?.0),
        None => StateKey::File,
    };
    let store = FileStore::open(&config.state, key, config.admin)?;
    let p = store.provisioning();
    // A secret HKDF gives is a valid scalar but for a chance of 2^-128.
    let identity = SigningKey::from_bytes(&store.identity_secret())
        .map_err(|_| OpenError::Device(DeviceError::Storage))?;
    let mut backend = HostBackend::new(store, dstack, config.kind);
    if let Some(url) = &config.marks {
        // Replicas share keys only through dstack; the MAC key is the app's.
        let Some(d) = backend.dstack() else {
            return Err(OpenError::Marks(MarksError::Url(
                "shared marks need dstack (the app's key MACs them)".into(),
            )));
        };
        let (mac_key, _) = d.get_key(MARKS_KEY_PATH, "marks")?;
        let rule = ReplicationRule { accept_async: config.accept_async_standbys };
        let pool = MarksPool::connect(url, mac_key, POOL_SIZE, rule)?;
        let replication = pool.replication();
        if matches!(replication, Replication::Asynchronous | Replication::Hidden) {
            tracing::warn!(
                ?replication,
                "shared marks on a primary whose standbys are not all synchronous, accepted by \
                 --marks-accept-async-standbys: a failover can lose marks"
            );
        } else {
            tracing::info!(?replication, "shared marks");
        }
        // A directory behind the head the database recorded for it (an
        // older copy put back) does not open.
        let anchor = Anchor::open(&pool, p.device_id, backend.store.group(), |head| {
            backend.store.reached(head)
        })?;
        backend = backend.with_shared_marks(pool);
        backend.anchor = Some(Arc::new(anchor));
    }
    let config = DeviceConfig {
        device_id: p.device_id,
        admin: p.admin,
        bounds: tee_core::action::ActionBounds::HOST,
    };
    let mut device = Box::new(Device::new(backend, config));
    if let Err(e) = device.load() {
        return Err(OpenError::Device(e));
    }
    device.set_identity(identity);
    Ok(device)
}

/// The dstack API a signer uses: the one its state was made under (v0 for
/// state older than the record), or for new state v1 when the guest agent
/// offers it, else v0 (recorded before the journal is made). A path's key
/// under v1 is not its key under v0, so the API never changes under
/// existing state: state made under v0 keeps v0 on a dstack 0.6 agent, and
/// one whose agent no longer serves its API is refused with the reason.
fn with_state_api(state: &std::path::Path, dstack: Dstack) -> Result<Dstack, OpenError> {
    use crate::dstack::{Api, DstackError};
    use tee_store::store::{self, DSTACK_API_FILE, StoreError};
    let offered = dstack.detect_api()?;
    let api = if store::has_journal(state) {
        let api = match store::recorded_dstack_api(state)? {
            None => Api::V0,
            Some(name) => Api::parse(&name).ok_or_else(|| StoreError::Io {
                path: state.join(DSTACK_API_FILE).display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{name:?} is not a dstack API (v0 or v1)"),
                ),
            })?,
        };
        if api == Api::V1 && offered == Api::V0 {
            return Err(OpenError::Dstack(DstackError::Call {
                call: "Version",
                message: "the state's keys were derived under dstack's v1 API, which this guest agent does not serve".into(),
            }));
        }
        api
    } else {
        store::record_dstack_api(state, offered.name())?;
        offered
    };
    tracing::info!(api = %api, offered = %offered, "dstack guest-agent API");
    Ok(dstack.with_api(api))
}

impl HostBackend {
    /// A backend on `store` with dstack at `dstack` (or none). `kind` is
    /// what `DeviceInfo` reports: [`BackendKind::Simulated`] for the
    /// simulator, so nobody mistakes it for hardware.
    #[must_use]
    pub fn new(store: FileStore, dstack: Option<Dstack>, kind: BackendKind) -> HostBackend {
        HostBackend {
            store,
            dstack: dstack.map(Arc::new),
            kind,
            quote: Vec::new(),
            event_log: Vec::new(),
            key_chains: BTreeMap::new(),
            evidence: Vec::new(),
            shared: None,
            anchor: None,
        }
    }

    /// Claims every signature's (key, sequence) in `marks`, shared with
    /// the app's other replicas, before its local mark: a sequence another
    /// replica used for another action is refused as a replay, and the
    /// database unreachable is a refusal (never a local fallback).
    pub fn with_shared_marks(mut self, pool: Arc<MarksPool>) -> HostBackend {
        self.shared = Some(Arc::new(Claims::new(pool, ACTIONS_SPACE)));
        self
    }

    /// The event log that came with the last quote.
    #[must_use]
    pub fn event_log(&self) -> &[Event] {
        &self.event_log
    }

    /// The KMS signature chain of the key derived at `path`, if derived
    /// since this process started (opening the device derives every
    /// derived slot's key again).
    #[must_use]
    pub fn key_chain(&self, path: &str) -> Option<&KeyChain> {
        self.key_chains.get(path)
    }

    /// The dstack client, if any.
    #[must_use]
    pub fn dstack(&self) -> Option<&Dstack> {
        self.dstack.as_deref()
    }
}

impl Served for HostBackend {
    /// The journal's group commit: one sync for every reply waiting; with
    /// shared marks, then the rollback anchor ([`Anchor::after_commit`]:
    /// an admin change's reply waits until the database records it).
    fn committer(&self) -> Option<Committer> {
        let group = self.store.group();
        let anchor = self.anchor.clone();
        Some(Arc::new(move |ticket| {
            group.wait(ticket)?;
            anchor.as_ref().map_or(Ok(()), |a| a.after_commit())
        }))
    }

    /// dstack's `GetQuote`, made by the server outside the device lock.
    fn quoter(&self) -> Option<Quoter> {
        let dstack = self.dstack.clone()?;
        Some(Arc::new(move |report_data: &[u8; 64]| {
            dstack.get_quote(report_data).map_err(|e| {
                tracing::warn!(error = %e, "dstack GetQuote failed");
                BackendError::Failed
            })
        }))
    }

    fn keep_quote_evidence(&mut self, evidence: QuoteEvidence) {
        self.quote = evidence.quote;
        self.event_log = evidence.event_log;
    }

    fn metered(&self) -> (Option<Arc<tee_store::group::GroupCommit>>, Option<Arc<Anchor>>) {
        (Some(self.store.group()), self.anchor.clone())
    }

    /// The shared marks' claims, made outside the device lock.
    fn claims(&self) -> Option<Arc<Claims>> {
        self.shared.clone()
    }

    /// dstack's `Info` (within the client's timeout), a statement on the
    /// shared marks' pool (within its deadline), the journal's state.
    fn prober(&self) -> Option<Prober> {
        let dstack = self.dstack.clone();
        let marks = self.shared.as_ref().map(|c| c.pool());
        let group = self.store.group();
        // None: not used; whether it answered.
        let probe = |answered: Option<bool>| match answered {
            None => Probe::NotUsed,
            Some(true) => Probe::Ok,
            Some(false) => Probe::Failed,
        };
        Some(Arc::new(move || {
            // The marks answered, and how they replicate (a refused
            // reading is reported with the probe failed).
            let (marks, replication) = match marks.as_ref().map(|p| (p.ping(), p)) {
                None => (Probe::NotUsed, Replication::NotUsed),
                Some((Ok(r), _)) => (Probe::Ok, r),
                Some((Err(e), p)) => {
                    tracing::warn!(error = %e, "health: marks");
                    match e {
                        MarksError::Replication { found, .. } => (Probe::Failed, found),
                        _ => (Probe::Failed, p.replication()),
                    }
                }
            };
            HealthResponse {
                dstack: probe(dstack.as_ref().map(|d| {
                    d.info().inspect_err(|e| tracing::warn!(error = %e, "health: dstack")).is_ok()
                })),
                marks,
                storage: if group.failed() { Probe::Failed } else { Probe::Ok },
                replication,
            }
        }))
    }
}

impl Rng for HostBackend {
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), BackendError> {
        getrandom::fill(buf).map_err(|_| BackendError::Failed)
    }
}

impl Clock for HostBackend {
    fn now(&mut self) -> Option<u64> {
        SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
    }
}

impl KeyStore for HostBackend {
    fn load_slot(&mut self, slot: u8, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        self.store.load_slot(slot, buf)
    }

    fn store_slot(&mut self, slot: u8, record: &[u8]) -> Result<(), BackendError> {
        self.store.store_slot(slot, record)
    }

    fn derive_key(&mut self, path: &str) -> Result<Zeroizing<[u8; 32]>, BackendError> {
        let dstack = self.dstack.as_ref().ok_or(BackendError::Unsupported)?;
        if path.starts_with(RESERVED_PATH_PREFIX) {
            return Err(BackendError::Failed);
        }
        let (secret, chain) = dstack.get_key(path, KEY_PURPOSE).map_err(|e| {
            tracing::warn!(error = %e, "dstack GetKey failed");
            BackendError::Failed
        })?;
        self.key_chains.insert(path.to_owned(), chain);
        Ok(secret)
    }
}

impl CounterStore for HostBackend {
    fn load_counter(&mut self, id: CounterId) -> Result<Option<HighWater>, BackendError> {
        self.store.load_counter(id)
    }

    /// The state journal keeps a slot's spend window in the record of its
    /// mark; with shared marks, the window is the key's in the marks
    /// database, reserved in the claim's transaction
    /// ([`crate::marks::pool::Claims`]).
    fn reserves_spend(&self) -> bool {
        true
    }

    /// The journal's window; with shared marks none (the claim decided the
    /// reservation on the database's window).
    fn load_spend(
        &mut self,
        slot: u8,
        asset: Option<&Address>,
    ) -> Result<Option<SpendWindow>, BackendError> {
        if self.shared.is_some() {
            return Ok(None);
        }
        self.store.load_spend(slot, asset)
    }

    /// The journal's writes not yet durable; or, when they all are but an
    /// admin change among them is not yet in the rollback anchor, a ticket
    /// all the same, so the reply waits for the anchor
    /// ([`Anchor::after_commit`]).
    fn ticket(&mut self) -> Option<tee_core::device::Ticket> {
        self.store.ticket().or_else(|| {
            let owed = self.anchor.as_ref().is_some_and(|a| a.owed());
            owed.then(|| self.store.group().position())
        })
    }

    fn make_durable(&mut self, ticket: tee_core::device::Ticket) -> Result<(), BackendError> {
        self.store.make_durable(ticket)?;
        self.anchor.as_ref().map_or(Ok(()), |a| a.after_commit())
    }

    fn commit_counter(&mut self, id: CounterId, value: &HighWater) -> Result<(), BackendError> {
        self.store.commit_counter(id, value)
    }

    fn commit_counter_audited(
        &mut self,
        id: CounterId,
        m: AuditedMark<'_>,
    ) -> Result<(), BackendError> {
        self.store.commit_counter_audited(id, m)
    }

    fn commit_signature_mark(
        &mut self,
        slot: u8,
        signer: &Address,
        mut m: AuditedMark<'_>,
    ) -> Result<(), BackendError> {
        let value = m.mark;
        if let Some(shared) = &self.shared {
            // Claimed outside the lock by the server (never here, under it),
            // its value reserved in the shared window with it.
            match shared.take(signer, value.value, &value.digest) {
                Claimed::Ok => {}
                Claimed::Used(stored) => return Err(BackendError::Used { stored }),
                Claimed::OverCap(refusal) => return Err(BackendError::OverCap(refusal)),
                Claimed::Failed => return Err(BackendError::Failed),
            }
            // The window is the database's: the journal keeps its own
            // (unused while marks are shared) as it was.
            m.spend = None;
        }
        self.store.commit_counter_audited(CounterId::Slot(slot), m)
    }
}

impl AuditStore for HostBackend {
    fn audit_head(&mut self) -> Result<Option<(u64, B256)>, BackendError> {
        Ok(self.store.audit_head())
    }

    fn audit_append(
        &mut self,
        entry: &AuditEntry,
        prev: &B256,
        durable: bool,
    ) -> Result<(), BackendError> {
        self.store.audit_append(entry, prev, durable)
    }

    fn audit_entry(&mut self, index: u64) -> Result<Option<(AuditEntry, B256)>, BackendError> {
        Ok(self.store.audit_entry(index))
    }

    fn audit_oldest(&mut self) -> u64 {
        self.store.audit_oldest()
    }
}

impl QuoteSource for HostBackend {
    fn quote(&mut self, report_data: &[u8; 64]) -> Result<&[u8], BackendError> {
        let dstack = self.dstack.as_ref().ok_or(BackendError::Unsupported)?;
        let evidence = dstack.get_quote(report_data).map_err(|e| {
            tracing::warn!(error = %e, "dstack GetQuote failed");
            BackendError::Failed
        })?;
        self.quote = evidence.quote;
        self.event_log = evidence.event_log;
        Ok(&self.quote)
    }

    /// Evidence as JSON: the event log in dstack's format, a key chain as
    /// [`KeyChain`].
    fn evidence(&mut self, which: EvidenceRef<'_>) -> Result<&[u8], BackendError> {
        self.dstack.as_ref().ok_or(BackendError::Unsupported)?;
        let json = match which {
            // Nothing to show before the first quote.
            EvidenceRef::EventLog if self.quote.is_empty() => return Err(BackendError::Failed),
            EvidenceRef::EventLog => serde_json::to_vec(&self.event_log),
            EvidenceRef::KeyChain(path) => {
                serde_json::to_vec(self.key_chains.get(path).ok_or(BackendError::Failed)?)
            }
        };
        self.evidence = json.map_err(|_| BackendError::Failed)?;
        Ok(&self.evidence)
    }
}

impl Backend for HostBackend {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn capabilities(&self) -> u32 {
        let tee = if self.dstack.is_some() { capability::ATTEST | capability::DERIVE } else { 0 };
        capability::GENERATE | capability::CLOCK | tee
    }
}
