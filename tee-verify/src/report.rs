//! The verifier's findings: every check, passed with what was found,
//! failed with a typed reason, or skipped and why; and the verdict.

use std::fmt;

use serde::Serialize;
use tee_core::binding::Mismatch;

use super::eventlog::EventLogError;

/// One check of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Check {
    /// The policy pins who the signer must be (an app or an image, and the
    /// KMS root for a derived key); without it no verdict passes.
    Pinned,
    /// The fields of the JSON presented agree with each other and with
    /// the quote.
    Fields,
    /// The quote parses.
    Quote,
    /// `report_data` binds the address and the expected value.
    Binding,
    /// Not a debug TD.
    Debug,
    /// MRTD allowed.
    Mrtd,
    /// RTMR `n` allowed.
    Rtmr(u8),
    /// The event log replays to RTMR3.
    EventLog,
    /// The compose hash is allowed.
    ComposeHash,
    /// The app id is allowed.
    AppId,
    /// The collateral is valid at the time.
    Collateral,
    /// DCAP signature chain.
    Dcap,
    /// TCB status accepted.
    TcbStatus,
    /// dstack key signature chain.
    KeyChain,
    /// The signature recovers to the attested address (a signed action's
    /// attestation, [`Verifier::verify_signature`]).
    Signature,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Pinned => f.write_str("pinned"),
            Check::Fields => f.write_str("JSON fields"),
            Check::Quote => f.write_str("quote"),
            Check::Binding => f.write_str("binding"),
            Check::Debug => f.write_str("debug mode"),
            Check::Mrtd => f.write_str("MRTD"),
            Check::Rtmr(n) => write!(f, "RTMR{n}"),
            Check::EventLog => f.write_str("event log"),
            Check::ComposeHash => f.write_str("compose hash"),
            Check::AppId => f.write_str("app id"),
            Check::Collateral => f.write_str("collateral"),
            Check::Dcap => f.write_str("DCAP"),
            Check::TcbStatus => f.write_str("TCB status"),
            Check::KeyChain => f.write_str("key chain"),
            Check::Signature => f.write_str("signature"),
        }
    }
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum Failure {
    /// The quote does not parse.
    #[error("quote does not parse: {0}")]
    Quote(#[serde(serialize_with = "display")] tee_core::Error),
    /// `report_data` does not bind what was expected.
    #[error("report_data does not bind this key and value: {0}")]
    Binding(#[serde(serialize_with = "display")] Mismatch),
    /// A debug TD.
    #[error("the TD is in debug mode: the host can read its memory")]
    DebugTd,
    /// A measurement outside the policy.
    #[error("{value} is not allowed by the policy")]
    NotAllowed {
        /// The measured value, hex.
        value: String,
    },
    /// Something needed is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The event log is inconsistent.
    #[error("event log: {0}")]
    EventLog(#[serde(serialize_with = "display")] EventLogError),
    /// The event log replays to another RTMR3 than the quote's.
    #[error("event log replays to RTMR3 {replayed}, the quote says {quoted}")]
    Rtmr3Mismatch {
        /// From the log.
        replayed: String,
        /// From the quote.
        quoted: String,
    },
    /// Collateral expired at the verification time.
    #[error("collateral expired: {what} next update was {next_update}")]
    CollateralExpired {
        /// Which part.
        what: &'static str,
        /// Its `nextUpdate`.
        next_update: String,
    },
    /// Collateral issued after the verification time.
    #[error("collateral not yet valid: {what} issued {issue_date}")]
    CollateralNotYetValid {
        /// Which part.
        what: &'static str,
        /// Its `issueDate`.
        issue_date: String,
    },
    /// Collateral that cannot be read.
    #[error("collateral unreadable: {0}")]
    CollateralInvalid(String),
    /// Collateral could not be fetched from the configured PCCS.
    #[error("collateral not fetched: {0}")]
    CollateralFetch(String),
    /// DCAP verification failed (dcap-qvl's reason).
    #[error("DCAP verification failed: {0}")]
    Dcap(String),
    /// The TCB status is not accepted.
    #[error("TCB status {status} is not accepted (advisories: {advisories:?})")]
    TcbStatus {
        /// The status.
        status: String,
        /// Intel security advisories that apply.
        advisories: Vec<String>,
    },
    /// The key signature chain does not verify.
    #[error("key chain: {0}")]
    KeyChain(String),
    /// The policy pins no identity.
    #[error("the policy pins nothing: {0}")]
    Unpinned(String),
    /// A field of the JSON presented disagrees with another or the quote.
    #[error("{field} disagrees: {detail}")]
    FieldMismatch {
        /// The field.
        field: &'static str,
        /// With what.
        detail: String,
    },
    /// The signature does not recover to the attested address.
    #[error("the signature is not by {address} over {digest}")]
    Signature {
        /// The attested address.
        address: String,
        /// The digest.
        digest: String,
    },
}

fn display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// A check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Passed, with what was found.
    Passed(String),
    /// Failed, and why.
    Failed(Failure),
    /// Not run, and why.
    Skipped(String),
}

/// An event the app appended after `system-ready`: shown, never taken as
/// identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeEvent {
    /// Its name.
    pub name: String,
    /// Its payload, hex.
    pub payload: String,
}

/// The verifier's findings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Report {
    /// Every check, in order.
    pub checks: Vec<(Check, Status)>,
    /// The runtime events after `system-ready`, for the reader.
    pub runtime_events: Vec<RuntimeEvent>,
    /// DCAP passed under the simulator's root, not Intel's: the quote was
    /// made by the simulated TEE, with no hardware.
    pub simulated_root: bool,
}

