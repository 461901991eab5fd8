//! The rollback anchor: each state directory's journal head, kept in the
//! shared marks database.
//!
//! The journal is MAC-chained under a key only the app's CVM derives, so the
//! host cannot edit it; what the chain cannot show is the whole directory
//! put back to an older copy (its policies, slots, admin sequence and audit
//! as they were). With shared marks, the database is a second record,
//! outside the host's disk, of how far the journal got: its durable head (generation, length, last
//! MAC: [`Head`]), in a row per directory (its device id) MACed under the
//! app's marks key. At start, a directory whose head is behind its row, or
//! whose journal does not hold the row's head (a copy restored and written
//! on), refuses to open and says why.
//!
//! After every group commit a thread of the anchor's own records the newest
//! durable head (one write for every group of the last [`PACE`]); a
//! signature's reply does not wait for it (its mark is in the database
//! already: a copy that lags a few signatures behind cannot sign at their
//! sequences), an admin change's does (a policy, a key, the admin
//! sequence: no copy from before a released admin change starts), and a
//! clean stop records the last head. Only durable heads are recorded, so a
//! crash never leaves a directory behind its row.
//!
//! What it cannot see: the database's operator deleting the row or
//! putting an older authentic one back (with the host's help, that lets an
//! older copy start: docs/security.md); a directory deleted outright (a new
//! device, with its own row).

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use hmac::Mac;
use tee_core::B256;
use tee_core::device::BackendError;
use tee_store::group::{GroupCommit, Head};

use super::pool::MarksPool;
use super::sql::deadline;
use super::{MarksError, PgMarks, SCHEMA_VERSION};

/// The anchors' table, created with the marks' schema (version 1 gained
/// it; older signers do not read it).
pub(super) const CREATE: &str = "CREATE TABLE IF NOT EXISTS tee_signer_anchors (
     device bytea PRIMARY KEY CHECK (length(device) = 32),
     generation numeric(20, 0) NOT NULL,
     length numeric(20, 0) NOT NULL,
     head bytea NOT NULL CHECK (length(head) = 32),
     mac bytea NOT NULL
 );
 COMMENT ON TABLE tee_signer_anchors IS
     'tee-signer rollback anchors: each state directory''s durable journal head, raise only, MACed by the app key';";

/// Records a head if it is ahead of the stored one (or there is none).
const RECORD: &str = "INSERT INTO tee_signer_anchors (device, generation, length, head, mac)
     VALUES ($1, $2::text::numeric, $3::text::numeric, $4, $5)
     ON CONFLICT (device) DO UPDATE
     SET generation = excluded.generation, length = excluded.length,
         head = excluded.head, mac = excluded.mac
     WHERE (tee_signer_anchors.generation, tee_signer_anchors.length)
         < (excluded.generation, excluded.length)";

const READ: &str =
    "SELECT generation::text, length::text, head, mac FROM tee_signer_anchors WHERE device = $1";

/// Why a state directory may not open over its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind {
    /// Its head is below the recorded one: an older copy.
    Older,
    /// Its journal does not hold the recorded head: an older copy, restored
    /// and written on since.
    Forked,
}

impl PgMarks {
    /// The anchor recorded for the directory of device `device`, checked:
    /// `Ok(None)` if there is none, [`MarksError::Tampered`] if its MAC fails.
    pub fn anchor(&mut self, device: &B256) -> Result<Option<Head>, MarksError> {
        self.reconnect()?;
        let client = &self.client;
        let r = deadline(&self.runtime, async move {
            Ok(client.query_opt(READ, &[&device.0.as_slice()]).await?)
        });
        let Some(row) = self.noted(r)? else {
            return Ok(None);
        };
        let tampered = || MarksError::AnchorTampered { device: *device };
        let generation: String = row.try_get(0)?;
        let length: String = row.try_get(1)?;
        let head: Vec<u8> = row.try_get(2)?;
        let mac: Vec<u8> = row.try_get(3)?;
        let head = Head {
            generation: generation.parse().map_err(|_| tampered())?,
            length: length.parse().map_err(|_| tampered())?,
            mac: <[u8; 32]>::try_from(head.as_slice()).map_err(|_| tampered())?,
        };
        if !super::subtle_eq::ct_eq(&anchor_mac(&self.mac_key, device, &head), &mac) {
            return Err(tampered());
        }
        Ok(Some(head))
    }

