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

use dcap_qvl::QuoteCollateralV3;
use tee_core::binding::{self, Purpose};
use tee_core::primitives::{FixedBytes, keccak256};
use tee_core::quote::Quote;
use tee_core::{Address, B256, Signature};

use super::eventlog::{self, BootLog, Event};
use super::evidence::{Attestation, Evidence, Expected, TeeSignature};
use super::keychain::verify_key_chain;
use super::pccs::Pccs;
use super::policy::Policy;
use super::report::{Check, Failure, Report, RuntimeEvent, Status};

/// A DCAP root of trust other than Intel's that also issues the collateral
/// its quotes verify under: the simulated TEE's PKI. The caller constructs
/// it (`tee_sim::simulated_root()`) and hands it to the [`Verifier`]; the
/// verifier never makes one itself, and uses it only where the policy says
/// [`Policy::trust_simulator_root`].
pub trait SimulatedRoot: Send + Sync + std::fmt::Debug {
    /// The root CA certificate, DER.
    fn root_ca_der(&self) -> Vec<u8>;
    /// Collateral valid at unix time `now`.
    ///
    /// # Errors
    /// When it cannot be made (the reason, as text).
    fn collateral(&self, now: u64) -> Result<QuoteCollateralV3, String>;
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
    /// The simulated TEE's root, for a policy that trusts it; absent, such
    /// a policy's collateral and DCAP checks fail ("simulator PKI" missing).
    pub simulated_root: Option<std::sync::Arc<dyn SimulatedRoot>>,
}

