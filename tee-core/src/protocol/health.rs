//! `0x0E` Health: whether the service around the device can reach what
//! signing needs.

use serde::{Deserialize, Serialize};

use super::Command;

/// `0x0E` Health: what the service around the device reaches at the time
/// of the request: dstack (keys and quotes), the shared marks database,
/// the state journal's storage. The host service answers it itself, from
/// probes it makes then, outside the device's lock; a device on its own
/// (a microcontroller) has nothing around it to report and answers
/// `Unsupported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health;

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Probe {
    /// This signer does not use it (no dstack with `--no-tee`, no shared
    /// marks without `--marks`).
    NotUsed,
    /// It answered.
    Ok,
    /// It did not answer, or failed: requests that need it are refused.
    Failed,
}

/// How the shared marks database replicates, as the signer last read it
/// on its primary (`synchronous_standby_names`, `pg_stat_replication`).
/// A reading the signer refuses (an asynchronous standby without the
/// operator's consent) comes with `marks: Failed`; with `marks: Ok` the
/// operator accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Replication {
    /// No shared marks.
    NotUsed,
    /// No standby streams from the primary and none is named synchronous:
    /// no failover can lose a mark (a restore from a backup can: the
    /// rollback the marks' MACs cannot see).
    NoStandby,
    /// Every standby streaming from the primary is synchronous: a mark
    /// counts only once a standby has it, so a promoted one has it.
    Synchronous,
    /// A standby is asynchronous (or a synchronous candidate not yet
    /// chosen): a failover to it can lose marks the primary acknowledged.
    Asynchronous,
    /// The server does not show its standbys to the signer's role (it
    /// lacks `pg_read_all_stats`).
    Hidden,
}

/// Response to [`Health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HealthResponse {
    /// dstack's API (`Info`), within its timeout.
    pub dstack: Probe,
    /// The shared marks database (a statement, within its deadline).
    pub marks: Probe,
    /// The state journal: `Failed` once a write or sync failed (signing
    /// stops until a restart reads the journal back).
    pub storage: Probe,
    /// How the shared marks database replicates (protocol 8).
    pub replication: Replication,
}

impl HealthResponse {
    /// Every part it uses answered.
    #[must_use]
    pub fn healthy(&self) -> bool {
        [self.dstack, self.marks, self.storage].iter().all(|p| *p != Probe::Failed)
    }
}

impl Command for Health {
    const CODE: u8 = 0x0E;
    type Request<'a> = Self;
    type Response<'a> = HealthResponse;
}
