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

impl SlotRecord {
    /// Decodes the stored record `buf[..len]`: the current layout, or one
    /// stored before a field was appended, read as if it held that field's
    /// default: a record of protocol version 11 has no `approvals` (`None`,
    /// `00`); one of version 10 no `tokens` (none,
    /// `00`), `recipients` (none, `00 00`) or `unlimited_approvals` (no,
    /// `00`); one of versions 2 to 9 neither `spend_cap` (`None`, `00`) nor
    /// `valid_until` (never, `00`); one of version 1 neither
    /// `eip712_domains` (its pre-hashed kind, if named, allowed every
    /// domain: `Any`, `01`). Each shorter layout fails to decode with a
    /// longer one's tail (too few bytes), so the first that decodes is it. The defaults' bytes are written after
    /// the record in `buf` and the one decoder reads them (a second decoder
    /// per layout would cost a microcontroller's flash).
    #[inline(never)]
    fn decode(buf: &mut [u8], len: usize) -> Result<SlotRecord, DeviceError> {
        const V11: [u8; 1] = [0];
        const V10: [u8; 5] = [0; 5];
        const V2: [u8; 7] = [0; 7];
        const V1: [u8; 8] = [0x01, 0, 0, 0, 0, 0, 0, 0];
        for missing in [&[][..], &V11, &V10, &V2, &V1] {
            let end = len + missing.len();
            let Some(tail) = buf.get_mut(len..end) else { break };
            tail.copy_from_slice(missing);
            if let Ok(record) = codec::decode(buf.get(..end).unwrap_or_default()) {
                return Ok(record);
            }
        }
        Err(DeviceError::Storage)
    }
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
    let record = SlotRecord::decode(&mut buf[..], len)?;
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
    Ok(Some((LoadedKey { key, origin }, record.policy)))
}

/// A [`SlotRecord`] to store, by reference (the same encoding: postcard
/// writes a reference as what it points to), so storing a policy does not
/// copy it onto the stack first.
#[derive(Serialize)]
struct SlotRecordRef<'a> {
    key: &'a StoredKey,
    policy: &'a Policy,
}

