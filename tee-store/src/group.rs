//! Group commit of the state journal: a signature's mark (and its audit
//! entry) is written under the device's lock, in order, and made durable
//! outside it by one `fsync` shared among every request whose write arrived
//! meanwhile, as databases commit transactions. The rule stays "no
//! signature leaves before its mark is durable": each response carries a
//! [`Ticket`] (how far the journal's writes had reached when it was made),
//! and the server releases it only once [`GroupCommit::wait`] says the
//! journal is durable that far.
//!
//! One waiter at a time is the leader: it syncs the journal (everything
//! written so far, also what others wrote while it waited for the lock) and
//! wakes the others; whoever's ticket the sync did not cover leads the next
//! one. A failed sync fails every waiter and every later write: the state
//! on disk is then unknown, so the signer signs nothing more until it is
//! restarted and reads back what reached the disk.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use tee_core::device::{BackendError, Ticket};

/// The journal's durability, shared by the store (which writes) and the
/// server (which waits). See the module documentation.
#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<Inner>,
    synced: Condvar,
}

#[derive(Debug)]
struct Inner {
    /// A handle on the journal (the same open file as the store's).
    file: Arc<File>,
    /// Bytes written since the store opened (never goes back, also not at
    /// a compaction): the tickets.
    written: u64,
    /// Of them, durable.
    durable: u64,
    /// The journal file's length, and how much of it is durable.
    file_len: u64,
    durable_file_len: u64,
    /// A sync is running (its leader has released the lock).
    syncing: bool,
    /// A sync failed: nothing more is written or released.
    failed: bool,
    /// Syncs made (for tests and benchmarks: how many signatures shared one).
    syncs: u64,
    fault: Option<Fault>,
}

/// A simulated power loss in the group commit, for crash tests: at the
/// `n`th sync (counting from 1), before it reaches the disk or once it did
/// but before anyone is told. From then on every write and wait fails, as
/// if the machine were off; [`GroupCommit::crash_image_len`] says how much
/// of the journal file was durable at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The `n`th sync never happens.
    BeforeSync(u64),
    /// The `n`th sync completes, then power fails before any waiter wakes.
    AfterSync(u64),
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupCommit {
    /// For `file`, `len` bytes long and durable.
    pub(super) fn new(file: &File, len: u64) -> std::io::Result<Arc<GroupCommit>> {
        Ok(Arc::new(GroupCommit {
            state: Mutex::new(Inner {
                file: Arc::new(file.try_clone()?),
                written: 0,
                durable: 0,
                file_len: len,
                durable_file_len: len,
                syncing: false,
                failed: false,
                syncs: 0,
                fault: None,
            }),
            synced: Condvar::new(),
        }))
    }

    /// Whether a sync failed (the store then refuses every write until a
    /// restart reads the journal back).
    #[must_use]
    pub fn failed(&self) -> bool {
        lock(&self.state).failed
    }

    /// A write of `n` bytes went to the file (now `file_len` long), not yet
    /// durable.
    pub(super) fn wrote(&self, n: u64, file_len: u64) {
        let mut s = lock(&self.state);
        s.written += n;
        s.file_len = file_len;
    }

    /// Everything written is durable: the store synced under its own lock
    /// (`file`: `None`), or a compaction wrote the journal anew (`file`: the
    /// new one).
    pub(super) fn all_durable(&self, file: Option<&File>, file_len: u64) -> std::io::Result<()> {
        let new = file.map(File::try_clone).transpose()?;
        let mut s = lock(&self.state);
        if let Some(f) = new {
            s.file = Arc::new(f);
        }
        s.durable = s.written;
        s.file_len = file_len;
        s.durable_file_len = file_len;
        self.synced.notify_all();
        Ok(())
    }

    /// A sync under the store failed.
    pub(super) fn fail(&self) {
        lock(&self.state).failed = true;
        self.synced.notify_all();
    }

    /// Where writes reached that are not durable yet.
    #[must_use]
    pub fn pending(&self) -> Option<Ticket> {
        let s = lock(&self.state);
        (s.written > s.durable).then_some(Ticket(s.written))
    }

    /// Returns once the journal is durable up to `ticket`: syncs it (for
    /// everyone waiting) or waits for the sync under way.
    pub fn wait(&self, ticket: Ticket) -> Result<(), BackendError> {
        let mut s = lock(&self.state);
        loop {
            if s.failed {
                return Err(BackendError::Failed);
            }
            if s.durable >= ticket.0 {
                return Ok(());
            }
            if s.syncing {
                s = self.synced.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: sync what is written now, without the lock, so writes
            // go on meanwhile (they ride the next sync).
            s.syncing = true;
            s.syncs += 1;
            let (target, target_len, file) = (s.written, s.file_len, s.file.clone());
            let fault = s.fault;
            if fault == Some(Fault::BeforeSync(s.syncs)) {
                s.failed = true;
                s.syncing = false;
                self.synced.notify_all();
                return Err(BackendError::Failed);
            }
            drop(s);
            let synced = file.sync_data();
            s = lock(&self.state);
            s.syncing = false;
            match synced {
                Ok(()) => {
                    s.durable = s.durable.max(target);
                    s.durable_file_len = s.durable_file_len.max(target_len);
                    if fault == Some(Fault::AfterSync(s.syncs)) {
                        s.failed = true;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "state journal sync failed: signing stops until restart");
                    s.failed = true;
                }
            }
            self.synced.notify_all();
        }
    }

    /// Sets a simulated power loss (crash tests).
    pub fn inject(&self, fault: Fault) {
        lock(&self.state).fault = Some(fault);
    }

    /// How many bytes of the journal file were durable: after a simulated
    /// power loss, what a restart would find (plus, at most, any prefix of
    /// what was written after).
    #[must_use]
    pub fn crash_image_len(&self) -> u64 {
        lock(&self.state).durable_file_len
    }

    /// Syncs made so far.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        lock(&self.state).syncs
    }
}
