//! The state journal's format: an append-only file of records, each
//! authenticated by a MAC that chains it to every record before it.
//!
//! ```text
//! record = len: u32 LE ‖ kind: u8 ‖ payload (len bytes) ‖ mac (32)
//! mac_i  = HMAC-SHA256(mac key, mac_{i-1} ‖ len ‖ kind ‖ payload)
//! mac_-1 = HMAC-SHA256(mac key, "tee-signer journal v1")
//! ```
//! The first record is the genesis (format, generation, the device's id and
//! admin); then slot records (sealed with ChaCha20-Poly1305), counter marks
//! and audit entries, in the order they were made durable. The MAC and seal
//! keys are derived from one state key (on dstack, a key only this app's
//! measured CVM can derive), so whoever holds the disk can neither forge a
//! record, nor drop or reorder one in the middle: every later MAC breaks.
//! What the chain cannot show is the end cut off: a torn last record (a
//! write the crash interrupted, whose call never returned) is discarded,
//! and so is a tail an attacker cut off, which is the whole-state rollback
//! the journal alone cannot see: with shared marks, the database records
//! the journal's durable head ([`crate::group::Head`]) outside the host
//! (tee-host's rollback anchor); without, `docs/security.md` says what is
//! out of reach.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tee_core::device::{CounterId, HighWater};
use tee_core::policy::SpendWindow;
use tee_core::protocol::AuditEntry;
use tee_core::{Address, B256, codec};
use zeroize::Zeroizing;

/// Bytes of a record's length and kind.
pub(super) const HEAD: usize = 5;
/// Bytes of a record's MAC.
pub(super) const MAC: usize = 32;
/// The largest payload a record may carry (a sealed slot record: at most
/// 1,117 bytes since protocol 12's approval rule; it was 1,024).
pub(super) const MAX_PAYLOAD: usize = 1152;
/// The journal format this code writes and reads.
pub(super) const FORMAT: u8 = 1;
/// The shortest genesis payload (its varints at their shortest).
const MIN_GENESIS: usize = 1 + 1 + 32 + 32 + 20;
/// The most one append writes (a sealed slot record; or an audit entry and
/// a mark): a crash can tear at most this much off the end, so a longer
/// tail that does not read is an edit, not a torn write.
pub const MAX_APPEND: usize = 2 * (HEAD + MAX_PAYLOAD + MAC);

// A sealed slot record (slot, nonce, record, tag) is one record's payload.
const _: () = assert!(1 + 12 + tee_core::limits::MAX_SLOT_RECORD + 16 <= MAX_PAYLOAD);

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Genesis = 1,
    Slot = 2,
    Counter = 3,
    Audit = 4,
    /// A token's spend window ([`SpendRecord`]), written just before the
    /// counter record of the signature that reserved in it.
    Spend = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        [Kind::Genesis, Kind::Slot, Kind::Counter, Kind::Audit, Kind::Spend]
            .into_iter()
            .find(|k| *k as u8 == b)
    }
}

/// The first record of a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Genesis {
    /// [`FORMAT`].
    pub format: u8,
    /// Counts compactions: each rewrites the journal with one more.
    pub generation: u64,
    /// The last MAC of the journal this one was compacted from (zero for
    /// the first).
    pub carried: [u8; 32],
    /// The device's id.
    pub device_id: B256,
    /// The device's admin.
    pub admin: Address,
}

/// A counter record: the mark, and for a signature that reserved value
/// under its slot's spend cap, the slot's spend window after it (in the
/// same record, so a restart finds both or neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CounterRecord {
    pub id: CounterId,
    pub mark: HighWater,
    pub spend: Option<SpendWindow>,
}

/// A counter record as journals before spend caps wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CounterRecordV1 {
    id: CounterId,
    mark: HighWater,
}

impl CounterRecord {
    /// Decodes a counter record of either layout.
    pub(super) fn decode(payload: &[u8]) -> Option<CounterRecord> {
        decode(payload).or_else(|| {
            let v1: CounterRecordV1 = decode(payload)?;
            Some(CounterRecord { id: v1.id, mark: v1.mark, spend: None })
        })
    }
}