fn allowed<const N: usize>(list: Option<&Vec<FixedBytes<N>>>, value: &[u8; N]) -> Status {
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
        self.verify_into(&mut r, evidence, address, expected, now);
        r
    }

    fn verify_into(
        &self,
        r: &mut Report,
        evidence: &Evidence<'_>,
        address: &Address,
        expected: &Expected,
        now: u64,
    ) {
        r.push(
            Check::Pinned,
            match self.policy.pinning(
                evidence.key_chain.is_some(),
                evidence.event_log.is_some() || evidence.key_chain.is_some(),
            ) {
                Ok(what) => Status::Passed(what),
                Err(why) => Status::Failed(Failure::Unpinned(why)),
            },
        );
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
                return;
            }
        };
        let report = &quote.report;

        let (purpose, value) = match expected {
            Expected::Challenge(c) => (Purpose::Challenge, c),
            Expected::ActionDigest(d) => (Purpose::ActionDigest, d),
            Expected::Device(c) => (Purpose::Device, c),
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

        let boot = self.event_log_checks(r, evidence.event_log, report.rtmr[3]);
        let fetched = match self.collateral_for(evidence.quote, now) {
            Ok(c) => Some(c),
            Err(f) => {
                r.push(Check::Collateral, Status::Failed(f));
                None
            }
        };
        let collateral = fetched.as_deref();
        if let Some(c) = collateral.filter(|c| Self::collateral_check(r, c, now)) {
            self.dcap_checks(r, c, evidence.quote, report.report_data, now);
        } else {
            r.push(Check::Dcap, Status::Skipped("no valid collateral".into()));
            r.push(Check::TcbStatus, Status::Skipped("no valid collateral".into()));
        }
        let app_id = boot.as_ref().and_then(|b| b.get("app-id"));
        self.key_chain_check(r, evidence, address, app_id);
    }

    /// The DCAP collateral for `quote`: the one given, the simulator's made
    /// for `now` (a policy trusting the simulator), or fetched from the
    /// configured PCCS.
    pub fn collateral_for(
        &self,
        quote: &[u8],
        now: u64,
    ) -> Result<std::borrow::Cow<'_, QuoteCollateralV3>, Failure> {
        use std::borrow::Cow;
        match (&self.collateral, &self.pccs) {
            (Some(c), _) => Ok(Cow::Borrowed(c)),
            // The simulator's collateral is anyone's to make: for now.
            (None, _) if self.policy.trust_simulator_root => match &self.simulated_root {
                Some(root) => {
                    root.collateral(now).map(Cow::Owned).map_err(Failure::CollateralInvalid)
                }
                None => Err(Failure::Missing("simulator PKI")),
            },
            (None, Some(pccs)) => pccs
                .collateral_at(quote, now)
                .map(|(c, _)| Cow::Owned(c))
                .map_err(|e| Failure::CollateralFetch(e.to_string())),
            (None, None) => Err(Failure::Missing("collateral")),
        }
    }

    /// DCAP on `raw` with `c` at `now`, under Intel's root or (a policy
    /// trusting it) the simulator's.
    pub(crate) fn dcap(
        &self,
        raw: &[u8],
        c: &QuoteCollateralV3,
        now: u64,
    ) -> Result<dcap_qvl::verify::VerifiedReport, String> {
        if self.policy.trust_simulator_root {
            match &self.simulated_root {
                Some(root) => dcap_qvl::verify::QuoteVerifier::new(root.root_ca_der())
                    .verify(raw, c, now)
                    .map_err(|e| format!("{e:#}")),
                None => Err("the simulator's root was not given to the verifier".to_owned()),
            }
        } else {
            dcap_qvl::verify::verify(raw, c, now).map_err(|e| format!("{e:#}"))
        }
    }

    /// Replays the event log to RTMR3 and reads it as dstack defines it;
    /// checks the boot-time compose hash and app id. Returns the boot log
    /// when it verifies.
    fn event_log_checks<'e>(
        &self,
        r: &mut Report,
        log: Option<&'e [Event]>,
        rtmr3: &[u8; 48],
    ) -> Option<BootLog<'e>> {
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
            return None;
        };
        let boot = match eventlog::replay(log, 3) {
            Ok(replayed) if replayed == *rtmr3 => match BootLog::read(log) {
                Ok(boot) => {
                    r.push(
                        Check::EventLog,
                        Status::Passed(format!(
                            "{} events replay to RTMR3; identity read before system-ready, {} \
                             app-emitted event(s) after",
                            log.len(),
                            boot.runtime.len()
                        )),
                    );
                    r.runtime_events = boot
                        .runtime
                        .iter()
                        .map(|e| RuntimeEvent {
                            name: e.event.clone(),
                            payload: hex::encode(&e.event_payload),
                        })
                        .collect();
                    Some(boot)
                }
                Err(e) => {
                    r.push(Check::EventLog, Status::Failed(Failure::EventLog(e)));
                    None
                }
            },
            Ok(replayed) => {
                let quoted = hex::encode(rtmr3);
                r.push(
                    Check::EventLog,
                    Status::Failed(Failure::Rtmr3Mismatch {
                        replayed: hex::encode(replayed),
                        quoted,
                    }),
                );
                None
            }
            Err(e) => {
                r.push(Check::EventLog, Status::Failed(Failure::EventLog(e)));
                None
            }
        };
        let compose: Option<Vec<&[u8]>> =
            p.compose_hash.as_ref().map(|l| l.iter().map(|h| &h.0[..]).collect());
        let app: Option<Vec<&[u8]>> =
            p.app_id.as_ref().map(|l| l.iter().map(|h| &h.0[..]).collect());
        for (check, name, list) in
            [(Check::ComposeHash, "compose-hash", compose), (Check::AppId, "app-id", app)]
        {
            let status = match (list, &boot) {
                (None, _) => Status::Skipped("not in the policy".into()),
                (Some(_), None) => Status::Skipped("the event log does not verify".into()),
                (Some(list), Some(boot)) => match boot.get(name) {
                    None => Status::Failed(Failure::Missing(if name == "app-id" {
                        "app-id event before system-ready"
                    } else {
                        "compose-hash event before system-ready"
                    })),
                    Some(v) if list.contains(&v) => Status::Passed(hex::encode(v)),
                    Some(v) => Status::Failed(Failure::NotAllowed { value: hex::encode(v) }),
                },
            };
            r.push(check, status);
        }
        boot
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
        let simulated = self.policy.trust_simulator_root;
        let verified = self.dcap(raw, c, now);
        match verified {
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
                r.simulated_root = simulated;
                r.push(
                    Check::Dcap,
                    Status::Passed(if simulated {
                        "quote signature, QE report and PCK chain to the SIMULATOR's root \
                         (simulated root: no hardware)"
                            .into()
                    } else {
                        "quote signature, QE report and PCK chain to Intel's root".into()
                    }),
                );
                r.push(
                    Check::TcbStatus,
                    if self.policy.accepts_tcb(&v.status, &v.advisory_ids) {
                        Status::Passed(if v.advisory_ids.is_empty() {
                            v.status
                        } else {
                            format!("{} ({})", v.status, v.advisory_ids.join(", "))
                        })
                    } else {
                        Status::Failed(Failure::TcbStatus {
                            status: v.status,
                            advisories: v.advisory_ids,
                        })
                    },
                );
            }
            Err(e) => {
                r.push(Check::Dcap, Status::Failed(Failure::Dcap(e)));
                r.push(Check::TcbStatus, Status::Skipped("DCAP failed".into()));
            }
        }
    }

    fn key_chain_check(
        &self,
        r: &mut Report,
        evidence: &Evidence<'_>,
        address: &Address,
        app_id: Option<&[u8]>,
    ) {
        let Some(root) = self.policy.kms_root else {
            r.push(Check::KeyChain, Status::Skipped("no KMS root in the policy".into()));
            return;
        };
        let Some(chain) = evidence.key_chain else {
            r.push(Check::KeyChain, Status::Failed(Failure::Missing("key signature chain")));
            return;
        };
        r.push(
            Check::KeyChain,
            match verify_key_chain(chain, address, app_id, &root) {
                Ok(app) => {
                    Status::Passed(format!("derived by app key {app}, issued by KMS root {root}"))
                }
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
        r.push(Check::Signature, signature_status(signature, address, digest));
        r
    }
}

impl Verifier {
    /// Checks an [`Attestation`] (the JSON `attest` prints) that must bind
    /// `expected`, at `now`: its fields first ([`Check::Fields`]: what it
    /// says it binds is `expected`, its `report_data` is the quote's), then
    /// [`Verifier::verify`].
    #[must_use]
    pub fn verify_attestation(&self, a: &Attestation, expected: &Expected, now: u64) -> Report {
        let mut r = Report::default();
        r.push(Check::Fields, field_check(attestation_fields(a, expected)));
        self.verify_into(&mut r, &a.evidence(), &a.address, expected, now);
        r
    }

    /// Checks a [`TeeSignature`] (the JSON a signer hands out with each
    /// signature) at `now`, whole: every address, digest and purpose field
    /// must agree with the others and with the quote ([`Check::Fields`]),
    /// then [`Verifier::verify_signature`] on its parts.
    #[must_use]
    pub fn verify_tee_signature(&self, s: &TeeSignature, now: u64) -> Report {
        let mut sig = s.signature.0;
        // Either v convention: 27/28 or 0/1.
        if sig[64] >= 27 {
            sig[64] -= 27;
        }
        // A malformed signature cannot recover: it is reported as the
        // signature check's failure, with the rest checked as usual.
        let signature = Signature::from_bytes(&sig).unwrap_or(Signature {
            r: [0; 32],
            s: [0; 32],
            y_parity: false,
        });
        let fields = (|| {
            if s.address != s.attestation.address {
                let detail =
                    format!("{} here, {} in the attestation", s.address, s.attestation.address);
                return Err(("address", detail));
            }
            attestation_fields(&s.attestation, &Expected::ActionDigest(s.digest))?;
            raw_transaction_fields(s, &signature)
        })();
        let mut r = Report::default();
        r.push(Check::Fields, field_check(fields));
        let evidence = s.attestation.evidence();
        let address = &s.attestation.address;
        self.verify_into(&mut r, &evidence, address, &Expected::ActionDigest(s.digest), now);
        r.push(Check::Signature, signature_status(&signature, address, &s.digest));
        r
    }
}

/// An [`Attestation`]'s own fields against what it must bind: its `bound`
/// is `expected`, its `report_data` is the quote's.
fn attestation_fields(a: &Attestation, expected: &Expected) -> Result<(), (&'static str, String)> {
    if Expected::from(a.bound) != *expected {
        return Err(("bound", format!("it says {:?}, it must bind {expected:?}", a.bound)));
    }
    if let Ok(q) = Quote::parse(&a.quote)
        && q.report.report_data != &a.report_data.0
    {
        return Err(("report_data", "it is not the quote's report_data".to_owned()));
    }
    Ok(())
}

/// A [`TeeSignature`]'s signed transaction, if it has one: an EIP-1559
/// transaction whose signing hash is the digest, signed with the signature,
/// whose hash is `transactionHash`. (A `rawTransaction` that says something
/// else than the digest the attestation binds would have a user broadcast
/// a transaction nobody attested.)
fn raw_transaction_fields(
    s: &TeeSignature,
    signature: &Signature,
) -> Result<(), (&'static str, String)> {
    let Some(raw) = &s.raw_transaction else {
        return match s.transaction_hash {
            Some(_) => Err(("transactionHash", "given without rawTransaction".to_owned())),
            None => Ok(()),
        };
    };
    let fail = |m: &str| Err(("rawTransaction", m.to_owned()));
    let Ok((signing_hash, signed_with)) = tee_core::action::tx::signing_hash_of_signed(raw) else {
        return fail("not a signed EIP-1559 transaction");
    };
    if signing_hash != s.digest {
        return fail("its signing hash is not the digest");
    }
    if signed_with != *signature {
        return fail("it carries another signature");
    }
    let hash = keccak256(raw);
    if s.transaction_hash != Some(hash) {
        return Err(("transactionHash", format!("the raw transaction's hash is {hash}")));
    }
    Ok(())
}

fn field_check(r: Result<(), (&'static str, String)>) -> Status {
    match r {
        Ok(()) => Status::Passed(
            "address, digest, purpose, report_data (and a raw transaction) agree".into(),
        ),
        Err((field, detail)) => Status::Failed(Failure::FieldMismatch { field, detail }),
    }
}

fn signature_status(signature: &Signature, address: &Address, digest: &B256) -> Status {
    match signature.recover_address(digest) {
        Ok(a) if a == *address => Status::Passed(format!("by {address} over {digest}")),
        _ => Status::Failed(Failure::Signature {
            address: address.to_string(),
            digest: digest.to_string(),
        }),
    }
}
