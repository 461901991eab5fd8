//! Durable device state in a directory: one authenticated, append-only
//! journal ([`super::journal`]) of the device's provisioning, slot records,
//! anti-replay marks and audit entries.
//!
//! Every write appends to the journal, in order. A slot record (an admin
//! change) is fsynced before the call returns; a signature's mark, one
//! write with its audit entry, is made durable by the group commit
//! ([`super::group`]) before its reply leaves: one fsync for every reply
//! waiting, outside the device's lock (tmkms persists with rename but
//! never fsyncs, tmkms#1220; a mark that is not on disk when the signature
//! leaves is a double-sign waiting for a power cut).
//! Each record's MAC chains it to all before it, under a key derived from
//! the state key: on dstack a key only this app's measured CVM can derive,
//! without a TEE a key file made at provisioning (which whoever reads the
//! disk can use: weaker, and said so). So whoever holds the disk cannot
//! forge a record, lower a mark, swap the admin, restore an older slot
//! record or drop one record: the device refuses to open, it never reads
//! an edit as an empty slot or a lower mark. What it cannot see is the
//! journal's end cut off, or the whole directory restored from an older
//! copy (`docs/security.md`).
//!
//! The directory is held with an exclusive lock for as long as the store is
//! open: two signer processes on one state would each keep their own
//! high-water marks in memory and could sign two actions at one sequence.
//! When the journal grows past [`MAX_JOURNAL`] it is compacted: rewritten
//! as the current state and the newest audit entries, its last MAC carried
//! into the new genesis, and renamed into place.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tee_core::device::{AuditedMark, BackendError, CounterId, HighWater, Spent, Ticket};
use tee_core::policy::SpendWindow;
use tee_core::protocol::{AuditEntry, MAX_SLOTS};
use tee_core::{Address, B256};
use zeroize::Zeroizing;

pub use super::group::{Fault, GroupCommit, Head};
pub use super::journal::MAX_APPEND;
use super::journal::{
    self, AuditRecord, CounterRecord, FORMAT, Genesis, JournalError, Keys, Kind, Replay,
    SpendRecord,
};

use crate::compaction::Compaction;
pub use crate::compaction::CompactionStep;
/// A journal larger than this is compacted.
/// (8 MiB: a compaction rewrites the whole state under the device's lock,
/// so it should be rare; at start the journal is read whole, which this
/// keeps quick.)
pub use crate::error::StoreError;
pub use crate::files::{
    DSTACK_API_FILE, JOURNAL, KEY_FILE, create_private_dir, has_journal, record_dstack_api,
    recorded_dstack_api, write_durably,
};
use crate::files::{key_file, lock_private_dir};

mod compact;

pub const MAX_JOURNAL: u64 = 8 << 20;
/// Audit entries a compaction keeps (older ones are rotated out; the chain
/// head goes on).
pub const KEEP_AUDIT: usize = 4096;

/// Where the state key comes from.
pub enum StateKey {
    /// Derived from the TEE (dstack `GetKey` at a reserved path): only this
    /// app's measured CVM has it.
    Tee(Zeroizing<[u8; 32]>),
    /// [`KEY_FILE`] in the state directory, made at provisioning: anyone who
    /// reads the disk has it. For a signer without a TEE.
    File,
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateKey::Tee(_) => "StateKey::Tee",
            StateKey::File => "StateKey::File",
        })
    }
}

/// A device's provisioning: its id (random, made once) and its admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioning {
    /// The device id (bound into admin signatures).
    pub device_id: B256,
    /// The admin address.
    pub admin: Address,
}