/// A slot's spend window of a token, in the same write as (and before) the
/// counter record of the signature that reserved in it: a torn write that
/// keeps the mark keeps the reservation (the other way round, a
/// reservation kept without its mark, only spends the window early).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SpendRecord {
    pub slot: u8,
    pub token: Address,
    pub window: SpendWindow,
}

/// An audit record: the entry and the chain hash before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct AuditRecord {
    pub entry: AuditEntry,
    pub prev: B256,
}

/// The MAC and seal keys of a state key, and the device's identity secret.
pub(super) struct Keys {
    mac: Zeroizing<[u8; 32]>,
    seal: Zeroizing<[u8; 32]>,
    identity: Zeroizing<[u8; 32]>,
}

impl Keys {
    /// Derives all three from the 32-byte state key.
    pub(super) fn derive(state_key: &[u8; 32]) -> Keys {
        let hk = Hkdf::<Sha256>::new(Some(b"tee-signer state v1"), state_key);
        let mut mac = Zeroizing::new([0u8; 32]);
        let mut seal = Zeroizing::new([0u8; 32]);
        let mut identity = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
        let _ = hk.expand(b"mac", &mut mac[..]);
        let _ = hk.expand(b"seal", &mut seal[..]);
        let _ = hk.expand(b"identity", &mut identity[..]);
        Keys { mac, seal, identity }
    }

    /// The secret of the device's identity key (signing its admin
    /// statements): as private as the state key.
    pub(super) fn identity(&self) -> &Zeroizing<[u8; 32]> {
        &self.identity
    }

    /// The MAC before the first record.
    pub(super) fn start(&self) -> [u8; 32] {
        self.hmac(&[b"tee-signer journal v1"])
    }

    fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.mac[..]) else {
            return [0; 32];
        };
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Appends one record after `prev` to `out`; returns its MAC.
    pub(super) fn write(
        &self,
        prev: &[u8; 32],
        kind: Kind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> [u8; 32] {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes();
        let mac = self.hmac(&[prev, &len, &[kind as u8], payload]);
        out.extend_from_slice(&len);
        out.push(kind as u8);
        out.extend_from_slice(payload);
        out.extend_from_slice(&mac);
        mac
    }

    fn cipher(&self) -> Option<ChaCha20Poly1305> {
        ChaCha20Poly1305::new_from_slice(&self.seal[..]).ok()
    }

    /// A slot record's payload: slot ‖ nonce ‖ ChaCha20-Poly1305(record),
    /// the slot bound as associated data.
    pub(super) fn seal_slot(&self, slot: u8, record: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).ok()?;
        let aad = [&b"tee-signer slot"[..], &[slot]].concat();
        let ct =
            self.cipher()?.encrypt(&Nonce::from(nonce), Payload { msg: record, aad: &aad }).ok()?;
        Some([&[slot][..], &nonce, &ct].concat())
    }

    /// Opens a slot record's payload: its slot and the record.
    pub(super) fn open_slot(&self, payload: &[u8]) -> Option<(u8, Zeroizing<Vec<u8>>)> {
        let (&slot, rest) = payload.split_first()?;
        let (nonce, ct) = rest.split_at_checked(12)?;
        let aad = [&b"tee-signer slot"[..], &[slot]].concat();
        let nonce = Nonce::try_from(nonce).ok()?;
        let clear = self.cipher()?.decrypt(&nonce, Payload { msg: ct, aad: &aad }).ok()?;
        Some((slot, Zeroizing::new(clear)))
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Read<'j> {
    pub kind: Kind,
    pub payload: &'j [u8],
}

/// How a journal's bytes read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Replay<'j> {
    /// The records whose MACs check, in order.
    pub records: Vec<Read<'j>>,
    /// Bytes of those records: where the next append goes.
    pub good_len: usize,
    /// The MAC of the last good record (or the start).
    pub head: [u8; 32],
    /// Bytes after the good records that form no record whose MAC checks:
    /// the last write, torn by a crash (or a tail cut by whoever holds the
    /// disk; the two look alike).
    pub torn: usize,
}

/// Why a journal cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// A record in the middle fails its MAC or its shape: not a torn write,
    /// an edit.
    #[error(
        "record at byte {at} is not what was written (MAC or shape), and records follow it: the journal was edited"
    )]
    Tampered {
        /// Its offset.
        at: usize,
    },
    /// The first record is not a genesis this key made.
    #[error("the journal does not open under this state key (another app, another key, or edited)")]
    WrongKey,
    /// A record whose MAC checks but whose content is not what this code
    /// writes.
    #[error("record at byte {at} is not a valid {kind:?} record")]
    Invalid {
        /// Its offset.
        at: usize,
        /// Its kind.
        kind: u8,
    },
}