    /// Records `head` as the directory's anchor, unless the stored one is
    /// ahead.
    pub fn record_anchor(&mut self, device: &B256, head: &Head) -> Result<(), MarksError> {
        let mac = anchor_mac(&self.mac_key, device, head);
        self.reconnect()?;
        let client = &self.client;
        let r = deadline(&self.runtime, async move {
            client
                .execute(
                    RECORD,
                    &[
                        &device.0.as_slice(),
                        &head.generation.to_string(),
                        &head.length.to_string(),
                        &head.mac.as_slice(),
                        &mac.as_slice(),
                    ],
                )
                .await?;
            Ok(())
        });
        self.noted(r)
    }
}

/// The MAC of an anchor row under the app's marks key.
fn anchor_mac(key: &[u8; 32], device: &B256, head: &Head) -> [u8; 32] {
    let mut m = super::keyed(key, b"tee-signer anchor v1");
    m.update(&SCHEMA_VERSION.to_be_bytes());
    m.update(device.0.as_slice());
    m.update(&head.generation.to_be_bytes());
    m.update(&head.length.to_be_bytes());
    m.update(&head.mac);
    m.finalize().into_bytes().into()
}

/// The least time between two of the writer thread's writes.
pub const PACE: std::time::Duration = std::time::Duration::from_millis(10);

/// Keeps one directory's anchor up with its durable head: see the module
/// documentation. A thread of its own records the newest durable head after
/// every group commit, no reply waiting; an admin change's reply waits until
/// its head is recorded ([`Anchor::after_commit`]). Dropped (a clean stop),
/// it records the durable head once more.
#[derive(Debug)]
pub struct Anchor {
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// A connection of the anchor's own.
    conn: Mutex<PgMarks>,
    device: B256,
    group: Arc<GroupCommit>,
    state: Mutex<Recording>,
    changed: Condvar,
}

#[derive(Debug)]
struct Recording {
    /// The highest head recorded.
    recorded: Head,
    /// A write is under way.
    writing: bool,
    /// The writer thread has a head to record.
    nudged: bool,
    /// The anchor is being dropped.
    stop: bool,
}

