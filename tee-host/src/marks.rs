//! Anti-replay marks that replicas share, in PostgreSQL.
//!
//! Every replica of one dstack app derives the same keys, so a mark kept on
//! one replica's disk does not stop another replica from signing a second
//! action at the same (key, sequence). The marks here live in one database
//! the replicas share, keyed by the signing key's address and a sequence
//! space (so replicas need not number their slots alike), and are only ever
//! raised: a group of marks is raised in one transaction that locks each
//! row, and a mark counts only once that transaction committed. The common
//! case, one mark over the row this signer last saw committed, is one
//! statement that raises the row only if it is still exactly that row
//! (value, commitment and MAC); anything else goes through the locking
//! transaction.
//!
//! The database is outside the TEE. Each row carries an HMAC under a key
//! every replica derives from dstack (the same app key everywhere), over
//! the schema version, the key, the space, the value and the retry
//! commitment: the database can refuse, lose or roll back marks, but a row
//! it writes itself (a lower value, another commitment) fails its MAC, and
//! that key stops signing with [`MarksError::Tampered`]. What the MAC cannot
//! show is a row (or the whole database) put back to an older *authentic*
//! state; a signer that saw a higher row committed since it started does
//! (a row below it, or gone, is [`Outcome::Tampered`] too), one that did
//! not cannot: docs/security.md says what limits that.
//!
//! This module is the store; [`pool`] is how the server uses it (a few
//! connections, claims made outside the device's lock).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tee_core::device::SpendAsk;
use tee_core::protocol::{CapRefusal, Replication};
use tee_core::{Address, B256};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

pub mod anchor;
mod conn;
pub mod pool;
pub mod replication;
mod spend;
mod sql;

use replication::ReplicationRule;

use sql::{Ordered, Row, deadline, decide, migrate, open, read};

/// The schema this build creates and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// The advisory lock that serializes schema set-up between replicas
/// starting together (`pg_advisory_xact_lock`).
const SCHEMA_LOCK: i64 = 0x8004_5e9e;

/// A mark to raise: `value` is the sequence now used in `space` of the key
/// `signer`, `commitment` what it was used for
/// ([`tee_core::device::retry_commitment`]: the signer and the action
/// digest), so an exact retry on any replica finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark<'a> {
    /// The signing key's address.
    pub signer: Address,
    /// The sequence space of that key (e.g. `"actions"`, `"admin"`).
    pub space: &'a str,
    /// The sequence.
    pub value: u64,
    /// What the sequence was used for.
    pub commitment: B256,
    /// The value to reserve under the key's cap in `space`'s shared spend
    /// window with the mark ([`spend`]): a new mark over the cap is
    /// [`Outcome::OverCap`] and raises nothing.
    pub spend: Option<SpendAsk>,
}

/// What became of one mark of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The stored mark was below: it is now `value`.
    Raised,
    /// The stored mark is this very value and commitment: an exact retry,
    /// whichever replica signed it first.
    Retry,
    /// The sequence is used: the stored mark is `stored`, at or above this
    /// value with another commitment. Nothing may be signed at it.
    Used {
        /// The stored mark.
        stored: u64,
    },
    /// The stored row fails its MAC (someone wrote it without the app's
    /// key), or is below (or gone from) a row this signer saw committed (an
    /// older row put back): nothing is signed with this key until an
    /// operator clears it (and restarts the replicas that saw the higher
    /// row).
    Tampered,
    /// The mark was new, but its value is more than the key's shared spend
    /// window has left: nothing was raised or reserved.
    OverCap(CapRefusal),
}

