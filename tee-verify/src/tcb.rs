//! The TCB a quote's platform runs at, and how long its collateral lasts:
//! what an operator watches before a TCB recovery or an expired collateral
//! turns every verdict to 0 (`tee-signer tcb`).

use serde::Serialize;

use super::checks::Verifier;
use super::report::Failure;

/// How long before the collateral's `nextUpdate` a verdict warns.
pub const EXPIRY_WARNING_SECS: i64 = 7 * 24 * 3600;

/// A quote's TCB as its collateral says and DCAP checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TcbReport {
    /// The TCB status DCAP found (`UpToDate`, `SWHardeningNeeded`,
    /// `OutOfDate`, …), `None` when DCAP did not pass.
    pub status: Option<String>,
    /// The Intel security advisories that apply (`INTEL-SA-…`).
    pub advisory_ids: Vec<String>,
    /// Why DCAP did not pass (`None`: it passed).
    pub dcap_error: Option<String>,
    /// Whether the verifier's policy accepts this TCB (status and
    /// advisories; DCAP passed).
    pub accepted: bool,
    /// The platform's FMSPC (family-model-stepping-platform-customSKU), hex,
    /// as the TCB info names it (DCAP checks it against the PCK
    /// certificate).
    pub fmspc: String,
    /// The TCB evaluation data number of the TCB info (a TCB recovery
    /// raises it).
    pub tcb_evaluation_data_number: u64,
    /// The QE identity's TCB evaluation data number.
    pub qe_evaluation_data_number: u64,
    /// When the TCB info was issued.
    pub tcb_info_issue_date: String,
    /// The TCB info's `nextUpdate`.
    pub tcb_info_next_update: String,
    /// The QE identity's `nextUpdate`.
    pub qe_identity_next_update: String,
    /// The earlier of the two: after it, this collateral verifies nothing.
    pub next_update: String,
    /// Seconds from the time asked about to `next_update` (negative:
    /// expired).
    pub seconds_left: i64,
}

impl TcbReport {
    /// The collateral expires within [`EXPIRY_WARNING_SECS`] (or has).
    #[must_use]
    pub fn expires_soon(&self) -> bool {
        self.seconds_left < EXPIRY_WARNING_SECS
    }
}

/// When `c` stops being valid: the earlier `nextUpdate` of its TCB info
/// and QE identity, in unix seconds (`None`: one does not read).
#[must_use]
pub fn collateral_next_update(c: &dcap_qvl::QuoteCollateralV3) -> Option<i64> {
    let tcb = dated("TCB info", &c.tcb_info).ok()?;
    let qe = dated("QE identity", &c.qe_identity).ok()?;
    Some(tcb.next_update_secs.min(qe.next_update_secs))
}

/// The fields of a TCB info or QE identity (bare or in PCCS's wrapper).
struct Dated {
    issue_date: String,
    next_update: String,
    next_update_secs: i64,
    evaluation: u64,
    fmspc: Option<String>,
}

fn dated(what: &str, json: &str) -> Result<Dated, Failure> {
    let bad = |m: String| Failure::CollateralInvalid(format!("{what}: {m}"));
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let body = v.get("tcbInfo").or_else(|| v.get("enclaveIdentity")).unwrap_or(&v);
    let text = |k: &str| {
        body.get(k)
            .and_then(|d| d.as_str())
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("no {k}")))
    };
    let next_update = text("nextUpdate")?;
    let next_update_secs = chrono::DateTime::parse_from_rfc3339(&next_update)
        .map_err(|e| bad(format!("nextUpdate {next_update}: {e}")))?
        .timestamp();
    Ok(Dated {
        issue_date: text("issueDate")?,
        next_update,
        next_update_secs,
        evaluation: body
            .get("tcbEvaluationDataNumber")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad("no tcbEvaluationDataNumber".into()))?,
        fmspc: body.get("fmspc").and_then(|f| f.as_str()).map(str::to_lowercase),
    })
}

impl Verifier {
    /// The TCB of the platform that made `quote`, at unix time `now`: the
    /// collateral as [`Verifier::collateral_for`] finds it, read, and DCAP
    /// run on it. An error only when there is no collateral to read.
    pub fn tcb(&self, quote: &[u8], now: u64) -> Result<TcbReport, Failure> {
        let collateral = self.collateral_for(quote, now)?;
        let tcb = dated("TCB info", &collateral.tcb_info)?;
        let qe = dated("QE identity", &collateral.qe_identity)?;
        let (next_update, next_secs) = if tcb.next_update_secs <= qe.next_update_secs {
            (tcb.next_update.clone(), tcb.next_update_secs)
        } else {
            (qe.next_update.clone(), qe.next_update_secs)
        };
        let (status, advisory_ids, dcap_error) = match self.dcap(quote, &collateral, now) {
            Ok(v) => (Some(v.status), v.advisory_ids, None),
            Err(e) => (None, Vec::new(), Some(e)),
        };
        let accepted = status.as_deref().is_some_and(|s| self.policy.accepts_tcb(s, &advisory_ids));
        Ok(TcbReport {
            status,
            advisory_ids,
            dcap_error,
            accepted,
            fmspc: tcb.fmspc.unwrap_or_default(),
            tcb_evaluation_data_number: tcb.evaluation,
            qe_evaluation_data_number: qe.evaluation,
            tcb_info_issue_date: tcb.issue_date,
            tcb_info_next_update: tcb.next_update,
            qe_identity_next_update: qe.next_update,
            next_update,
            seconds_left: next_secs - i64::try_from(now).unwrap_or(i64::MAX),
        })
    }
}
