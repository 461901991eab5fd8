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
//! wakes only the waiters that sync covered, and one that it did not, to
//! lead the next. Every waiter sleeps until there is something for it to
//! do: on 2 cores under load, waking every waiter at every sync (a
//! condition variable's `notify_all`) cost a third of the throughput
//! (`docs/performance.md`). A failed sync fails every waiter it did not
//! cover and every later write: the state on disk is then unknown, so the
//! signer signs nothing more until it is restarted and reads back what
//! reached the disk (a reply whose mark an earlier sync made durable may
//! still leave).

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;

use tee_core::device::{BackendError, Ticket};

/// Where the journal stands: its generation (compactions so far), its
/// length in bytes and the MAC of its last record (the chain's head).
/// Heads order by (generation, length): a journal only grows, and a
/// compaction starts the next generation. An older copy of a state
/// directory has a lower head; the shared marks database records the
/// highest durable head each directory reached (the rollback anchor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Compactions so far.
    pub generation: u64,
    /// Bytes of the journal file.
    pub length: u64,
    /// The MAC of its last record.
    pub mac: [u8; 32],
}

impl Head {
    /// Whether `self` is behind `other`: a lower generation, or the same
    /// one and shorter.
    #[must_use]
    pub fn behind(&self, other: &Head) -> bool {
        (self.generation, self.length) < (other.generation, other.length)
    }
}

/// The journal's durability, shared by the store (which writes) and the
/// server (which waits). See the module documentation.
#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<Inner>,
}

/// A request waiting for a sync: woken once, when the journal is durable
/// up to its ticket, or to lead the next sync, or when syncing failed.
#[derive(Debug)]
struct Waiter {
    ticket: u64,
    thread: Thread,
    woken: Arc<AtomicBool>,
}

impl Waiter {
    fn wake(self) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
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
    /// The journal's head as written, and as durable.
    head: Head,
    durable_head: Head,
    /// The head after the last write whose reply waits for the rollback
    /// anchor (an admin change).
    must_anchor: Head,
    /// A sync is running (its leader has released the lock).
    syncing: bool,
    /// A sync failed: nothing more is written or released.
    failed: bool,
    /// Syncs made (for tests and benchmarks: how many signatures shared one).
    syncs: u64,
    /// Who waits while a sync runs, each woken only when there is
    /// something for it to do (no herd woken at every sync).
    waiters: Vec<Waiter>,
    fault: Option<Fault>,
}

/// A simulated power loss in the group commit, for crash tests: at the
/// `n`th sync (counting from 1), before it reaches the disk or once it did
/// but before anyone is told. From then on every write fails, and every
/// wait for a mark that no earlier sync made durable, as if the machine
/// were off; [`GroupCommit::crash_image_len`] says how much
/// of the journal file was durable at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The `n`th sync never happens.
    BeforeSync(u64),
    /// The `n`th sync completes, then power fails before any waiter wakes.
    AfterSync(u64),
}