/// Why the shared marks could not be used. Every one of them means: refuse,
/// never fall back to local marks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarksError {
    /// The URL does not parse.
    #[error("marks database URL: {0}")]
    Url(String),
    /// The database is unreachable or failed a statement (retry later:
    /// signing resumes when it answers).
    #[error("marks database unavailable: {0}")]
    Unavailable(#[source] tokio_postgres::Error),
    /// The database did not answer a connection attempt or a statement
    /// within [`TIMEOUT`] (stopped, or a network that holds the packets):
    /// the call is abandoned and the next one starts from a new
    /// connection.
    #[error("marks database did not answer within {} s", TIMEOUT.as_secs())]
    Deadline,
    /// The database holds a schema newer than this build understands.
    #[error(
        "marks database has schema version {found}; this signer understands up to {SCHEMA_VERSION}: upgrade the signer"
    )]
    NewerSchema {
        /// The version found.
        found: i32,
    },
    /// The database replicates in a way a failover can lose marks in
    /// ([`replication`]), and the operator did not accept it; or it is a
    /// standby. Nothing is claimed there.
    #[error("{why}")]
    Replication {
        /// What the signer read.
        found: Replication,
        /// Why it refuses, and what would change that.
        why: String,
    },
    /// Every connection of the pool stayed busy for [`TIMEOUT`].
    #[error("marks database: every connection busy for {} s", TIMEOUT.as_secs())]
    Busy,
    /// A stored row fails its MAC: the database (or someone with access to
    /// it) wrote it, not a replica of this app. Nothing is signed with this
    /// key until an operator clears the row.
    #[error(
        "marks row for {signer} / {space} fails its MAC: written outside the app; signing with this key stops"
    )]
    Tampered {
        /// The key.
        signer: Address,
        /// The space.
        space: String,
    },
    /// The rollback anchor of a state directory fails its MAC (or does not
    /// decode): written outside the app. The directory does not open until
    /// an operator clears the row.
    #[error(
        "the rollback anchor of device {device} fails its MAC: written outside the app; the state directory does not open"
    )]
    AnchorTampered {
        /// The directory's device id.
        device: B256,
    },
    /// A stored row is not what this store writes (its value or
    /// commitment does not decode).
    #[error("marks row for {signer} / {space} is malformed")]
    Malformed {
        /// The key.
        signer: Address,
        /// The space.
        space: String,
    },
}

impl From<tokio_postgres::Error> for MarksError {
    fn from(e: tokio_postgres::Error) -> Self {
        MarksError::Unavailable(e)
    }
}

/// The rows this signer last saw committed, authentic.
#[derive(Debug, Default)]
pub(crate) struct KnownRows {
    /// The marks: (key, space) → (value, commitment, MAC).
    marks: HashMap<(Address, String), (u64, B256, [u8; 32])>,
    /// The spend windows: (key, space) → the highest `mark` seen
    /// ([`spend`]).
    spends: HashMap<(Address, String), u64>,
}

impl KnownRows {
    /// Takes in what a transaction learned.
    fn learn(&mut self, learned: sql::Learned) {
        self.marks.extend(learned.marks);
        for (key, mark) in learned.spends {
            let seen = self.spends.entry(key).or_default();
            *seen = (*seen).max(mark);
        }
    }
}

/// [`KnownRows`], shared by a pool's connections.
pub(crate) type Known = Arc<Mutex<KnownRows>>;

/// Raises a row only if it is still exactly the authentic row this signer
/// last saw (value, commitment and MAC): one statement, one round trip.
const RAISE_KNOWN: &str = "UPDATE tee_signer_marks
     SET value = $3::text::numeric, commitment = $4, mac = $5
     WHERE signer = $1 AND space = $2
       AND value = $6::text::numeric AND commitment = $7 AND mac = $8";

/// The shared marks: one connection to the database and the MAC key.
///
/// Every call into the database, the connection's start-up included, runs
/// under a client-side deadline of [`TIMEOUT`] on a runtime of the store's
/// own: a database that stops answering (or a host that holds its packets)
/// costs a call [`MarksError::Deadline`], never a hang; the server's own
/// `statement_timeout` is only a second line.
pub struct PgMarks {
    runtime: Runtime,
    client: Client,
    /// The task that drives `client`'s connection.
    connection: JoinHandle<()>,
    config: Config,
    tls: MakeRustlsConnect,
    /// [`RAISE_KNOWN`], prepared on this connection.
    raise_known: Option<Statement>,
    known: Known,
    /// The last call failed in the database: the next one opens a new
    /// connection.
    broken: bool,
    mac_key: Zeroizing<[u8; 32]>,
    rule: ReplicationRule,
    /// The last reading of how the database replicates, and when it was
    /// judged servable on this connection (`None`: judge before the next
    /// call).
    replication: Replication,
    judged: Option<Instant>,
}

impl fmt::Debug for PgMarks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgMarks").finish_non_exhaustive()
    }
}

/// How long a connection attempt, and any statement, may take before the
/// store reports the database unavailable (never a hang).
pub const TIMEOUT: Duration = Duration::from_secs(5);

