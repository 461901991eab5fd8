//! What a validator does: pin a `policy` to a deployment, and `verify` an
//! attestation (from `attest`) or a signature with its attestation (from
//! `sign`), offline, under it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tee_core::B256;

use super::exit::Invalid;
use super::{Failure, json, now_secs, read};
use tee_core::Address;
use tee_verify::pccs::Pccs;
use tee_verify::policy::Deployment;
use tee_verify::{Attestation, Bound, Expected, Policy, TeeSignature, Verifier};

/// The verifier's policy and where its DCAP collateral comes from.
#[derive(Args)]
pub(super) struct VerifierOpts {
    /// The verifier policy (TOML or JSON): who the signer must be (compose
    /// hash and app id, or MRTD and RTMR0-2; the KMS root for derived keys).
    /// `tee-signer policy` writes one from a deployment.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// DCAP collateral (dcap-qvl JSON).
    #[arg(long, conflicts_with = "pccs")]
    collateral: Option<PathBuf>,
    /// A PCCS to fetch collateral from.
    #[arg(long)]
    pccs: Option<String>,
    /// Keep the PCCS's collateral in this directory (per FMSPC) and reuse
    /// it until its nextUpdate: one fetch per platform and period.
    #[arg(long, requires = "pccs")]
    collateral_cache: Option<PathBuf>,
    /// Trust the built-in simulated TEE's DCAP root instead of Intel's (its
    /// collateral is made for the time if none is given): a simulated
    /// signer's quotes then pass, and the verdict says "simulated root".
    /// For trying things out only.
    #[arg(long)]
    trust_simulator_root: bool,
}

impl VerifierOpts {
    /// The verifier; `unpinned`: without a policy (the verdict then says
    /// NOT PINNED), else a policy is required.
    pub(super) fn verifier(&self, unpinned: bool) -> Result<Verifier, Failure> {
        let mut policy = match &self.policy {
            Some(p) => Policy::load(p)?,
            None if unpinned => Policy::default(),
            None => {
                return Err(Invalid(format!(
                    "no verifier policy (--policy FILE): {}",
                    Policy::WHAT_TO_PIN
                ))
                .into());
            }
        };
        policy.trust_simulator_root |= self.trust_simulator_root;
        Ok(Verifier {
            policy,
            collateral: match &self.collateral {
                Some(p) => Some(serde_json::from_str(&read(p)?)?),
                None => None,
            },
            pccs: match (&self.pccs, &self.collateral_cache) {
                (Some(url), Some(dir)) => Some(Pccs::new(url, None)?.with_cache(dir)?),
                (Some(url), None) => Some(Pccs::new(url, None)?),
                (None, _) => None,
            },
            simulated_root: Some(tee_sim::root()),
        })
    }
}

/// Warns on standard error when the collateral the PCCS last gave expires
/// within [`tee_verify::tcb::EXPIRY_WARNING_SECS`] of `now` (or has): every
/// verdict turns to "not verified" once it has and no newer one is served.
pub(super) fn warn_expiry(verifier: &Verifier, now: u64) {
    let Some((fmspc, next)) = verifier.pccs.as_ref().and_then(Pccs::last_seen) else {
        return;
    };
    let left = next - i64::try_from(now).unwrap_or(i64::MAX);
    if left < tee_verify::tcb::EXPIRY_WARNING_SECS {
        eprintln!(
            "warning: the DCAP collateral for FMSPC {fmspc} {} (its nextUpdate, unix {next}): \
             verdicts fail once it has unless the PCCS serves a newer one",
            if left > 0 { format!("expires in {} h", left / 3600) } else { "has expired".into() }
        );
    }
}

#[derive(Args)]
pub(super) struct Verify {
    /// The JSON from `attest` or `sign`.
    file: PathBuf,
    #[command(flatten)]
    verifier: VerifierOpts,
    /// Verify without a policy: every other check runs, for trying things
    /// out; the verdict says NOT PINNED and the exit status is 5 (not
    /// verified).
    #[arg(long, conflicts_with = "policy")]
    insecure_any_td: bool,
    /// For an attestation: the challenge it must bind.
    #[arg(long)]
    challenge: Option<B256>,
    /// Unix time to verify at (default: now).
    #[arg(long)]
    now: Option<u64>,
}

