//! `approve`: an approver's side of m-of-n approvals. Reads the approval
//! request `sign` printed, checks the action it carries hashes to the
//! digest it names (an approver never approves a digest it cannot read),
//! shows it, and prints the EIP-712 approval made with the approver's key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tee_client::approval::{ApprovalRequest, approve as approval_of};

use super::exit::Invalid;
use super::{Failure, json, read, read_secret_key};

#[derive(Args)]
pub(super) struct Approve {
    /// The approval request (what `sign` printed when the policy held the
    /// action, or its `approvalRequest`).
    #[arg(long)]
    request: PathBuf,
    /// File holding your (the approver's) secret key, hex, readable by you
    /// only. Any EIP-712 wallet can approve instead: sign the request's
    /// `typedData`.
    #[arg(long)]
    key_file: PathBuf,
    /// Approve a request that carries only the digest, not the action (you
    /// checked the digest some other way).
    #[arg(long)]
    digest_only: bool,
}

pub(super) fn approve(c: &Approve) -> Result<ExitCode, Failure> {
    let text: serde_json::Value = serde_json::from_str(&read(&c.request)?)?;
    let inner = text.get("approvalRequest").cloned().unwrap_or(text);
    let request: ApprovalRequest = serde_json::from_value(inner)?;
    match &request.action {
        Some(action) => {
            let parsed = tee_client::actions::from_json(&action.to_string(), &[])?;
            let view = parsed.action.view();
            if view.digest() != request.digest {
                return Err(Invalid(format!(
                    "the request's action hashes to {}, not to the digest {} it asks you to \
                     approve: not approved",
                    view.digest(),
                    request.digest
                ))
                .into());
            }
            eprintln!("approving, for {} at sequence {}: {view}", request.signer, request.sequence);
        }
        None if c.digest_only => {
            eprintln!("approving digest {} without its action (--digest-only)", request.digest);
        }
        None => {
            return Err(Invalid(
                "the request carries no action to read, only its digest: give --digest-only \
                 if you checked the digest otherwise"
                    .into(),
            )
            .into());
        }
    }
    let key = read_secret_key(&c.key_file, "approver key")?;
    if !request.approvers.contains(&key.address()) {
        eprintln!(
            "note: {} is not among the slot's approvers {:?}: the signer will not count this",
            key.address(),
            request.approvers
        );
    }
    let signature = approval_of(&request, &key)?;
    json(&serde_json::json!({
        "approver": key.address().to_string(),
        "sequence": request.sequence,
        "expires": request.expires,
        "signature": tee_core::primitives::Hex(&signature).to_string(),
    }))
}
