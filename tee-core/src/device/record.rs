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
use crate::limits::{
    MAX_PATH_LEN, MAX_POLICY_AGENTS, MAX_POLICY_CHAINS, MAX_POLICY_CONTRACTS, MAX_SLOT_RECORD,
};
use crate::primitives::{Address, U256};
use crate::protocol::{Allow, DeviceError, KeyOrigin, KindSet, Policy, RateLimit};
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

impl SlotRecord {
    /// Decodes a stored record: the current layout, or a record stored
    /// before policies had `eip712_domains` (protocol version 1), whose
    /// pre-hashed typed data kind, if named, allowed every domain.
    fn decode(bytes: &[u8]) -> Result<SlotRecord, DeviceError> {
        if let Ok(record) = codec::decode(bytes) {
            return Ok(record);
        }
        let v1: SlotRecordV1 = codec::decode(bytes).map_err(|_| DeviceError::Storage)?;
        let p = v1.policy;
        let policy = Policy {
            kinds: p.kinds,
            chains: p.chains,
            contracts: p.contracts,
            agents: p.agents,
            max_value: p.max_value,
            max_gas_limit: p.max_gas_limit,
            max_fee_per_gas: p.max_fee_per_gas,
            max_deadline_ahead_secs: p.max_deadline_ahead_secs,
            rate_limit: p.rate_limit,
            eip712_domains: Allow::Any,
        };
        Ok(SlotRecord { key: v1.key, policy })
    }
}

/// A slot record as protocol version 1 stored it.
#[derive(Serialize, Deserialize)]
struct SlotRecordV1 {
    key: StoredKey,
    policy: PolicyV1,
}

/// [`Policy`] before `eip712_domains`.
#[derive(Serialize, Deserialize)]
struct PolicyV1 {
    kinds: KindSet,
    chains: Allow<u64, MAX_POLICY_CHAINS>,
    contracts: Allow<Address, MAX_POLICY_CONTRACTS>,
    agents: Allow<U256, MAX_POLICY_AGENTS>,
    max_value: U256,
    max_gas_limit: u64,
    max_fee_per_gas: u128,
    max_deadline_ahead_secs: u64,
    rate_limit: Option<RateLimit>,
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
    let record = SlotRecord::decode(bytes)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A record stored under protocol version 1 (no `eip712_domains`)
    /// still loads, its pre-hashed kind allowing every domain as it did;
    /// a current record loads as stored.
    #[test]
    fn records_of_protocol_version_1_still_load() {
        let v1 = SlotRecordV1 {
            key: StoredKey::Derived(String::try_from("erc8004/agent").unwrap()),
            policy: PolicyV1 {
                kinds: KindSet(0xffff),
                chains: Allow::Any,
                contracts: Allow::Any,
                agents: Allow::Any,
                max_value: U256::ZERO,
                max_gas_limit: 21_000,
                max_fee_per_gas: 1,
                max_deadline_ahead_secs: 300,
                rate_limit: Some(RateLimit { max: 1, window_secs: 2 }),
            },
        };
        let mut buf = [0u8; MAX_SLOT_RECORD];
        let bytes = codec::encode(&v1, &mut buf).unwrap().to_vec();
        let r = SlotRecord::decode(&bytes).unwrap();
        assert_eq!(r.policy.eip712_domains, Allow::Any);
        assert_eq!((r.policy.kinds, r.policy.max_gas_limit), (KindSet(0xffff), 21_000));
        assert_eq!(r.key.origin(), KeyOrigin::Derived(String::try_from("erc8004/agent").unwrap()));
        let now = SlotRecord { key: r.key, policy: Policy::default() };
        let bytes = codec::encode(&now, &mut buf).unwrap().to_vec();
        assert_eq!(SlotRecord::decode(&bytes).unwrap().policy, Policy::default());
        assert!(SlotRecord::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