impl Inner {
    /// Wakes every waiter the durable journal covers (all of them once a
    /// sync failed), and the first that it does not, to lead the next
    /// sync; the rest sleep on.
    fn wake_covered(&mut self) {
        // A sync under way has its leader already.
        let mut led = self.syncing;
        for w in std::mem::take(&mut self.waiters) {
            let done = self.failed || w.ticket <= self.durable;
            if done || !led {
                led |= !done;
                w.wake();
            } else {
                self.waiters.push(w);
            }
        }
    }
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupCommit {
    /// For `file`, durable up to `head`.
    pub(super) fn new(file: &File, head: Head) -> std::io::Result<Arc<GroupCommit>> {
        Ok(Arc::new(GroupCommit {
            state: Mutex::new(Inner {
                file: Arc::new(file.try_clone()?),
                written: 0,
                durable: 0,
                head,
                durable_head: head,
                must_anchor: head,
                syncing: false,
                failed: false,
                syncs: 0,
                waiters: Vec::new(),
                fault: None,
            }),
        }))
    }

    /// Whether a sync failed (the store then refuses every write until a
    /// restart reads the journal back).
    #[must_use]
    pub fn failed(&self) -> bool {
        lock(&self.state).failed
    }

    /// A write of `n` bytes went to the file (its head now `head`), not
    /// yet durable; `strict`: an admin change.
    pub(super) fn wrote(&self, n: u64, head: Head, strict: bool) {
        let mut s = lock(&self.state);
        s.written += n;
        s.head = head;
        if strict {
            s.must_anchor = head;
        }
    }

    /// Everything written is durable: the store synced under its own lock
    /// (`file`: `None`), or a compaction wrote the journal anew (`file`: the
    /// new one); its head is `head`, and `strict` if the last write was an
    /// admin change.
    pub(super) fn all_durable(
        &self,
        file: Option<&File>,
        head: Head,
        strict: bool,
    ) -> std::io::Result<()> {
        let new = file.map(File::try_clone).transpose()?;
        let mut s = lock(&self.state);
        if let Some(f) = new {
            s.file = Arc::new(f);
        }
        s.durable = s.written;
        s.head = head;
        s.durable_head = head;
        if strict {
            s.must_anchor = head;
        }
        s.wake_covered();
        Ok(())
    }

    /// A sync under the store failed.
    pub(super) fn fail(&self) {
        let mut s = lock(&self.state);
        s.failed = true;
        s.wake_covered();
    }

    /// Where writes reached, durable or not: a ticket that
    /// [`GroupCommit::wait`] returns on at once once it is durable.
    #[must_use]
    pub fn position(&self) -> Ticket {
        Ticket(lock(&self.state).written)
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
            // A ticket made durable before a sync failed stays durable: its
            // reply may leave. Any other fails once a sync failed.
            if s.durable >= ticket.0 {
                return Ok(());
            }
            if s.failed {
                return Err(BackendError::Failed);
            }
            if s.syncing {
                // Sleep until the leader says this ticket is durable, or
                // that this waiter leads the next sync.
                let woken = Arc::new(AtomicBool::new(false));
                let thread = std::thread::current();
                s.waiters.push(Waiter { ticket: ticket.0, thread, woken: woken.clone() });
                drop(s);
                while !woken.load(Ordering::Acquire) {
                    std::thread::park();
                }
                s = lock(&self.state);
                continue;
            }
            // Lead: sync what is written now, without the lock, so writes
            // go on meanwhile (they ride the next sync).
            s.syncing = true;
            s.syncs += 1;
            let (target, target_head, file) = (s.written, s.head, s.file.clone());
            let fault = s.fault;
            if fault == Some(Fault::BeforeSync(s.syncs)) {
                s.failed = true;
                s.syncing = false;
                s.wake_covered();
                continue;
            }
            drop(s);
            let synced = file.sync_data();
            s = lock(&self.state);
            s.syncing = false;
            match synced {
                Ok(()) => {
                    if s.durable_head.behind(&target_head) {
                        s.durable_head = target_head;
                    }
                    if fault == Some(Fault::AfterSync(s.syncs)) {
                        // On disk, but the power fails before anyone
                        // hears: no reply it covered leaves.
                        s.failed = true;
                    } else {
                        s.durable = s.durable.max(target);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "state journal sync failed: signing stops until restart");
                    s.failed = true;
                }
            }
            s.wake_covered();
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
        lock(&self.state).durable_head.length
    }

    /// The journal's head as far as it is durable: what a restart after
    /// a power loss finds at least.
    #[must_use]
    pub fn durable_head(&self) -> Head {
        lock(&self.state).durable_head
    }

    /// The head after the last admin change, if it is durable: a reply
    /// released now waits until the rollback anchor records it (one not
    /// yet durable is its own reply's to wait for).
    #[must_use]
    pub fn must_anchor(&self) -> Option<Head> {
        let s = lock(&self.state);
        (!s.durable_head.behind(&s.must_anchor)).then_some(s.must_anchor)
    }

    /// Syncs made so far.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        lock(&self.state).syncs
    }
}