impl Report {
    pub(super) fn push(&mut self, check: Check, status: Status) {
        self.checks.push((check, status));
    }

    /// The status of `check`, if it ran or was skipped.
    #[must_use]
    pub fn status(&self, check: Check) -> Option<&Status> {
        self.checks.iter().find(|(c, _)| *c == check).map(|(_, s)| s)
    }

    /// Whether `check` ran and passed.
    #[must_use]
    pub fn passed(&self, check: Check) -> bool {
        matches!(self.status(check), Some(Status::Passed(_)))
    }

    /// The failures.
    pub fn failures(&self) -> impl Iterator<Item = (Check, &Failure)> {
        self.checks.iter().filter_map(|(c, s)| match s {
            Status::Failed(f) => Some((*c, f)),
            _ => None,
        })
    }

    /// Verified: nothing failed, and the checks no policy can waive (the
    /// pinned identity, quote, binding, collateral, DCAP, TCB status)
    /// passed.
    ///
    /// A simulated TEE's quotes never pass DCAP, so they are never verified;
    /// [`Report::verified_but_dcap`] says whether everything else passed.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.pinned() && self.verified_unpinned()
    }

    /// Whether the policy pinned who the signer must be.
    #[must_use]
    pub fn pinned(&self) -> bool {
        matches!(self.status(Check::Pinned), Some(Status::Passed(_)))
    }

    /// Every check but the pinning passed: what a run with
    /// `--insecure-any-td` reaches at best, which any TDX machine with a
    /// matching binding would reach too.
    #[must_use]
    pub fn verified_unpinned(&self) -> bool {
        let mandatory =
            [Check::Quote, Check::Binding, Check::Collateral, Check::Dcap, Check::TcbStatus];
        self.failures().all(|(c, _)| c == Check::Pinned)
            && mandatory.iter().all(|c| matches!(self.status(*c), Some(Status::Passed(_))))
    }
}

impl Report {
    /// Everything but the hardware's signature checks out: no failure other
    /// than DCAP and the TCB status it decides, and quote and binding
    /// passed. What a simulated TEE can reach at best; never a reason to
    /// trust a key.
    #[must_use]
    pub fn verified_but_dcap(&self) -> bool {
        self.failures().all(|(c, _)| matches!(c, Check::Dcap | Check::TcbStatus))
            && [Check::Pinned, Check::Quote, Check::Binding]
                .iter()
                .all(|c| matches!(self.status(*c), Some(Status::Passed(_))))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (check, status) in &self.checks {
            let (mark, text) = match status {
                Status::Passed(d) => ("pass", d.clone()),
                Status::Failed(e) => ("FAIL", e.to_string()),
                Status::Skipped(d) => ("skip", d.clone()),
            };
            writeln!(f, "{mark}  {:<13} {text}", check.to_string())?;
        }
        for e in &self.runtime_events {
            writeln!(
                f,
                "info  runtime event {} {} (app-emitted, not identity)",
                e.name, e.payload
            )?;
        }
        let verdict = match (self.pinned(), self.verified_unpinned()) {
            (true, true) if self.simulated_root => {
                "VERIFIED (simulated root): every check passed, DCAP under the simulator's root, \
                 not Intel's: a simulated TEE, no hardware was involved"
            }
            (true, true) => "VERIFIED",
            (true, false) => "NOT VERIFIED",
            (false, true) => {
                "NOT PINNED: every other check passed, but the policy pins no app or image, so \
                 any TDX machine with this binding would pass too"
            }
            (false, false) => "NOT VERIFIED, NOT PINNED: the policy pins no app or image",
        };
        f.write_str(verdict)
    }
}