impl PgMarks {
    /// Connects to `url` (a libpq URL or key=value string, TLS as
    /// [`conn`] says; several hosts with `target_session_attrs=read-write`
    /// find the primary, after a failover too), checks how it replicates
    /// ([`replication`]), creates the schema if the database has none, and
    /// refuses a newer one. `mac_key` is derived from the TEE: the same on
    /// every replica of the app.
    pub fn connect(
        url: &str,
        mac_key: Zeroizing<[u8; 32]>,
        rule: ReplicationRule,
    ) -> Result<Self, MarksError> {
        let conn::Target { mut config, tls } = conn::parse(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tee-signer");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| MarksError::Url(format!("a runtime for the marks connection: {e}")))?;
        let (client, connection) = open(&runtime, &config, &tls)?;
        let mut marks = PgMarks {
            runtime,
            client,
            connection,
            config,
            tls,
            raise_known: None,
            known: Known::default(),
            broken: false,
            mac_key,
            rule,
            replication: Replication::NotUsed,
            judged: None,
        };
        marks.migrate()?;
        Ok(marks)
    }

    /// How the database replicates, as this connection last read it.
    #[must_use]
    pub fn replication(&self) -> Replication {
        self.replication
    }

    /// Reads how the database replicates on this connection and judges it
    /// (raising the session's `synchronous_commit` if the server's default
    /// is weaker).
    fn judge(&mut self) -> Result<Replication, MarksError> {
        let client = &self.client;
        let reading = deadline(&self.runtime, replication::read(client));
        let reading = self.noted(reading)?;
        let judged = replication::judge(&reading, self.rule);
        self.replication = match &judged {
            Ok(r) | Err(MarksError::Replication { found: r, .. }) => *r,
            Err(_) => self.replication,
        };
        if judged.is_ok() {
            self.judged = Some(Instant::now());
        }
        judged
    }

    /// The connection, opened again if the server closed it (a restart, a
    /// failover): the call that found it broken failed with
    /// [`MarksError::Unavailable`], the next one reconnects, so signing
    /// resumes by itself once the database answers.
    /// A new connection (another server, after a failover) is judged
    /// before its first use, and a connection in use again every
    /// [`replication::RECHECK`].
    fn reconnect(&mut self) -> Result<(), MarksError> {
        if self.broken || self.client.is_closed() {
            self.connection.abort();
            let (client, connection) = open(&self.runtime, &self.config, &self.tls)?;
            self.client = client;
            self.connection = connection;
            self.raise_known = None;
            self.broken = false;
            self.judged = None;
        }
        if self.judged.is_none_or(|at| at.elapsed() >= replication::RECHECK) {
            self.judge()?;
        }
        Ok(())
    }

    /// After any failure of the database (I/O, a closed or terminated
    /// session, a timeout, a statement it refused) the next call starts
    /// from a new connection: failures are rare, and a session the server
    /// is ending may still look open.
    fn noted<T>(&mut self, r: Result<T, MarksError>) -> Result<T, MarksError> {
        if matches!(r, Err(MarksError::Unavailable(_) | MarksError::Deadline)) {
            self.broken = true;
        }
        r
    }

    fn migrate(&mut self) -> Result<(), MarksError> {
        self.reconnect()?;
        let r = deadline(&self.runtime, migrate(&mut self.client));
        self.noted(r)
    }

    /// Whether the database answers, and how it replicates, read now on
    /// this connection within the deadline (`Health`).
    pub fn ping(&mut self) -> Result<Replication, MarksError> {
        self.judged = None;
        self.reconnect()?;
        Ok(self.replication)
    }

    /// Shares what this connection learns of the rows with `known` (a
    /// pool's other connections).
    pub(crate) fn with_known(mut self, known: Known) -> PgMarks {
        self.known = known;
        self
    }

    fn known(&self) -> std::sync::MutexGuard<'_, KnownRows> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mac(&self, signer: &Address, space: &str, value: u64, commitment: &B256) -> [u8; 32] {
        row_mac(&self.mac_key, signer, space, value, commitment)
    }

    /// The stored mark of (`signer`, `space`) and its commitment, checked:
    /// `Ok(None)` if there is none, [`MarksError::Tampered`] if its MAC fails.
    pub fn load(
        &mut self,
        signer: &Address,
        space: &str,
    ) -> Result<Option<(u64, B256)>, MarksError> {
        self.reconnect()?;
        let client = &mut self.client;
        let r = deadline(&self.runtime, async move {
            let tx = client.transaction().await?;
            let stored = read(&tx, signer, space, false).await?;
            tx.commit().await?;
            Ok(stored)
        });
        match self.noted(r)? {
            None => Ok(None),
            Some(row) if self.authentic(signer, space, &row) => {
                Ok(Some((row.value, row.commitment)))
            }
            Some(_) => Err(MarksError::Tampered { signer: *signer, space: space.to_owned() }),
        }
    }

    fn authentic(&self, signer: &Address, space: &str, row: &Row) -> bool {
        authentic(&self.mac_key, signer, space, row)
    }

