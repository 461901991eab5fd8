//! Verifying an attestation: that a signing key lives in a measured TDX
//! confidential VM running the expected code.
//!
//! Given a quote (and dstack's event log and key signature chain where there
//! are any), the signer's claimed address, what `report_data` must bind, a
//! [`Policy`] and the time, [`Verifier::verify`] runs every check and returns
//! a [`Report`]: each check passed, failed with a typed reason, or skipped
//! because the policy does not ask for it. Checks:
//!
//! 1. the quote parses (tee-core's strict parser);
//! 2. `report_data` binds the address to the challenge or action digest
//!    (`docs/attestation.md`);
//! 3. the TD is not in debug mode (unless the policy allows it);
//! 4. MRTD and RTMR0-3 are among the policy's allowed values;
//! 5. the event log's runtime events have the digests their content gives
//!    and replay to the quote's RTMR3; the app's compose hash and app id in
//!    it are allowed;
//! 6. the collateral (given, or fetched from a PCCS the caller configured)
//!    is within its validity window at `now`;
//! 7. DCAP (dcap-qvl): the quote's signature, the QE report, the PCK chain to
//!    Intel's root, the CRLs; and the TCB status is one the policy accepts;
//! 8. for a dstack-derived key: the app key's signature over the key and the
//!    KMS root's signature over the app key, up to the policy's KMS root.

use std::fmt;

use dcap_qvl::QuoteCollateralV3;
use serde::{Deserialize, Serialize};
use tee_core::binding::{self, Mismatch, Purpose};
use tee_core::primitives::keccak256;
use tee_core::quote::Quote;
use tee_core::signer::PublicKey;
use tee_core::{Address, B256, Signature};

use crate::eventlog::{self, Event, EventLogError};
use crate::hexser::HexBytes;
use crate::pccs::Pccs;

/// What a verifier accepts. Every measurement list is optional: absent means
/// not checked (the report says so), present means the value must be one of
/// those listed. Loaded from TOML or JSON with hex values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Allowed MRTD values (the virtual firmware).
    #[serde(default)]
    pub mrtd: Option<Vec<HexBytes<48>>>,
    /// Allowed RTMR0 values (firmware configuration).
    #[serde(default)]
    pub rtmr0: Option<Vec<HexBytes<48>>>,
    /// Allowed RTMR1 values (kernel).
    #[serde(default)]
    pub rtmr1: Option<Vec<HexBytes<48>>>,
    /// Allowed RTMR2 values (kernel command line, initrd).
    #[serde(default)]
    pub rtmr2: Option<Vec<HexBytes<48>>>,
    /// Allowed RTMR3 values (usually checked through the event log instead).
    #[serde(default)]
    pub rtmr3: Option<Vec<HexBytes<48>>>,
    /// Allowed dstack app compose hashes (from the event log).
    #[serde(default)]
    pub compose_hash: Option<Vec<HexBytes<32>>>,
    /// Allowed dstack app ids (from the event log).
    #[serde(default)]
    pub app_id: Option<Vec<HexBytes<20>>>,
    /// Accept a debug TD (never for production keys).
    #[serde(default)]
    pub allow_debug: bool,
    /// Accepted TCB statuses; empty or absent means `["UpToDate"]`.
    #[serde(default)]
    pub tcb_status: Vec<String>,
    /// Address of the dstack KMS root key: when set, the signing key must come
    /// with a signature chain up to it.
    #[serde(default)]
    pub kms_root: Option<HexBytes<20>>,
}

/// A policy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// I/O.
    #[error("cannot read policy {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or JSON for a policy.
    #[error("invalid policy {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

impl Policy {
    /// Reads a policy from a `.json` file, or TOML otherwise.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Io { path: shown.clone(), source })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| PolicyError::Invalid { path: shown, message })
    }

    fn accepted_statuses(&self) -> Vec<&str> {
        if self.tcb_status.is_empty() {
            vec!["UpToDate"]
        } else {
            self.tcb_status.iter().map(String::as_str).collect()
        }
    }
}