/// Reads `bytes` as a journal under `keys`. A record that fails with
/// nothing after it is a torn tail; one that fails with records after it
/// is an edit.
pub(super) fn replay<'j>(keys: &Keys, bytes: &'j [u8]) -> Result<Replay<'j>, JournalError> {
    let mut records = Vec::new();
    let mut head = keys.start();
    let mut at = 0;
    // Only a provisioning that crashed leaves a genesis torn, and it never
    // wrote more than one genesis: a longer file whose genesis does not
    // read is not ours (or was edited), never a new device to provision.
    if bytes.len() >= HEAD + MIN_GENESIS + MAC && !genesis_reads(keys, bytes) {
        return Err(JournalError::WrongKey);
    }
    while at < bytes.len() {
        let rest = bytes.get(at..).unwrap_or_default();
        // What does not read from here on: a torn last write if a crash
        // could have left it, an edit otherwise.
        let cut = |records| {
            if rest.len() <= MAX_APPEND {
                Ok(Replay { records, good_len: at, head, torn: rest.len() })
            } else if at == 0 {
                Err(JournalError::WrongKey)
            } else {
                Err(JournalError::Tampered { at })
            }
        };
        let Some((&[l0, l1, l2, l3, k], body)) = rest.split_first_chunk::<HEAD>() else {
            return cut(records);
        };
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let Some((payload, after)) = body.split_at_checked(len.min(MAX_PAYLOAD + 1)) else {
            return cut(records);
        };
        let Some((mac, after)) = after.split_at_checked(MAC) else {
            return cut(records);
        };
        let expected = keys.hmac(&[&head, &[l0, l1, l2, l3], &[k], payload]);
        let kind = Kind::from_u8(k);
        let good = len <= MAX_PAYLOAD && mac == expected && kind.is_some();
        if !good {
            // A crash can leave the last write torn, or the file grown with
            // zeros its data never reached: a tail, not an edit.
            if after.is_empty() || rest.iter().all(|&b| b == 0) {
                return cut(records);
            }
            return Err(if at == 0 {
                JournalError::WrongKey
            } else {
                JournalError::Tampered { at }
            });
        }
        if records.is_empty() != (kind == Some(Kind::Genesis)) {
            return Err(JournalError::Invalid { at, kind: k });
        }
        if let Some(kind) = kind {
            records.push(Read { kind, payload });
        }
        head = expected;
        at += HEAD + len + MAC;
    }
    Ok(Replay { records, good_len: at, head, torn: 0 })
}

/// The MAC of the record of `bytes` (a journal under `keys`) that ends at
/// byte `length`: `None` if no record ends there, or the records up to it do
/// not check.
pub(super) fn head_at(keys: &Keys, bytes: &[u8], length: u64) -> Option<[u8; 32]> {
    let mut head = keys.start();
    let mut at = 0u64;
    let mut rest = bytes;
    while at < length {
        let (&[l0, l1, l2, l3, k], body) = rest.split_first_chunk::<HEAD>()?;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if len > MAX_PAYLOAD {
            return None;
        }
        let (payload, after) = body.split_at_checked(len)?;
        let (mac, after) = after.split_at_checked(MAC)?;
        let expected = keys.hmac(&[&head, &[l0, l1, l2, l3], &[k], payload]);
        if mac != expected {
            return None;
        }
        head = expected;
        at += (HEAD + len + MAC) as u64;
        rest = after;
    }
    (at == length).then_some(head)
}

/// A journal of `records` (kind byte, payload) under `state_key`, MACs
/// chained as the store writes them: for tools and fuzzing, which need
/// records that pass the MAC to reach what is behind it.
#[must_use]
pub fn write_records(state_key: &[u8; 32], records: &[(u8, &[u8])]) -> Vec<u8> {
    let keys = Keys::derive(state_key);
    let mut out = Vec::new();
    let mut prev = keys.start();
    for (kind, payload) in records {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes();
        let mac = keys.hmac(&[&prev, &len, &[*kind], payload]);
        out.extend_from_slice(&len);
        out.push(*kind);
        out.extend_from_slice(payload);
        out.extend_from_slice(&mac);
        prev = mac;
    }
    out
}