/// Device state on disk. See the module documentation.
pub struct FileStore {
    dir: PathBuf,
    keys: Keys,
    file: File,
    /// The MAC of the last record.
    head: [u8; 32],
    /// Bytes of the journal.
    len: u64,
    state: State,
    /// The journal's durability: marks are written at once and synced in
    /// groups ([`GroupCommit`]).
    group: Arc<GroupCommit>,
    /// The size past which the journal is compacted ([`MAX_JOURNAL`]).
    max_journal: u64,
    /// Where the coming compactions fail, the next last (fault tests).
    compaction_faults: Vec<CompactionStep>,
    /// Held for the store's lifetime: the exclusive lock.
    _lock: File,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("generation", &self.state.genesis.generation)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// What the journal says, in memory.
struct State {
    genesis: Genesis,
    slots: BTreeMap<u8, Zeroizing<Vec<u8>>>,
    counters: BTreeMap<Option<u8>, HighWater>,
    /// Each slot's spend windows (wei's, `None`; each token's), as the last
    /// mark that reserved in each left it.
    spends: BTreeMap<(u8, Option<Address>), SpendWindow>,
    audit: Vec<AuditRecord>,
}

fn counter_key(id: CounterId) -> Option<u8> {
    match id {
        CounterId::Slot(n) => Some(n),
        CounterId::Admin => None,
    }
}

impl State {
    fn new(genesis: Genesis) -> State {
        State {
            genesis,
            slots: BTreeMap::new(),
            counters: BTreeMap::new(),
            spends: BTreeMap::new(),
            audit: Vec::new(),
        }
    }

    /// The state a replayed journal records; fails on a record whose MAC
    /// checks but whose content this code never writes.
    fn replay(keys: &Keys, r: &Replay<'_>) -> Result<State, JournalError> {
        let mut records = r.records.iter();
        let first = records.next().ok_or(JournalError::WrongKey)?;
        let genesis: Genesis = journal::decode(first.payload)
            .filter(|g: &Genesis| g.format == FORMAT)
            .ok_or(JournalError::Invalid { at: 0, kind: Kind::Genesis as u8 })?;
        let mut state = State::new(genesis);
        let mut at = journal::HEAD + first.payload.len() + journal::MAC;
        for rec in records {
            state
                .apply(keys, rec.kind, rec.payload)
                .ok_or(JournalError::Invalid { at, kind: rec.kind as u8 })?;
            at += journal::HEAD + rec.payload.len() + journal::MAC;
        }
        Ok(state)
    }