/// What `report_data` must bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The verifier's fresh challenge.
    Challenge(B256),
    /// One signed action's digest.
    ActionDigest(B256),
}

/// dstack's proof that a key was derived for this app: `GetKey`'s
/// `signature_chain`, with what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChain {
    /// `GetKey`'s purpose argument.
    pub purpose: String,
    /// The derived key (SEC1 compressed).
    pub public_key: HexBytes<33>,
    /// The app key's signature over `keccak256("{purpose}:{hex(public_key)}")`.
    pub app_signature: HexBytes<65>,
    /// The KMS root's signature over
    /// `keccak256("dstack-kms-issued:" ‖ app_id ‖ app_public_key)`.
    pub kms_signature: HexBytes<65>,
}

/// Everything a signer presents.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The TDX quote.
    pub quote: &'a [u8],
    /// dstack's event log, if any.
    pub event_log: Option<&'a [Event]>,
    /// dstack's key signature chain, for a derived key.
    pub key_chain: Option<&'a KeyChain>,
}

/// One check of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Check {
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

/// The verifier's findings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Report {
    /// Every check, in order.
    pub checks: Vec<(Check, Status)>,
}

impl Report {
    fn push(&mut self, check: Check, status: Status) {
        self.checks.push((check, status));
    }

    /// The status of `check`, if it ran or was skipped.
    #[must_use]
    pub fn status(&self, check: Check) -> Option<&Status> {
        self.checks.iter().find(|(c, _)| *c == check).map(|(_, s)| s)
    }

    /// The failures.
    pub fn failures(&self) -> impl Iterator<Item = (Check, &Failure)> {
        self.checks.iter().filter_map(|(c, s)| match s {
            Status::Failed(f) => Some((*c, f)),
            _ => None,
        })
    }

    /// Verified: nothing failed, and the checks no policy can waive (quote,
    /// binding, collateral, DCAP, TCB status) passed.
    ///
    /// A simulated TEE's quotes never pass DCAP, so they are never verified;
    /// [`Report::verified_but_dcap`] says whether everything else passed.
    #[must_use]
    pub fn verified(&self) -> bool {
        let mandatory =
            [Check::Quote, Check::Binding, Check::Collateral, Check::Dcap, Check::TcbStatus];
        self.failures().next().is_none()
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
            && [Check::Quote, Check::Binding]
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
        write!(f, "{}", if self.verified() { "VERIFIED" } else { "NOT VERIFIED" })
    }
}

/// Runs the checks.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    /// What is accepted.
    pub policy: Policy,
    /// Collateral for offline DCAP verification (dcap-qvl's JSON format).
    pub collateral: Option<QuoteCollateralV3>,
    /// Where to fetch collateral when none is given: a PCCS the user
    /// configured. Never consulted when `collateral` is set.
    pub pccs: Option<Pccs>,
}

fn allowed<const N: usize>(list: Option<&Vec<HexBytes<N>>>, value: &[u8; N]) -> Status {
    match list {
        None => Status::Skipped("not in the policy".into()),
        Some(list) if list.iter().any(|v| v.0 == *value) => Status::Passed(hex::encode(value)),
        Some(_) => Status::Failed(Failure::NotAllowed { value: hex::encode(value) }),
    }
}

