//! Compaction: the journal rewritten as its current state beside the old
//! one, renamed over it, and what a failure at each step means (before
//! the rename the old journal stays; from it on, signing stops).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use tee_core::device::CounterId;

use super::{FileStore, JOURNAL, KEEP_AUDIT};
use crate::compaction::{Compaction, CompactionStep};
use crate::files::create_append_only;
use crate::journal::{self, CounterRecord, Genesis, Kind, SpendRecord};

impl FileStore {
    /// Compacts when the journal passes `bytes` instead of [`MAX_JOURNAL`]
    /// (tests make compactions frequent with it).
    pub fn set_max_journal(&mut self, bytes: u64) {
        self.max_journal = bytes;
    }

    /// Makes the next compactions fail as disk errors would (the host
    /// controls the disk: EIO, ENOSPC): the first at `steps[0]`, the next at
    /// `steps[1]`, and so on, every later one at the last step given.
    pub fn inject_compaction_faults(&mut self, steps: &[CompactionStep]) {
        self.compaction_faults = steps.iter().rev().copied().collect();
    }

    fn fault(&self, step: CompactionStep) -> io::Result<()> {
        if self.compaction_faults.last() == Some(&step) {
            return Err(io::Error::other(format!("injected fault at {step:?}")));
        }
        Ok(())
    }

    /// Rewrites the journal as its current state: a new genesis carrying
    /// the old head, every slot and mark, the newest audit entries. The new
    /// journal is written and synced beside the old one, then renamed over
    /// it; the store appends through the handle it wrote it with, which
    /// stays the new journal's whatever the directory says. A failure from
    /// the rename on fails the group commit: no reply that a restart could
    /// not account for leaves.
    pub(super) fn compact(&mut self) -> Result<(), Compaction> {
        let r = self.compact_once();
        if r.is_err() && self.compaction_faults.len() > 1 {
            self.compaction_faults.pop();
        }
        r
    }

    fn compact_once(&mut self) -> Result<(), Compaction> {
        let s = &self.state;
        let genesis =
            Genesis { generation: s.genesis.generation + 1, carried: self.head, ..s.genesis };
        let k = &self.keys;
        let mut out = Vec::new();
        let mut head = k.write(&k.start(), Kind::Genesis, &journal::encode(&genesis), &mut out);
        for (slot, record) in &s.slots {
            let sealed = k.seal_slot(*slot, record);
            let sealed = sealed.ok_or_else(|| Compaction::Kept(io::Error::other("seal")))?;
            head = k.write(&head, Kind::Slot, &sealed, &mut out);
        }
        for (key, mark) in &s.counters {
            let id = key.map_or(CounterId::Admin, CounterId::Slot);
            let spend = key.and_then(|slot| s.spends.get(&(slot, None)).copied());
            let rec = journal::encode(&CounterRecord { id, mark: *mark, spend });
            head = k.write(&head, Kind::Counter, &rec, &mut out);
        }
        for ((slot, asset), window) in &s.spends {
            if let Some(token) = asset {
                let rec =
                    journal::encode(&SpendRecord { slot: *slot, token: *token, window: *window });
                head = k.write(&head, Kind::Spend, &rec, &mut out);
            }
        }
        let keep = s.audit.len().saturating_sub(KEEP_AUDIT);
        for a in s.audit.get(keep..).unwrap_or_default() {
            head = k.write(&head, Kind::Audit, &journal::encode(a), &mut out);
        }
        let tmp = self.dir.join(format!("{JOURNAL}.tmp"));
        let file = self.write_temp(&tmp, &out).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Compaction::Kept(e)
        })?;
        let placed = self.place(&tmp);
        self.file = file;
        self.state.audit.drain(..keep);
        self.state.genesis = genesis;
        self.head = head;
        self.len = out.len() as u64;
        if let Err(e) = placed {
            self.group.fail();
            return Err(Compaction::Stopped(e));
        }
        // The new journal holds every write so far, durably.
        self.group.all_durable(Some(&self.file), self.head(), false).map_err(|_| {
            Compaction::Stopped(io::Error::other("the group commit had already failed"))
        })
    }

    /// The new journal at `tmp`, written and synced, open for appending.
    fn write_temp(&mut self, tmp: &Path, bytes: &[u8]) -> io::Result<File> {
        self.fault(CompactionStep::CreateTemp)?;
        let mut file = create_append_only(tmp)?;
        self.fault(CompactionStep::WriteTemp)?;
        file.write_all(bytes)?;
        self.fault(CompactionStep::SyncTemp)?;
        file.sync_all()?;
        Ok(file)
    }

    /// Renames `tmp` over the journal, durably.
    fn place(&mut self, tmp: &Path) -> io::Result<()> {
        self.fault(CompactionStep::Rename)?;
        std::fs::rename(tmp, self.dir.join(JOURNAL))?;
        self.fault(CompactionStep::SyncDir)?;
        File::open(&self.dir)?.sync_all()
    }
}