    /// Applies one record; `None` for content a device never writes (a
    /// second genesis, a slot out of range, a mark that does not rise, an
    /// audit entry out of order).
    fn apply(&mut self, keys: &Keys, kind: Kind, payload: &[u8]) -> Option<()> {
        match kind {
            Kind::Genesis => return None,
            Kind::Slot => {
                let (slot, record) = keys.open_slot(payload)?;
                if usize::from(slot) >= MAX_SLOTS {
                    return None;
                }
                self.slots.insert(slot, record);
            }
            Kind::Counter => {
                let c = CounterRecord::decode(payload)?;
                let key = counter_key(c.id);
                if key.is_some_and(|n| usize::from(n) >= MAX_SLOTS)
                    || self.counters.get(&key).is_some_and(|old| c.mark.value <= old.value)
                {
                    return None;
                }
                self.counters.insert(key, c.mark);
                match (key, c.spend) {
                    (Some(slot), Some(spend)) => {
                        self.spends.insert((slot, None), spend);
                    }
                    // The admin counter reserves nothing.
                    (None, Some(_)) => return None,
                    (_, None) => {}
                }
            }
            Kind::Spend => {
                let r: SpendRecord = journal::decode(payload)?;
                if usize::from(r.slot) >= MAX_SLOTS {
                    return None;
                }
                self.spends.insert((r.slot, Some(r.token)), r.window);
            }
            Kind::Audit => {
                let a: AuditRecord = journal::decode(payload)?;
                if self.audit.last().is_some_and(|last| a.entry.index != last.entry.index + 1) {
                    return None;
                }
                self.audit.push(a);
            }
        }
        Some(())
    }
}

impl FileStore {
    /// Opens (creating it, mode 0700) the state directory `dir`, takes its
    /// exclusive lock and reads its journal under `key`; a new directory
    /// is provisioned for `admin` (required then, and checked after).
    pub fn open(
        dir: &Path,
        key: StateKey,
        admin: Option<Address>,
    ) -> Result<FileStore, StoreError> {
        let shown = || dir.display().to_string();
        let io_err = |source| StoreError::Io { path: shown(), source };
        let lock = lock_private_dir(dir)?;
        let path = dir.join(JOURNAL);
        let bytes = match fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(e)),
        };
        if bytes.is_none()
            && ["device.json", "counter-admin.rec"].iter().any(|f| dir.join(f).exists())
        {
            return Err(StoreError::OldFormat { path: shown() });
        }
        let fresh = bytes.as_ref().is_none_or(Vec::is_empty);
        let state_key = match key {
            StateKey::Tee(k) => k,
            StateKey::File => key_file(dir, fresh)?,
        };
        let keys = Keys::derive(&state_key);
        let bytes = bytes.unwrap_or_default();
        let journal_err = |source| StoreError::Journal { path: shown(), source };
        let replay = journal::replay(&keys, &bytes).map_err(journal_err)?;
        if replay.torn > 0 {
            tracing::warn!(bytes = replay.torn, "state journal: a torn last write is discarded");
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io_err)?;
        if replay.records.is_empty() {
            // New (or never got past its genesis): provision it.
            let admin = admin.ok_or(StoreError::NoAdmin)?;
            let mut id = [0u8; 32];
            getrandom::fill(&mut id).map_err(|e| io_err(io::Error::other(e.to_string())))?;
            let genesis = Genesis {
                format: FORMAT,
                generation: 0,
                carried: [0; 32],
                device_id: B256(id),
                admin,
            };
            file.set_len(0).map_err(io_err)?;
            let mut out = Vec::new();
            let head =
                keys.write(&keys.start(), Kind::Genesis, &journal::encode(&genesis), &mut out);
            file.write_all(&out).and_then(|()| file.sync_all()).map_err(io_err)?;
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
            let (len, state) = (out.len() as u64, State::new(genesis));
            return FileStore::assemble(dir, keys, file, (head, len), state, lock).map_err(io_err);
        }
        if replay.torn > 0 {
            file.set_len(replay.good_len as u64).and_then(|()| file.sync_all()).map_err(io_err)?;
        }
        let state = State::replay(&keys, &replay).map_err(journal_err)?;
        if let Some(given) = admin
            && given != state.genesis.admin
        {
            return Err(StoreError::AdminMismatch { provisioned: state.genesis.admin, given });
        }
        let end = (replay.head, replay.good_len as u64);
        FileStore::assemble(dir, keys, file, end, state, lock).map_err(io_err)
    }

    /// The store over the journal `file`, whose last record's MAC and
    /// length are `end` and whose records made `state`.
    fn assemble(
        dir: &Path,
        keys: Keys,
        file: File,
        (head, len): ([u8; 32], u64),
        state: State,
        lock: File,
    ) -> io::Result<FileStore> {
        let generation = state.genesis.generation;
        let group = GroupCommit::new(&file, Head { generation, length: len, mac: head })?;
        Ok(FileStore {
            dir: dir.to_owned(),
            keys,
            file,
            head,
            len,
            state,
            group,
            max_journal: MAX_JOURNAL,
            compaction_faults: Vec::new(),
            _lock: lock,
        })
    }

    /// The journal's head as written (durable once the group commit
    /// covering it returned; [`GroupCommit::durable_head`]).
    #[must_use]
    pub fn head(&self) -> Head {
        Head { generation: self.state.genesis.generation, length: self.len, mac: self.head }
    }

    /// Whether `anchor`, a head this directory reached before, is on its
    /// journal: a head of an older generation is (a compaction carried it
    /// forward), one of this generation must be the MAC of the record that
    /// ends at its length. A head that is not says this directory's journal
    /// went another way since (a copy restored and written on).
    pub fn reached(&self, anchor: &Head) -> Result<bool, StoreError> {
        let generation = self.state.genesis.generation;
        if anchor.generation != generation || anchor.length > self.len {
            return Ok(anchor.generation < generation);
        }
        let path = self.dir.join(JOURNAL);
        let io_err = |source| StoreError::Io { path: path.display().to_string(), source };
        let bytes = fs::read(&path).map_err(io_err)?;
        Ok(journal::head_at(&self.keys, &bytes, anchor.length) == Some(anchor.mac))
    }

    /// The device's provisioning.
    #[must_use]
    pub fn provisioning(&self) -> Provisioning {
        Provisioning { device_id: self.state.genesis.device_id, admin: self.state.genesis.admin }
    }

    /// The secret of the device's identity key, derived from the state key:
    /// with a TEE only this app's CVM has it, without one whoever reads the
    /// key file.
    #[must_use]
    pub fn identity_secret(&self) -> Zeroizing<[u8; 32]> {
        self.keys.identity().clone()
    }

    /// The state directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The journal's group commit (the server waits on it).
    #[must_use]
    pub fn group(&self) -> Arc<GroupCommit> {
        self.group.clone()
    }

    /// Where writes reached that are not durable yet
    /// (`CounterStore::ticket`).
    #[must_use]
    pub fn ticket(&self) -> Option<Ticket> {
        self.group.pending()
    }

    /// Makes the journal durable up to `ticket` (`CounterStore::make_durable`).
    pub fn make_durable(&self, ticket: Ticket) -> Result<(), BackendError> {
        self.group.wait(ticket)
    }

    /// Appends `records` in one write, then applies them: fsynced now if
    /// `sync` (with every write before), else durable with the group
    /// commit that covers its ticket. `strict`: a change whose reply waits
    /// for the rollback anchor too ([`GroupCommit::must_anchor`]).
    fn append(
        &mut self,
        records: &[(Kind, Vec<u8>)],
        sync: bool,
        strict: bool,
    ) -> Result<(), BackendError> {
        if self.group.failed() {
            // A sync failed: what is on disk is unknown until a restart
            // reads it back.
            return Err(BackendError::Failed);
        }
        let mut out = Vec::new();
        let mut head = self.head;
        for (kind, payload) in records {
            if payload.len() > journal::MAX_PAYLOAD {
                return Err(BackendError::Failed);
            }
            head = self.keys.write(&head, *kind, payload, &mut out);
        }
        if let Err(e) = self.file.write_all(&out) {
            // Cut what may have reached the file, so the next append
            // follows the last good record.
            let _ = self.file.set_len(self.len);
            tracing::warn!(error = %e, "state journal write failed");
            return Err(BackendError::Failed);
        }
        self.head = head;
        self.len += out.len() as u64;
        if sync {
            if let Err(e) = self.file.sync_data() {
                // Others' writes may be lost with this one: stop.
                tracing::error!(error = %e, "state journal sync failed: signing stops until restart");
                self.group.fail();
                return Err(BackendError::Failed);
            }
            self.group.all_durable(None, self.head(), strict).map_err(|_| BackendError::Failed)?;
        } else {
            self.group.wrote(out.len() as u64, self.head(), strict);
        }
        for (kind, payload) in records {
            let _ = self.state.apply(&self.keys, *kind, payload);
        }
        if self.len > self.max_journal {
            match self.compact() {
                Ok(()) => {}
                // The old journal holds this write (durable with its
                // group); compacting is tried again at the next write.
                Err(Compaction::Kept(e)) => {
                    tracing::warn!(error = %e, "state journal compaction failed; the journal is kept");
                }
                Err(Compaction::Stopped(e)) => {
                    tracing::error!(error = %e, "state journal compaction failed after the rename: signing stops until restart");
                    return Err(BackendError::Failed);
                }
            }
        }
        Ok(())
    }

    /// Slot `slot`'s record (`KeyStore::load_slot`).
    pub fn load_slot(&mut self, slot: u8, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        check_slot(slot)?;
        match self.state.slots.get(&slot) {
            None => Ok(None),
            Some(rec) => {
                buf.get_mut(..rec.len()).ok_or(BackendError::Failed)?.copy_from_slice(rec);
                Ok(Some(rec.len()))
            }
        }
    }

    /// Replaces slot `slot`'s record durably (`KeyStore::store_slot`).
    pub fn store_slot(&mut self, slot: u8, record: &[u8]) -> Result<(), BackendError> {
        check_slot(slot)?;
        let sealed = self.keys.seal_slot(slot, record).ok_or(BackendError::Failed)?;
        self.append(&[(Kind::Slot, sealed)], true, true)
    }

    /// A durable counter (`CounterStore::load_counter`).
    pub fn load_counter(&mut self, id: CounterId) -> Result<Option<HighWater>, BackendError> {
        if let CounterId::Slot(n) = id {
            check_slot(n)?;
        }
        Ok(self.state.counters.get(&counter_key(id)).copied())
    }

    /// Slot `slot`'s spend window of `asset` (`None`: wei) as its marks
    /// left it (`CounterStore::load_spend`).
    pub fn load_spend(
        &mut self,
        slot: u8,
        asset: Option<&Address>,
    ) -> Result<Option<SpendWindow>, BackendError> {
        check_slot(slot)?;
        Ok(self.state.spends.get(&(slot, asset.copied())).copied())
    }

    /// Commits a counter durably (`CounterStore::commit_counter`). The
    /// device commits only values above the last one (it checks that
    /// itself, for every backend), and a journal whose marks do not rise
    /// does not open.
    pub fn commit_counter(&mut self, id: CounterId, value: &HighWater) -> Result<(), BackendError> {
        self.commit(id, value, None, None)
    }

    /// A mark and its audit entry in one durable write.
    pub fn commit_counter_audited(
        &mut self,
        id: CounterId,
        m: AuditedMark<'_>,
    ) -> Result<(), BackendError> {
        let audit = AuditRecord { entry: *m.entry, prev: *m.prev };
        self.commit(id, m.mark, Some(audit), m.spend.copied())
    }

    fn commit(
        &mut self,
        id: CounterId,
        mark: &HighWater,
        audit: Option<AuditRecord>,
        spent: Option<Spent>,
    ) -> Result<(), BackendError> {
        let slot = match id {
            CounterId::Slot(n) => n,
            CounterId::Admin if spent.is_some() => return Err(BackendError::Failed),
            CounterId::Admin => 0,
        };
        if let CounterId::Slot(n) = id {
            check_slot(n)?;
        }
        let mut records = Vec::with_capacity(3);
        if let Some(a) = &audit {
            records.push((Kind::Audit, journal::encode(a)));
        }
        // Wei's window rides in the counter record; a token's in its own
        // record, before the counter's, in the same write.
        let spend = match spent {
            Some(Spent { asset: Some(token), window }) => {
                let r = SpendRecord { slot, token, window };
                records.push((Kind::Spend, journal::encode(&r)));
                None
            }
            Some(Spent { asset: None, window }) => Some(window),
            None => None,
        };
        records.push((Kind::Counter, journal::encode(&CounterRecord { id, mark: *mark, spend })));
        // Durable with its group: the reply waits for its ticket (and an
        // admin change's for the rollback anchor).
        self.append(&records, false, id == CounterId::Admin)
    }

    /// The audit chain's next index and head (`AuditStore::audit_head`).
    #[must_use]
    pub fn audit_head(&self) -> Option<(u64, B256)> {
        let a = self.state.audit.last()?;
        Some((a.entry.index + 1, tee_core::device::audit_chain_hash(&a.prev, &a.entry)))
    }

    /// Appends an audit entry (`AuditStore::audit_append`).
    pub fn audit_append(
        &mut self,
        entry: &AuditEntry,
        prev: &B256,
        durable: bool,
    ) -> Result<(), BackendError> {
        let rec = AuditRecord { entry: *entry, prev: *prev };
        self.append(&[(Kind::Audit, journal::encode(&rec))], durable, durable)
    }

    /// Audit entry `index` (`AuditStore::audit_entry`).
    #[must_use]
    pub fn audit_entry(&self, index: u64) -> Option<(AuditEntry, B256)> {
        let audit = &self.state.audit;
        let first = audit.first()?.entry.index;
        let a = audit.get(usize::try_from(index.checked_sub(first)?).ok()?)?;
        Some((a.entry, a.prev))
    }

    /// The oldest audit index kept.
    #[must_use]
    pub fn audit_oldest(&self) -> u64 {
        self.state.audit.first().map_or(u64::MAX, |a| a.entry.index)
    }
}

fn check_slot(slot: u8) -> Result<(), BackendError> {
    if usize::from(slot) < MAX_SLOTS { Ok(()) } else { Err(BackendError::Failed) }
}