impl Verifier {
    /// Verifies `evidence` for the signer `address` at unix time `now`.
    #[must_use]
    pub fn verify(
        &self,
        evidence: &Evidence<'_>,
        address: &Address,
        expected: &Expected,
        now: u64,
    ) -> Report {
        let mut r = Report::default();
        let quote = match Quote::parse(evidence.quote) {
            Ok(q) => {
                r.push(
                    Check::Quote,
                    Status::Passed(format!("TDX quote v{} ({:?})", q.header.version, q.body_type)),
                );
                q
            }
            Err(e) => {
                r.push(Check::Quote, Status::Failed(Failure::Quote(e)));
                return r;
            }
        };
        let report = &quote.report;

        let (purpose, value) = match expected {
            Expected::Challenge(c) => (Purpose::Challenge, c),
            Expected::ActionDigest(d) => (Purpose::ActionDigest, d),
        };
        r.push(
            Check::Binding,
            match binding::check_binding(report.report_data, address, purpose, value) {
                Ok(()) => Status::Passed(format!("{address} and {value}")),
                Err(m) => Status::Failed(Failure::Binding(m)),
            },
        );

        r.push(
            Check::Debug,
            match (quote.is_debug(), self.policy.allow_debug) {
                (false, _) => Status::Passed("production TD".into()),
                (true, true) => Status::Passed("debug TD, allowed by the policy".into()),
                (true, false) => Status::Failed(Failure::DebugTd),
            },
        );

        let p = &self.policy;
        r.push(Check::Mrtd, allowed(p.mrtd.as_ref(), report.mr_td));
        let lists = [&p.rtmr0, &p.rtmr1, &p.rtmr2, &p.rtmr3];
        for (n, (list, value)) in (0u8..).zip(lists.into_iter().zip(report.rtmr)) {
            r.push(Check::Rtmr(n), allowed(list.as_ref(), value));
        }

        self.event_log_checks(&mut r, evidence.event_log, report.rtmr[3]);
        let fetched;
        let collateral = match (&self.collateral, &self.pccs) {
            (Some(c), _) => Some(c),
            (None, Some(pccs)) => match pccs.collateral(evidence.quote) {
                Ok(c) => {
                    fetched = c;
                    Some(&fetched)
                }
                Err(e) => {
                    r.push(
                        Check::Collateral,
                        Status::Failed(Failure::CollateralFetch(e.to_string())),
                    );
                    None
                }
            },
            (None, None) => {
                r.push(Check::Collateral, Status::Failed(Failure::Missing("collateral")));
                None
            }
        };
        if let Some(c) = collateral.filter(|c| Self::collateral_check(&mut r, c, now)) {
            self.dcap_checks(&mut r, c, evidence.quote, report.report_data, now);
        } else {
            r.push(Check::Dcap, Status::Skipped("no valid collateral".into()));
            r.push(Check::TcbStatus, Status::Skipped("no valid collateral".into()));
        }
        self.key_chain_check(&mut r, evidence, address);
        r
    }

    fn event_log_checks(&self, r: &mut Report, log: Option<&[Event]>, rtmr3: &[u8; 48]) {
        let p = &self.policy;
        let needed = p.compose_hash.is_some() || p.app_id.is_some() || p.kms_root.is_some();
        let Some(log) = log else {
            let status = if needed {
                Status::Failed(Failure::Missing("event log"))
            } else {
                Status::Skipped("no event log presented".into())
            };
            r.push(Check::EventLog, status.clone());
            r.push(Check::ComposeHash, status.clone());
            r.push(Check::AppId, status);
            return;
        };
        let verified = match eventlog::replay(log, 3) {
            Ok(replayed) if replayed == *rtmr3 => {
                r.push(
                    Check::EventLog,
                    Status::Passed(format!("{} events replay to RTMR3", log.len())),
                );
                true
            }
            Ok(replayed) => {
                let quoted = hex::encode(rtmr3);
                r.push(
                    Check::EventLog,
                    Status::Failed(Failure::Rtmr3Mismatch {
                        replayed: hex::encode(replayed),
                        quoted,
                    }),
                );
                false
            }
            Err(e) => {
                r.push(Check::EventLog, Status::Failed(Failure::EventLog(e)));
                false
            }
        };
        for (check, name, list) in [
            (
                Check::ComposeHash,
                "compose-hash",
                p.compose_hash.as_ref().map(|l| l.iter().map(|h| h.0.to_vec()).collect::<Vec<_>>()),
            ),
            (
                Check::AppId,
                "app-id",
                p.app_id.as_ref().map(|l| l.iter().map(|h| h.0.to_vec()).collect::<Vec<_>>()),
            ),
        ] {
            let status = match (list, eventlog::payload(log, name)) {
                (None, _) => Status::Skipped("not in the policy".into()),
                (Some(_), _) if !verified => {
                    Status::Skipped("the event log does not verify".into())
                }
                (Some(_), None) => Status::Failed(Failure::Missing(if name == "app-id" {
                    "app-id event"
                } else {
                    "compose-hash event"
                })),
                (Some(list), Some(v)) if list.iter().any(|a| a == v) => {
                    Status::Passed(hex::encode(v))
                }
                (Some(_), Some(v)) => Status::Failed(Failure::NotAllowed { value: hex::encode(v) }),
            };
            r.push(check, status);
        }
    }

