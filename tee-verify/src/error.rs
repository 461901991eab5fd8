//! The verifier's one error type: what went wrong before a report could
//! be made (a report's failed checks are not errors: they are findings).
//! Each variant nests the reason of the part that failed.

use crate::eventlog::EventLogError;
use crate::pccs::PccsError;
use crate::policy::{PinError, PolicyError};
use crate::versioned::AttestationError;

/// Why the verifier could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A policy file.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Pinning a policy to a deployment.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Collateral from a PCCS.
    #[error(transparent)]
    Pccs(#[from] PccsError),
    /// dstack's event log.
    #[error(transparent)]
    EventLog(#[from] EventLogError),
    /// dstack's `VersionedAttestation`.
    #[error(transparent)]
    Attestation(#[from] AttestationError),
}