    /// Raises a group of marks in one transaction and returns each one's
    /// outcome once it committed. Rows are locked in (key, space) order, so
    /// replicas raising overlapping groups never deadlock; a mark listed
    /// twice in one group is decided in order.
    pub fn raise(&mut self, marks: &[Mark<'_>]) -> Result<Vec<Outcome>, MarksError> {
        if let [m] = marks {
            let r = self.raise_known(m);
            match self.noted(r) {
                Ok(Some(outcome)) => return Ok(vec![outcome]),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        let r = self.raise_once(marks);
        self.noted(r)
    }

    /// The common case in one statement: the row is still the authentic
    /// one this signer last saw, below the mark. `None`: not known, not
    /// below, or changed since (by another replica, or someone else): the
    /// locking transaction decides.
    fn raise_known(&mut self, m: &Mark<'_>) -> Result<Option<Outcome>, MarksError> {
        let key = (m.signer, m.space.to_owned());
        // A capped mark reserves in its window: the locking transaction.
        if m.spend.is_some() {
            return Ok(None);
        }
        let Some((value, commitment, mac)) = self.known().marks.get(&key).copied() else {
            return Ok(None);
        };
        if m.value <= value {
            return Ok(None);
        }
        let new_mac = self.mac(&m.signer, m.space, m.value, &m.commitment);
        self.reconnect()?;
        let (client, prepared) = (&self.client, &mut self.raise_known);
        let raised = deadline(&self.runtime, async move {
            let statement = match prepared {
                Some(s) => s.clone(),
                None => prepared.insert(client.prepare(RAISE_KNOWN).await?).clone(),
            };
            let raised = client
                .execute(
                    &statement,
                    &[
                        &m.signer.0.as_slice(),
                        &m.space,
                        &m.value.to_string(),
                        &m.commitment.0.as_slice(),
                        &new_mac.as_slice(),
                        &value.to_string(),
                        &commitment.0.as_slice(),
                        &mac.as_slice(),
                    ],
                )
                .await?;
            Ok(raised)
        })?;
        if raised != 1 {
            return Ok(None);
        }
        self.known().marks.insert(key, (m.value, m.commitment, new_mac));
        Ok(Some(Outcome::Raised))
    }

    fn raise_once(&mut self, marks: &[Mark<'_>]) -> Result<Vec<Outcome>, MarksError> {
        // Each mark with its MAC and the highest row this signer saw
        // committed for its key: rows only go up, so one below it (or
        // none) was put back.
        let known = self.known();
        let mut order: Vec<Ordered<'_, '_>> = marks
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let key = (m.signer, m.space.to_owned());
                let seen = sql::Seen {
                    mark: known.marks.get(&key).map(|k| k.0),
                    spend: known.spends.get(&(m.signer, spend::budget(m))).copied(),
                };
                (i, m, self.mac(&m.signer, m.space, m.value, &m.commitment), seen)
            })
            .collect();
        drop(known);
        order.sort_by(|(_, a, ..), (_, b, ..)| (a.signer.0, a.space).cmp(&(b.signer.0, b.space)));
        self.reconnect()?;
        let (client, mac_key) = (&mut self.client, &self.mac_key);
        let (mut outcomes, learned) =
            deadline(&self.runtime, decide(client, mac_key, order, marks.len()))?;
        self.known().learn(learned);
        outcomes.sort_by_key(|(i, _)| *i);
        Ok(outcomes.into_iter().map(|(_, o)| o).collect())
    }
}

/// An HMAC under the app's marks key, begun with `domain` (what kind of
/// row it authenticates).
fn keyed(key: &[u8; 32], domain: &[u8]) -> Hmac<Sha256> {
    let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(&key[..]) else {
        unreachable!("HMAC takes keys of any length")
    };
    m.update(domain);
    m
}

/// The MAC of a row under the app's marks key.
fn row_mac(
    key: &[u8; 32],
    signer: &Address,
    space: &str,
    value: u64,
    commitment: &B256,
) -> [u8; 32] {
    let mut m = keyed(key, b"tee-signer marks v1");
    m.update(&SCHEMA_VERSION.to_be_bytes());
    m.update(signer.0.as_slice());
    m.update(&(space.len() as u64).to_be_bytes());
    m.update(space.as_bytes());
    m.update(&value.to_be_bytes());
    m.update(commitment.0.as_slice());
    m.finalize().into_bytes().into()
}

fn authentic(key: &[u8; 32], signer: &Address, space: &str, row: &Row) -> bool {
    subtle_eq::ct_eq(&row_mac(key, signer, space, row.value, &row.commitment), &row.mac)
}

/// Constant-time comparison of a computed MAC with a stored one.
mod subtle_eq {
    pub(super) fn ct_eq(want: &[u8; 32], got: &[u8]) -> bool {
        if got.len() != want.len() {
            return false;
        }
        want.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}