    /// Checks the TCB info and QE identity windows; returns whether DCAP can run.
    fn collateral_check(r: &mut Report, c: &QuoteCollateralV3, now: u64) -> bool {
        let window = |what: &'static str, json: &str| -> Result<(String, String), Failure> {
            let v: serde_json::Value = serde_json::from_str(json)
                .map_err(|e| Failure::CollateralInvalid(format!("{what}: {e}")))?;
            // TCB info and QE identity carry the dates at the top level, or
            // under `tcbInfo` / `enclaveIdentity` in PCCS's wrapped form.
            let body = v.get("tcbInfo").or_else(|| v.get("enclaveIdentity")).unwrap_or(&v);
            let date = |k: &str| {
                body.get(k)
                    .and_then(|d| d.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| Failure::CollateralInvalid(format!("{what}: no {k}")))
            };
            Ok((date("issueDate")?, date("nextUpdate")?))
        };
        let mut summary = Vec::new();
        for (what, json) in
            [("TCB info", c.tcb_info.as_str()), ("QE identity", c.qe_identity.as_str())]
        {
            let (issue, next) = match window(what, json) {
                Ok(w) => w,
                Err(f) => {
                    r.push(Check::Collateral, Status::Failed(f));
                    return false;
                }
            };
            let secs = |d: &str| chrono::DateTime::parse_from_rfc3339(d).map(|t| t.timestamp());
            let (Ok(issued), Ok(expires)) = (secs(&issue), secs(&next)) else {
                r.push(
                    Check::Collateral,
                    Status::Failed(Failure::CollateralInvalid(format!("{what}: bad dates"))),
                );
                return false;
            };
            let now = i64::try_from(now).unwrap_or(i64::MAX);
            if now < issued {
                r.push(
                    Check::Collateral,
                    Status::Failed(Failure::CollateralNotYetValid { what, issue_date: issue }),
                );
                return false;
            }
            if now > expires {
                r.push(
                    Check::Collateral,
                    Status::Failed(Failure::CollateralExpired { what, next_update: next }),
                );
                return false;
            }
            summary.push(format!("{what} valid until {next}"));
        }
        r.push(Check::Collateral, Status::Passed(summary.join(", ")));
        true
    }

    fn dcap_checks(
        &self,
        r: &mut Report,
        c: &QuoteCollateralV3,
        raw: &[u8],
        report_data: &[u8; 64],
        now: u64,
    ) {
        match dcap_qvl::verify::verify(raw, c, now) {
            Ok(v) => {
                // The report dcap-qvl verified is the one we read.
                let same = v.report.as_td10().is_some_and(|t| t.report_data == *report_data);
                if !same {
                    r.push(
                        Check::Dcap,
                        Status::Failed(Failure::Dcap(
                            "verified report differs from the parsed one".into(),
                        )),
                    );
                    r.push(Check::TcbStatus, Status::Skipped("DCAP failed".into()));
                    return;
                }
                r.push(
                    Check::Dcap,
                    Status::Passed(
                        "quote signature, QE report and PCK chain to Intel's root".into(),
                    ),
                );
                let accepted = self.policy.accepted_statuses();
                r.push(
                    Check::TcbStatus,
                    if accepted.contains(&v.status.as_str()) {
                        Status::Passed(v.status)
                    } else {
                        Status::Failed(Failure::TcbStatus {
                            status: v.status,
                            advisories: v.advisory_ids,
                        })
                    },
                );
            }
            Err(e) => {
                r.push(Check::Dcap, Status::Failed(Failure::Dcap(format!("{e:#}"))));
                r.push(Check::TcbStatus, Status::Skipped("DCAP failed".into()));
            }
        }
    }

    fn key_chain_check(&self, r: &mut Report, evidence: &Evidence<'_>, address: &Address) {
        let Some(root) = self.policy.kms_root else {
            r.push(Check::KeyChain, Status::Skipped("no KMS root in the policy".into()));
            return;
        };
        let Some(chain) = evidence.key_chain else {
            r.push(Check::KeyChain, Status::Failed(Failure::Missing("key signature chain")));
            return;
        };
        let app_id = evidence.event_log.and_then(|log| eventlog::payload(log, "app-id"));
        r.push(
            Check::KeyChain,
            match verify_key_chain(chain, address, app_id, &Address(root.0)) {
                Ok(app) => Status::Passed(format!(
                    "derived by app key {app}, issued by KMS root {}",
                    Address(root.0)
                )),
                Err(f) => Status::Failed(f),
            },
        );
    }
}