/// Makes slot `n`'s record (`key`, `policy`) durable; the caller updates
/// the slot after.
pub(super) fn store<B: KeyStore>(
    backend: &mut B,
    n: u8,
    key: &StoredKey,
    policy: &Policy,
) -> Result<(), DeviceError> {
    let mut buf = Zeroizing::new([0u8; MAX_SLOT_RECORD]);
    let record = SlotRecordRef { key, policy };
    let bytes = codec::encode(&record, &mut buf[..]).map_err(|_| DeviceError::Storage)?;
    backend.store_slot(n, bytes).map_err(|_| DeviceError::Storage)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::limits::{
        MAX_POLICY_AGENTS, MAX_POLICY_CHAINS, MAX_POLICY_CONTRACTS, MAX_POLICY_DOMAINS,
    };
    use crate::primitives::{Address, B256, U256};
    use crate::protocol::{Allow, KindSet, RateLimit};

    /// A slot record as protocol versions 2 to 9 stored it.
    #[derive(Serialize, Deserialize)]
    struct SlotRecordV2 {
        key: StoredKey,
        policy: PolicyV2,
    }

    /// [`Policy`] before `spend_cap`: version 1's fields, then the domains
    /// (postcard writes a struct's fields one after another, so a nested
    /// struct reads the same bytes).
    #[derive(Serialize, Deserialize)]
    struct PolicyV2 {
        v1: PolicyV1,
        eip712_domains: Allow<B256, MAX_POLICY_DOMAINS>,
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

    /// The largest record (a derived key's longest path, every list of the
    /// policy full, every number at its longest) fits `MAX_SLOT_RECORD`.
    #[test]
    fn the_largest_record_fits() {
        use crate::limits::{
            MAX_PATH_LEN, MAX_POLICY_APPROVERS, MAX_POLICY_RECIPIENTS, MAX_POLICY_TOKENS,
        };
        use crate::protocol::{ApprovalRule, SpendCap, TokenRule};
        let a = Address([0xff; 20]);
        let policy = Policy {
            kinds: KindSet(u32::MAX),
            chains: Allow::Only(heapless::Vec::from_slice(&[u64::MAX; MAX_POLICY_CHAINS]).unwrap()),
            contracts: Allow::Only(heapless::Vec::from_slice(&[a; MAX_POLICY_CONTRACTS]).unwrap()),
            agents: Allow::Only(
                heapless::Vec::from_slice(&[U256([0xff; 32]); MAX_POLICY_AGENTS]).unwrap(),
            ),
            max_value: U256([0xff; 32]),
            max_gas_limit: u64::MAX,
            max_fee_per_gas: u128::MAX,
            max_deadline_ahead_secs: u64::MAX,
            rate_limit: Some(RateLimit { max: u32::MAX, window_secs: u32::MAX }),
            eip712_domains: Allow::Only(
                heapless::Vec::from_slice(&[B256([0xff; 32]); MAX_POLICY_DOMAINS]).unwrap(),
            ),
            spend_cap: Some(SpendCap { max: U256([0xff; 32]), window_secs: u32::MAX }),
            valid_until: u64::MAX,
            tokens: heapless::Vec::from_slice(
                &[TokenRule {
                    token: a,
                    max_amount: U256([0xff; 32]),
                    cap: Some(SpendCap { max: U256([0xff; 32]), window_secs: u32::MAX }),
                }; MAX_POLICY_TOKENS],
            )
            .unwrap(),
            recipients: Allow::Only(
                heapless::Vec::from_slice(&[a; MAX_POLICY_RECIPIENTS]).unwrap(),
            ),
            unlimited_approvals: true,
            approvals: Some(ApprovalRule {
                approvers: heapless::Vec::from_slice(&[a; MAX_POLICY_APPROVERS]).unwrap(),
                threshold: u8::MAX,
                kinds: KindSet(u32::MAX),
                above_value: Some(U256([0xff; 32])),
                above_amount: Some(U256([0xff; 32])),
                max_ttl_secs: u32::MAX,
            }),
        };
        let path = String::try_from("p".repeat(MAX_PATH_LEN).as_str()).unwrap();
        let record = SlotRecord { key: StoredKey::Derived(path), policy };
        let len = codec::encoded_len(&record).unwrap();
        assert_eq!(len, 1068);
        assert!(len <= MAX_SLOT_RECORD);
        let mut buf = [0u8; MAX_SLOT_RECORD];
        let bytes = codec::encode(&record, &mut buf).unwrap().to_vec();
        assert_eq!(decode(&bytes).unwrap().policy, record.policy);
    }

    fn decode(bytes: &[u8]) -> Result<SlotRecord, DeviceError> {
        let mut buf = [0u8; MAX_SLOT_RECORD];
        buf[..bytes.len()].copy_from_slice(bytes);
        SlotRecord::decode(&mut buf, bytes.len())
    }

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
        let r = decode(&bytes).unwrap();
        assert_eq!(r.policy.eip712_domains, Allow::Any);
        assert_eq!((r.policy.kinds, r.policy.max_gas_limit), (KindSet(0xffff), 21_000));
        assert_eq!(r.key.origin(), KeyOrigin::Derived(String::try_from("erc8004/agent").unwrap()));
        let now = SlotRecord { key: r.key, policy: Policy::default() };
        let bytes = codec::encode(&now, &mut buf).unwrap().to_vec();
        assert_eq!(decode(&bytes).unwrap().policy, Policy::default());
        // Without its last byte (no approval rule) a record is one of
        // version 11; without five (no tokens, recipients or unlimited
        // approvals either) one of version 10; without seven (no cap, no
        // end either) one of versions 2 to 9; otherwise short it is nothing.
        for short in [1, 5, 7] {
            assert_eq!(decode(&bytes[..bytes.len() - short]).unwrap().policy, Policy::default());
        }
        for short in [2, 3, 4, 6, 8] {
            assert!(decode(&bytes[..bytes.len() - short]).is_err(), "{short}");
        }
    }

    #[test]
    fn records_of_protocol_versions_2_to_9_load_without_a_cap() {
        let domains = Allow::Only(heapless::Vec::from_slice(&[B256([7; 32])]).unwrap());
        let v2 = SlotRecordV2 {
            key: StoredKey::Derived(String::try_from("erc8004/agent").unwrap()),
            policy: PolicyV2 {
                v1: PolicyV1 {
                    kinds: KindSet(0xffff),
                    chains: Allow::Any,
                    contracts: Allow::Any,
                    agents: Allow::Any,
                    max_value: U256::from_u64(5),
                    max_gas_limit: 21_000,
                    max_fee_per_gas: 1,
                    max_deadline_ahead_secs: 300,
                    rate_limit: None,
                },
                eip712_domains: domains.clone(),
            },
        };
        let mut buf = [0u8; MAX_SLOT_RECORD];
        let bytes = codec::encode(&v2, &mut buf).unwrap().to_vec();
        let r = decode(&bytes).unwrap();
        assert_eq!(r.policy.eip712_domains, domains);
        assert_eq!((r.policy.spend_cap, r.policy.valid_until), (None, 0));
        assert_eq!(r.policy.max_value, U256::from_u64(5));
    }
}
