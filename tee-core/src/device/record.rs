//! A slot as stored through the [`KeyStore`]: its key (a generated secret,
//! or only the path of a derived key, derived again at every load) and its
//! policy, in their canonical encoding.

use heapless::String;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::backend::{Backend, KeyStore};
use super::map_backend;
use super::slot::LoadedKey;
use crate::codec;
use crate::limits::{MAX_PATH_LEN, MAX_SLOT_RECORD};
use crate::protocol::{DeviceError, KeyOrigin, Policy};
use crate::signer::SigningKey;

/// 32 secret bytes that are zeroized on drop.
#[derive(Serialize, Deserialize)]
pub(super) struct Secret(pub(super) [u8; 32]);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Where a slot's key comes from, as stored.
#[derive(Serialize, Deserialize)]
pub(super) enum StoredKey {
    Generated(Secret),
    Derived(String<MAX_PATH_LEN>),
}

impl StoredKey {
    /// How a loaded key is stored.
    pub(super) fn of(loaded: &LoadedKey) -> StoredKey {
        match &loaded.origin {
            KeyOrigin::Generated => StoredKey::Generated(Secret(*loaded.key.to_secret_bytes())),
            KeyOrigin::Derived(p) => StoredKey::Derived(p.clone()),
        }
    }

    /// The origin a client is told.
    pub(super) fn origin(&self) -> KeyOrigin {
        match self {
            StoredKey::Generated(_) => KeyOrigin::Generated,
            StoredKey::Derived(p) => KeyOrigin::Derived(p.clone()),
        }
    }
}

/// A slot as stored.
#[derive(Serialize, Deserialize)]
pub(super) struct SlotRecord {
    pub(super) key: StoredKey,
    pub(super) policy: Policy,
}

/// Reads slot `n`'s record and loads its key (deriving a derived key
/// again); `None` for an empty slot. Fails closed: a record that does not
/// decode is [`DeviceError::Storage`].
pub(super) fn load<B: Backend>(
    backend: &mut B,
    n: u8,
) -> Result<Option<(LoadedKey, Policy)>, DeviceError> {
    let mut buf = Zeroizing::new([0u8; MAX_SLOT_RECORD]);
    let Some(len) = backend.load_slot(n, &mut buf[..]).map_err(|_| DeviceError::Storage)? else {
        return Ok(None);
    };
    let bytes = buf.get(..len).ok_or(DeviceError::Storage)?;
    let record: SlotRecord = codec::decode(bytes).map_err(|_| DeviceError::Storage)?;
    let key = match &record.key {
        StoredKey::Generated(secret) => {
            SigningKey::from_bytes(&secret.0).map_err(|_| DeviceError::Storage)?
        }
        StoredKey::Derived(path) => {
            let secret = backend.derive_key(path).map_err(map_backend)?;
            SigningKey::from_bytes(&secret).map_err(|_| DeviceError::Storage)?
        }
    };
    let origin = record.key.origin();
    Ok(Some((LoadedKey { key, origin }, record.policy.clone())))
}

/// Makes slot `n`'s record durable; the caller updates the slot after.
pub(super) fn store<B: KeyStore>(
    backend: &mut B,
    n: u8,
    record: &SlotRecord,
) -> Result<(), DeviceError> {
    let mut buf = Zeroizing::new([0u8; MAX_SLOT_RECORD]);
    let bytes = codec::encode(record, &mut buf[..]).map_err(|_| DeviceError::Storage)?;
    backend.store_slot(n, bytes).map_err(|_| DeviceError::Storage)
}