pub(super) fn verify(c: Verify) -> Result<ExitCode, Failure> {
    let verifier = c.verifier.verifier(c.insecure_any_td)?;
    let now = match c.now {
        Some(t) => t,
        None => now_secs()?,
    };
    let text = read(&c.file)?;
    let report = if let Ok(s) = serde_json::from_str::<TeeSignature>(&text) {
        verifier.verify_tee_signature(&s, now)
    } else {
        let a: Attestation = serde_json::from_str(&text).map_err(|e| {
            Invalid(format!("{}: neither a signature nor an attestation: {e}", c.file.display()))
        })?;
        let expected = match (c.challenge, a.bound) {
            (Some(c), Bound::Device(_)) => Expected::Device(c),
            (Some(c), _) => Expected::Challenge(c),
            (None, Bound::ActionDigest(d)) => Expected::ActionDigest(d),
            (None, Bound::Challenge(_) | Bound::Device(_)) => {
                return Err(Invalid(
                    "an attestation bound to a challenge: give the challenge you sent \
                     (--challenge)"
                        .into(),
                )
                .into());
            }
        };
        verifier.verify_attestation(&a, &expected, now)
    };
    println!("{report}");
    warn_expiry(&verifier, now);
    // NOT PINNED is not verified: a script reading the status must not take
    // a check without a policy for a verdict (the report says what passed).
    let passed = report.verified();
    Ok(if passed { ExitCode::SUCCESS } else { super::exit::status(super::exit::NOT_VERIFIED) })
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("from").required(true))]
pub(super) struct PinPolicy {
    /// An attestation of the deployment (JSON from `tee-signer attest`).
    #[arg(long, group = "from")]
    attestation: Option<PathBuf>,
    /// dstack's Info response of the deployment (JSON).
    #[arg(long, group = "from")]
    info: Option<PathBuf>,
    /// The app-compose file you reviewed: its SHA-256 must be the
    /// deployment's compose hash.
    #[arg(long)]
    app_compose: Option<PathBuf>,
    /// The dstack KMS root address derived keys must chain to.
    #[arg(long)]
    kms_root: Option<Address>,
    /// Pin only the app (compose hash, app id), not the image (MRTD,
    /// RTMR0-2): any OS image and VM size the KMS serves the app on passes.
    #[arg(long)]
    app_only: bool,
    /// Trust the built-in simulated TEE's DCAP root instead of Intel's (for
    /// a policy pinned to the simulator; never for a real deployment).
    #[arg(long)]
    trust_simulator_root: bool,
    /// Write the policy here (TOML) instead of printing it.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub(super) fn pin_policy(c: PinPolicy) -> Result<ExitCode, Failure> {
    let attestation: Option<Attestation> = match &c.attestation {
        Some(p) => {
            Some(serde_json::from_str(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let info = c.info.as_deref().map(read).transpose()?;
    let deployment = match (&attestation, &info) {
        (Some(a), _) => Deployment::Attestation(a),
        (None, Some(i)) => Deployment::Info(i),
        (None, None) => {
            return Err(Invalid("give --attestation FILE or --info FILE".into()).into());
        }
    };
    let compose = match &c.app_compose {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let mut policy = Policy::pin(deployment, c.kms_root, compose.as_deref(), !c.app_only)?;
    policy.trust_simulator_root = c.trust_simulator_root;
    if c.kms_root.is_none() {
        eprintln!(
            "note: no --kms-root: signatures by keys derived by dstack's KMS will not verify"
        );
    }
    let text = toml::to_string(&policy)?;
    match &c.out {
        Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub(super) struct ComposeHash {
    /// The app-compose file (app-compose.json), exactly as deployed.
    file: PathBuf,
    /// Print JSON (`composeHash`, `appId`, `bytes`).
    #[arg(long)]
    json: bool,
}

/// The compose hash dstack computes for an app-compose file: what the CVM's
/// event log records, what `policy --app-compose` checks and pins, and (its
/// first 20 bytes) the app id dstack gives an app deployed without one.
pub(super) fn compose_hash(c: &ComposeHash) -> Result<ExitCode, Failure> {
    let bytes = std::fs::read(&c.file).map_err(|e| format!("{}: {e}", c.file.display()))?;
    let hash = tee_verify::policy::compose_hash(&bytes);
    if !c.json {
        println!("{hash}");
        return Ok(ExitCode::SUCCESS);
    }
    let app_id = format!("0x{}", hex::encode(hash.0.get(..20).unwrap_or_default()));
    json(
        &serde_json::json!({ "composeHash": hash.to_string(), "appId": app_id, "bytes": bytes.len() }),
    )
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("quote_from").required(true))]
pub(super) struct Tcb {
    /// An attestation (from `attest`), a signature (from `sign`), or a raw
    /// TDX quote.
    #[arg(group = "quote_from")]
    file: Option<PathBuf>,
    /// A running signer instead: its identity's attestation, for a fresh
    /// challenge.
    #[arg(long, short, group = "quote_from")]
    connect: Option<tee_transport::Endpoint>,
    #[command(flatten)]
    verifier: VerifierOpts,
    /// Unix time to evaluate at (default: now).
    #[arg(long)]
    now: Option<u64>,
    /// Print JSON (`status`, `advisoryIds`, `dcapError`, `accepted`,
    /// `fmspc`, `tcbEvaluationDataNumber`, `qeEvaluationDataNumber`,
    /// `tcbInfoIssueDate`, `tcbInfoNextUpdate`, `qeIdentityNextUpdate`,
    /// `nextUpdate`, `secondsLeft`).
    #[arg(long)]
    json: bool,
}

/// The quote in `file`: an attestation's, a signature's, or the file itself.
fn quote_of(file: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let bytes = std::fs::read(file).map_err(|e| Invalid(format!("{}: {e}", file.display())))?;
    if let Ok(s) = serde_json::from_slice::<TeeSignature>(&bytes) {
        return Ok(s.attestation.quote);
    }
    if let Ok(a) = serde_json::from_slice::<Attestation>(&bytes) {
        return Ok(a.quote);
    }
    // A TDX quote starts with its version (4 or 5) as a little-endian u16.
    match bytes.get(..2) {
        Some([4 | 5, 0]) => Ok(bytes),
        _ => Err(Invalid(format!(
            "{}: neither an attestation, a signature nor a TDX quote",
            file.display()
        ))
        .into()),
    }
}

fn span(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 { format!("{d} d {h} h") } else { format!("{h} h {m} min") }
}

/// A platform's TCB: status, advisories, FMSPC, TCB evaluation number, and
/// how long its collateral lasts. Exits 0 when DCAP passed, the policy (or
/// the default: UpToDate, no advisory) accepts the TCB and the collateral
/// is valid; 5 otherwise; 4 when the PCCS did not answer.
pub(super) fn tcb(c: Tcb) -> Result<ExitCode, Failure> {
    use tee_verify::Failure as F;
    let verifier = c.verifier.verifier(true)?;
    let now = match c.now {
        Some(t) => t,
        None => now_secs()?,
    };
    let read = match (&c.file, &c.connect) {
        (Some(f), _) => verifier.tcb(&quote_of(f)?, now),
        (None, Some(endpoint)) => {
            let p = tee_client::provider::PhalaDstackProvider::new(endpoint.clone(), verifier);
            match p.tcb(now) {
                Err(tee_client::provider::ProviderError::Tcb(e)) => Err(e),
                other => Ok(other?),
            }
        }
        (None, None) => return Err(Invalid("give a FILE or --connect".into()).into()),
    };
    let t = match read {
        Ok(t) => t,
        Err(F::CollateralFetch(e)) => {
            return Err(Box::new(super::exit::Unreachable {
                what: "the PCCS".into(),
                source: std::io::Error::other(e),
            }));
        }
        Err(F::Missing("collateral")) => {
            return Err(
                Invalid("no collateral: give --collateral FILE or --pccs URL".into()).into()
            );
        }
        Err(e) => return Err(Invalid(format!("the collateral: {e}")).into()),
    };
    let good = t.accepted && t.seconds_left > 0;
    let code = if good { super::exit::OK } else { super::exit::NOT_VERIFIED };
    if c.json {
        json(&t)?;
        return Ok(super::exit::status(code));
    }
    println!("status        {}", t.status.as_deref().unwrap_or("unknown (DCAP did not pass)"));
    println!(
        "advisories    {}",
        if t.advisory_ids.is_empty() { "none".to_owned() } else { t.advisory_ids.join(", ") }
    );
    match &t.dcap_error {
        None => println!("dcap          passed"),
        Some(e) => println!("dcap          FAILED: {e}"),
    }
    println!("fmspc         {}", t.fmspc);
    println!(
        "tcb eval      {} (QE identity {})",
        t.tcb_evaluation_data_number, t.qe_evaluation_data_number
    );
    println!(
        "tcb info      issued {}, next update {}",
        t.tcb_info_issue_date, t.tcb_info_next_update
    );
    println!("qe identity   next update {}", t.qe_identity_next_update);
    if t.seconds_left > 0 {
        let soon = if t.expires_soon() { " (renew it: less than 7 days left)" } else { "" };
        println!("collateral    valid for {}{soon}", span(t.seconds_left));
    } else {
        println!("collateral    EXPIRED {} ago: nothing verifies with it", span(t.seconds_left));
    }
    println!(
        "accepted      {}",
        if t.accepted { "yes, under the policy" } else { "NO, under the policy" }
    );
    Ok(super::exit::status(code))
}