impl Verifier {
    /// Verifies a signed action's attestation: `signature` over `digest`
    /// recovers to `address`, and `evidence` is a per-action attestation of
    /// `digest` by `address` ([`Expected::ActionDigest`]) passing every
    /// check of [`Verifier::verify`].
    #[must_use]
    pub fn verify_signature(
        &self,
        evidence: &Evidence<'_>,
        address: &Address,
        digest: &B256,
        signature: &Signature,
        now: u64,
    ) -> Report {
        let mut r = self.verify(evidence, address, &Expected::ActionDigest(*digest), now);
        r.push(
            Check::Signature,
            match signature.recover_address(digest) {
                Ok(a) if a == *address => Status::Passed(format!("by {address} over {digest}")),
                _ => Status::Failed(Failure::Signature {
                    address: address.to_string(),
                    digest: digest.to_string(),
                }),
            },
        );
        r
    }
}

/// Verifies dstack's key signature chain: `key` (whose address must be
/// `address`) signed by the app key for `purpose`, the app key signed by the
/// KMS root for `app_id`. Returns the app key's address.
pub fn verify_key_chain(
    chain: &KeyChain,
    address: &Address,
    app_id: Option<&[u8]>,
    kms_root: &Address,
) -> Result<Address, Failure> {
    let fail = |m: &str| Failure::KeyChain(m.to_owned());
    let key =
        PublicKey::from_sec1_bytes(&chain.public_key.0).map_err(|_| fail("not a public key"))?;
    if key.address() != *address {
        return Err(fail("the chain is for another key than the signer's"));
    }
    let app_id =
        app_id.ok_or(Failure::Missing("app-id event (the chain is bound to the app id)"))?;
    let msg = format!("{}:{}", chain.purpose, hex::encode(chain.public_key.0));
    let app_sig = Signature::from_bytes(&chain.app_signature.0)
        .map_err(|_| fail("malformed app signature"))?;
    let app_key = app_sig
        .recover_public_key(&keccak256(msg.as_bytes()))
        .map_err(|_| fail("app signature does not recover"))?;
    let issued = [&b"dstack-kms-issued:"[..], app_id, &app_key.to_compressed()].concat();
    let kms_sig = Signature::from_bytes(&chain.kms_signature.0)
        .map_err(|_| fail("malformed KMS signature"))?;
    let signer = kms_sig
        .recover_address(&keccak256(&issued))
        .map_err(|_| fail("KMS signature does not recover"))?;
    if signer != *kms_root {
        return Err(fail(&format!("app key issued by {signer}, not the KMS root {kms_root}")));
    }
    Ok(app_key.address())
}
