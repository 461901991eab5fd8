//! tee-core's [`Backend`] for a microcontroller: slot records and counters
//! in a [`FlashStore`], randomness from the board, no clock, no quotes, no
//! key derivation.

use embedded_storage::nor_flash::NorFlash;
use tee_core::B256;
use tee_core::device::{
    AuditStore, Backend, BackendError, Clock, CounterId, CounterStore, HighWater, KeyStore,
    QuoteSource, Rng,
};
use tee_core::protocol::{BackendKind, capability};
use zeroize::Zeroizing;

use crate::store::{FlashStore, StoreError};

/// Record kinds in the store.
const KIND_SLOT: u8 = 1;
const KIND_COUNTER: u8 = 2;
/// The counter id of the admin counter (slots use their number).
const ADMIN_ID: u8 = 0xff;

/// The MCU backend over flash `F` and entropy `E`.
#[derive(Debug)]
pub struct McuBackend<F, E> {
    store: FlashStore<F>,
    entropy: E,
}

impl<F: NorFlash, E: Rng> McuBackend<F, E> {
    /// Opens the store on `flash` (formatting it if it holds no state). On
    /// failure the flash and entropy source are handed back.
    pub fn open(flash: F, entropy: E) -> Result<Self, (StoreError, F, E)> {
        match FlashStore::open(flash) {
            Ok(store) => Ok(McuBackend { store, entropy }),
            Err((e, flash)) => Err((e, flash, entropy)),
        }
    }

    /// The store.
    pub fn store(&self) -> &FlashStore<F> {
        &self.store
    }

    /// Gives back the flash and the entropy source.
    pub fn into_parts(self) -> (F, E) {
        (self.store.into_flash(), self.entropy)
    }
}

fn counter_id(id: CounterId) -> u8 {
    match id {
        CounterId::Slot(n) => n,
        CounterId::Admin => ADMIN_ID,
    }
}

impl<F: NorFlash, E: Rng> KeyStore for McuBackend<F, E> {
    fn load_slot(&mut self, slot: u8, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        self.store.get(KIND_SLOT, slot, buf).map_err(|_| BackendError::Failed)
    }

    fn store_slot(&mut self, slot: u8, record: &[u8]) -> Result<(), BackendError> {
        self.store.put(KIND_SLOT, slot, record).map_err(|_| BackendError::Failed)
    }

    fn derive_key(&mut self, _path: &str) -> Result<Zeroizing<[u8; 32]>, BackendError> {
        Err(BackendError::Unsupported)
    }
}

impl<F: NorFlash, E: Rng> CounterStore for McuBackend<F, E> {
    fn load_counter(&mut self, id: CounterId) -> Result<Option<HighWater>, BackendError> {
        let mut buf = [0u8; 40];
        match self.store.get(KIND_COUNTER, counter_id(id), &mut buf) {
            Ok(None) => Ok(None),
            Ok(Some(40)) => {
                let (value, digest) = buf.split_at(8);
                let value = u64::from_le_bytes(value.try_into().map_err(|_| BackendError::Failed)?);
                let digest = B256(digest.try_into().map_err(|_| BackendError::Failed)?);
                Ok(Some(HighWater { value, digest }))
            }
            _ => Err(BackendError::Failed),
        }
    }

    fn commit_counter(&mut self, id: CounterId, value: &HighWater) -> Result<(), BackendError> {
        let mut buf = [0u8; 40];
        let (v, d) = buf.split_at_mut(8);
        v.copy_from_slice(&value.value.to_le_bytes());
        d.copy_from_slice(&value.digest.0);
        self.store.put(KIND_COUNTER, counter_id(id), &buf).map_err(|_| BackendError::Failed)
    }
}

/// The audit chain lives in the device's RAM ring on a microcontroller:
/// flash is for keys and marks (docs/security.md).
impl<F, E> AuditStore for McuBackend<F, E> {}

impl<F, E: Rng> Rng for McuBackend<F, E> {
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), BackendError> {
        self.entropy.fill_bytes(buf)
    }
}

impl<F, E> Clock for McuBackend<F, E> {
    /// A microcontroller has no trusted wall clock: deadline and rate-limit
    /// rules refuse (`NoClock`) rather than trust the host's idea of time.
    fn now(&mut self) -> Option<u64> {
        None
    }
}

impl<F, E> QuoteSource for McuBackend<F, E> {
    fn quote(&mut self, _report_data: &[u8; 64]) -> Result<&[u8], BackendError> {
        Err(BackendError::Unsupported)
    }
}

impl<F: NorFlash, E: Rng> Backend for McuBackend<F, E> {
    // 90 KiB of flash are kept for the policy's rules.
    const IMPORTS_MARKS: bool = false;
    /// No trusted clock to bound an approval's life, and no flash to spare.
    const APPROVALS: bool = false;

    fn kind(&self) -> BackendKind {
        BackendKind::Mcu
    }

    fn capabilities(&self) -> u32 {
        capability::GENERATE
    }
}