/// The payload of a genesis record for `device_id` and `admin` (tools and
/// fuzzing).
#[must_use]
pub fn genesis_payload(device_id: B256, admin: Address) -> Vec<u8> {
    encode(&Genesis { format: FORMAT, generation: 0, carried: [0; 32], device_id, admin })
}

/// Whether `bytes` start with a complete genesis record whose MAC checks.
fn genesis_reads(keys: &Keys, bytes: &[u8]) -> bool {
    let Some((&[l0, l1, l2, l3, k], body)) = bytes.split_first_chunk::<HEAD>() else {
        return false;
    };
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let Some((payload, rest)) = body.split_at_checked(len) else { return false };
    let Some(mac) = rest.get(..MAC) else { return false };
    k == Kind::Genesis as u8 && mac == keys.hmac(&[&keys.start(), &[l0, l1, l2, l3], &[k], payload])
}

/// Decodes a record's payload, canonically.
pub(super) fn decode<'p, T: Deserialize<'p> + Serialize>(payload: &'p [u8]) -> Option<T> {
    codec::decode(payload).ok()
}

/// Encodes a record's payload.
pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_PAYLOAD];
    let n = codec::encode(value, &mut buf).map(|b| b.len()).unwrap_or(0);
    buf.truncate(n);
    buf
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn journal(keys: &Keys, payloads: &[(Kind, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = keys.start();
        for (kind, p) in payloads {
            prev = keys.write(&prev, *kind, p, &mut out);
        }
        out
    }

    #[test]
    fn chain_torn_tail_and_edits() {
        let keys = Keys::derive(&[7; 32]);
        let g = genesis_payload(B256([1; 32]), Address([2; 20]));
        let j =
            journal(&keys, &[(Kind::Genesis, &g), (Kind::Counter, b"c1"), (Kind::Counter, b"c2")]);
        let second = HEAD + g.len() + MAC;
        let r = replay(&keys, &j).unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!((r.good_len, r.torn), (j.len(), 0));
        // Every cut is a torn tail: the records before it stay (a genesis
        // cut short only while shorter than any genesis).
        for cut in (0..HEAD + MIN_GENESIS + MAC).chain(second..j.len()) {
            let r = replay(&keys, &j[..cut]).unwrap();
            assert!(r.good_len <= cut && r.good_len + r.torn == cut, "{cut}");
        }
        // Any byte changed in a record with records after it: an edit.
        for at in 0..second {
            let mut bad = j.clone();
            bad[at] ^= 1;
            assert!(replay(&keys, &bad).is_err(), "byte {at}");
        }
        // The last record changed: indistinguishable from a torn write.
        let mut last = j.clone();
        let n = last.len();
        last[n - 1] ^= 1;
        let r = replay(&keys, &last).unwrap();
        assert_eq!(r.records.len(), 2);
        // A record dropped from the middle: what follows it never reads
        // (here the last record, so it reads as a torn tail).
        let mut dropped = j[..second].to_vec();
        dropped.extend_from_slice(&j[second + HEAD + 2 + MAC..]);
        assert_eq!(replay(&keys, &dropped).unwrap().records.len(), 1);
        // Zeros after the last good record (a crash that grew the file).
        let mut grown = j.clone();
        grown.extend_from_slice(&[0; 100]);
        assert_eq!(replay(&keys, &grown).unwrap().records.len(), 3);
        // Another key opens nothing.
        let other = Keys::derive(&[8; 32]);
        assert_eq!(replay(&other, &j).unwrap_err(), JournalError::WrongKey);
    }

    #[test]
    fn slots_open_only_under_their_key_and_slot() {
        let keys = Keys::derive(&[7; 32]);
        let sealed = keys.seal_slot(3, b"secret record").unwrap();
        let (slot, clear) = keys.open_slot(&sealed).unwrap();
        assert_eq!((slot, &clear[..]), (3, &b"secret record"[..]));
        let mut moved = sealed.clone();
        moved[0] = 4;
        assert!(keys.open_slot(&moved).is_none());
        assert!(Keys::derive(&[8; 32]).open_slot(&sealed).is_none());
    }
}