impl Anchor {
    /// The anchor of device `device`'s directory, whose journal's
    /// durability is `group`, checked against what the database recorded
    /// (`reached`: whether the journal holds a head,
    /// [`tee_store::store::FileStore::reached`]), then recorded at the
    /// journal's durable head. A directory behind its record is
    /// [`AnchorError::Behind`]: it must not open.
    pub fn open(
        pool: &MarksPool,
        device: B256,
        group: Arc<GroupCommit>,
        reached: impl FnOnce(&Head) -> Result<bool, tee_store::store::StoreError>,
    ) -> Result<Anchor, AnchorError> {
        let local = group.durable_head();
        let mut conn = pool.dedicated()?;
        if let Some(recorded) = conn.anchor(&device)? {
            let why = if local.behind(&recorded) {
                Some(Behind::Older)
            } else if !reached(&recorded)? {
                Some(Behind::Forked)
            } else {
                None
            };
            if let Some(why) = why {
                return Err(AnchorError::Behind(Box::new(Rollback {
                    why,
                    device,
                    recorded,
                    local,
                })));
            }
        }
        conn.record_anchor(&device, &local)?;
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            device,
            group,
            state: Mutex::new(Recording {
                recorded: local,
                writing: false,
                nudged: false,
                stop: false,
            }),
            changed: Condvar::new(),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("rollback-anchor".into())
                .spawn(move || shared.write_behind())
                .map_err(AnchorError::Thread)?
        };
        Ok(Anchor { shared, writer: Some(writer) })
    }

    /// After a group commit returned for a reply: the writer records the
    /// newest durable head; if the journal holds a durable admin change the
    /// database has not recorded, the reply waits until it has
    /// ([`Anchor::cover`]).
    pub fn after_commit(&self) -> Result<(), BackendError> {
        let must = self.shared.group.must_anchor();
        let r = match must {
            Some(head) if self.recorded().behind(&head) => self.cover(&head),
            _ => Ok(()),
        };
        self.shared.nudge();
        r
    }

    /// Whether the journal holds a durable admin change the database has
    /// not recorded yet: the reply being made waits for it (the backend
    /// gives it a ticket, though its writes are durable already).
    #[must_use]
    pub fn owed(&self) -> bool {
        self.shared.group.must_anchor().is_some_and(|head| self.recorded().behind(&head))
    }

    /// Returns once the database records a head at or past `head` (a
    /// durable one): writes the newest durable head, or waits for the write
    /// under way. A write that fails fails this waiter (the reply is
    /// withheld); the next one tries again.
    pub fn cover(&self, head: &Head) -> Result<(), BackendError> {
        self.shared.cover(head)
    }

    /// The highest head recorded.
    #[must_use]
    pub fn recorded(&self) -> Head {
        self.shared.lock().recorded
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        {
            let mut s = self.shared.lock();
            s.stop = true;
            self.shared.changed.notify_all();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        // A clean stop leaves the database at the journal's head.
        let _ = self.shared.cover(&self.shared.group.durable_head());
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nudge(&self) {
        self.lock().nudged = true;
        self.changed.notify_all();
    }

    /// The writer thread: records the newest durable head whenever nudged.
    fn write_behind(&self) {
        let mut failing = false;
        loop {
            {
                let mut s = self.lock();
                while !s.nudged && !s.stop {
                    s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
                if s.stop {
                    return;
                }
                s.nudged = false;
            }
            let r = self.cover(&self.group.durable_head());
            // Paced: the groups of the next few milliseconds share one
            // write (each is a commit in the database, whose CPU and disk
            // the claims need).
            std::thread::sleep(PACE);
            if r.is_err() != failing {
                failing = r.is_err();
                if !failing {
                    tracing::info!("rollback anchor recorded again");
                }
            }
        }
    }

    fn cover(&self, head: &Head) -> Result<(), BackendError> {
        let mut s = self.lock();
        loop {
            if !s.recorded.behind(head) {
                return Ok(());
            }
            if s.writing {
                s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            s.writing = true;
            drop(s);
            let newest = self.group.durable_head();
            let r = self
                .conn
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_anchor(&self.device, &newest);
            s = self.lock();
            s.writing = false;
            self.changed.notify_all();
            match r {
                Ok(()) if s.recorded.behind(&newest) => s.recorded = newest,
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "rollback anchor not recorded");
                    return Err(BackendError::Failed);
                }
            }
        }
    }
}

/// Why the anchor could not be checked at start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The database.
    #[error(transparent)]
    Marks(#[from] MarksError),
    /// The state directory's journal could not be read again.
    #[error(transparent)]
    Store(#[from] tee_store::store::StoreError),
    /// The anchor's writer thread could not be started.
    #[error("the rollback anchor's thread: {0}")]
    Thread(std::io::Error),
    /// The state directory is behind what the database recorded of it: an
    /// older copy was put in its place. Nothing is signed from it.
    #[error("{0}")]
    Behind(Box<Rollback>),
}

/// A state directory behind its anchor: [`AnchorError::Behind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the state directory of device {device} is {} the rollback anchor the marks database recorded for it \
     (recorded: generation {}, {} bytes; this directory: generation {}, {} bytes): an older copy of the \
     directory was put in its place; it does not start (docs/deploy.md, \"Backup and restore\")",
    match why { Behind::Older => "behind", Behind::Forked => "on another branch than" },
    recorded.generation, recorded.length, local.generation, local.length
)]
pub struct Rollback {
    /// How.
    pub why: Behind,
    /// The directory's device id.
    pub device: B256,
    /// The head the database recorded.
    pub recorded: Head,
    /// The directory's head.
    pub local: Head,
}
