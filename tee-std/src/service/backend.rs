//! tee-core's [`Backend`] on a host: slot records and counters in a
//! [`FileStore`], randomness from the OS, the system clock, and, where the
//! host is a dstack CVM (or the built-in simulator), key derivation and TDX
//! quotes from dstack.
//!
//! It also keeps what a verifier needs besides the quote, which the device
//! protocol does not carry in full: the event log of the last quote and the
//! KMS signature chain of every derived key (`GetEvidence`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tee_core::device::{
    Backend, BackendError, Clock, CounterId, CounterStore, Device, DeviceConfig, EvidenceRef,
    HighWater, KeyStore, QuoteSource, Rng,
};
use tee_core::protocol::{BackendKind, DeviceError, capability};
use tee_core::{Address, B256};
use zeroize::Zeroizing;

use crate::attest::KeyChain;
use crate::attest::eventlog::Event;
use std::sync::Arc;

use super::dstack::QuoteEvidence;
use super::server::{Quoter, Served};
use crate::service::dstack::Dstack;
use crate::service::store::{FileStore, StoreError, write_durably};

/// Derivation paths under this prefix are the signer's own (the sealing
/// key); `DeriveKey` refuses them.
pub const RESERVED_PATH_PREFIX: &str = "tee-signer/";
/// The dstack path of the key that seals slot records.
pub const SEAL_PATH: &str = "tee-signer/seal/v1";
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
    Dstack(#[from] crate::service::dstack::DstackError),
    /// `device.json`.
    #[error(transparent)]
    Provisioning(#[from] ProvisioningError),
    /// The durable state does not load (fails closed: a record or counter
    /// that cannot be read, or a derived key dstack no longer gives).
    #[error("the device state does not load: {0:?}")]
    Device(DeviceError),
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
}

/// Opens the signer: takes the state directory, reads or makes its
/// provisioning, connects dstack and loads the device (deriving every
/// derived slot's key again).
pub fn open_device(config: &SignerConfig) -> Result<Device<HostBackend>, OpenError> {
    let store = FileStore::open(&config.state)?;
    let provisioning = provision(&config.state, config.admin)?;
    let dstack = config.dstack.as_deref().map(|e| Dstack::new(Some(e))).transpose()?;
    let backend = HostBackend::new(store, dstack, config.kind)?;
    Device::open(backend, provisioning.into()).map_err(OpenError::Device)
}

impl HostBackend {
    /// A backend on `store` with dstack at `dstack` (or none). With dstack,
    /// slot records are sealed under a key derived from dstack
    /// ([`SEAL_PATH`]), so they open only inside this app's CVM. `kind` is
    /// what `DeviceInfo` reports: [`BackendKind::Simulated`] for the
    /// simulator, so nobody mistakes it for hardware.
    pub fn new(
        store: FileStore,
        dstack: Option<Dstack>,
        kind: BackendKind,
    ) -> Result<HostBackend, OpenError> {
        let store = match &dstack {
            Some(d) => store.with_sealing_key(d.get_key(SEAL_PATH, "seal")?.0),
            None => store,
        };
        Ok(HostBackend {
            store,
            dstack: dstack.map(Arc::new),
            kind,
            quote: Vec::new(),
            event_log: Vec::new(),
            key_chains: BTreeMap::new(),
            evidence: Vec::new(),
        })
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

    fn commit_counter(&mut self, id: CounterId, value: &HighWater) -> Result<(), BackendError> {
        self.store.commit_counter(id, value)
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

/// A device's provisioning, kept in `device.json` in the state directory:
/// its id (random, made once) and its admin address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioning {
    /// The device id (bound into admin signatures).
    pub device_id: B256,
    /// The admin address.
    pub admin: Address,
}

impl From<Provisioning> for DeviceConfig {
    fn from(p: Provisioning) -> DeviceConfig {
        DeviceConfig { device_id: p.device_id, admin: p.admin }
    }
}

/// Why the provisioning could not be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisioningError {
    /// I/O on `device.json`.
    #[error("device.json: {0}")]
    Io(#[from] std::io::Error),
    /// Not valid JSON for a provisioning.
    #[error("device.json is malformed: {0}")]
    Malformed(String),
    /// No admin was given on the first start.
    #[error("this state directory is new: give the admin address (--admin) to provision it")]
    NoAdmin,
    /// An admin was given that is not the provisioned one.
    #[error(
        "this device's admin is {provisioned}, not {given}: the admin is fixed at provisioning"
    )]
    AdminMismatch {
        /// The admin in `device.json`.
        provisioned: Address,
        /// The admin given.
        given: Address,
    },
    /// The OS RNG failed.
    #[error("no randomness for the device id")]
    Entropy,
}

/// Reads `dir/device.json`, or makes it with a fresh device id and `admin`.
/// An `admin` that differs from the provisioned one is refused: a running
/// signer's admin is changed by nobody.
pub fn provision(dir: &Path, admin: Option<Address>) -> Result<Provisioning, ProvisioningError> {
    let path = dir.join("device.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let p: Provisioning = serde_json::from_slice(&bytes)
                .map_err(|e| ProvisioningError::Malformed(e.to_string()))?;
            match admin {
                Some(given) if given != p.admin => {
                    Err(ProvisioningError::AdminMismatch { provisioned: p.admin, given })
                }
                _ => Ok(p),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let admin = admin.ok_or(ProvisioningError::NoAdmin)?;
            let mut id = [0u8; 32];
            getrandom::fill(&mut id).map_err(|_| ProvisioningError::Entropy)?;
            let p = Provisioning { device_id: B256(id), admin };
            let json = serde_json::to_vec_pretty(&p)
                .map_err(|e| ProvisioningError::Malformed(e.to_string()))?;
            write_durably(dir, "device.json", &json)?;
            Ok(p)
        }
        Err(e) => Err(e.into()),
    }
}
