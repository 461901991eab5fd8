//! What a validator checks: `verify` an attestation (from `attest`) or a
//! signature with its attestation (from `sign`), offline, under a policy.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tee_core::B256;

use super::{Failure, now_secs, read};
use crate::attest::pccs::Pccs;
use crate::attest::{Attestation, Bound, Expected, Policy, TeeSignature, Verifier};

#[derive(Args)]
pub(super) struct Verify {
    /// The JSON from `attest` or `sign`.
    file: PathBuf,
    /// The verifier policy (TOML or JSON): measurements, compose hash, app id, KMS root.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// DCAP collateral (dcap-qvl JSON).
    #[arg(long, conflicts_with = "pccs")]
    collateral: Option<PathBuf>,
    /// A PCCS to fetch collateral from.
    #[arg(long)]
    pccs: Option<String>,
    /// For an attestation: the challenge it must bind.
    #[arg(long)]
    challenge: Option<B256>,
    /// Unix time to verify at (default: now).
    #[arg(long)]
    now: Option<u64>,
}

pub(super) fn verify(c: Verify) -> Result<ExitCode, Failure> {
    let verifier = Verifier {
        policy: match &c.policy {
            Some(p) => Policy::load(p)?,
            None => Policy::default(),
        },
        collateral: match &c.collateral {
            Some(p) => Some(serde_json::from_str(&read(p)?)?),
            None => None,
        },
        pccs: c.pccs.map(|url| Pccs::new(&url, None)).transpose()?,
    };
    let now = match c.now {
        Some(t) => t,
        None => now_secs()?,
    };
    let text = read(&c.file)?;
    let report = if let Ok(s) = serde_json::from_str::<TeeSignature>(&text) {
        verifier.verify_tee_signature(&s, now)
    } else {
        let a: Attestation = serde_json::from_str(&text).map_err(|e| {
            format!("{}: neither a signature nor an attestation: {e}", c.file.display())
        })?;
        let expected = match (c.challenge, a.bound) {
            (Some(c), _) => Expected::Challenge(c),
            (None, Bound::ActionDigest(d)) => Expected::ActionDigest(d),
            (None, Bound::Challenge(_)) => {
                return Err("an attestation bound to a challenge: give the challenge you sent \
                            (--challenge)"
                    .into());
            }
        };
        verifier.verify(&a.evidence(), &a.address, &expected, now)
    };
    println!("{report}");
    Ok(if report.verified() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
