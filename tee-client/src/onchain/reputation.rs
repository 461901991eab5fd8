//! TEE-verified reputation: an agent's feedback on the Reputation Registry,
//! all of it and the part whose feedback file carries the agent's
//! [`TaskReceipt`](tee_core::action::TaskReceipt) signed inside its TEE.
//!
//! The client of a task puts, in the feedback file whose `keccak256` its
//! `giveFeedback` commits (`feedbackURI`, `feedbackHash`), the receipt the
//! agent returned with the result:
//!
//! ```json
//! {"teeReceipt": {"typedData": {…eth_signTypedData_v4 TaskReceipt…},
//!                 "signature": {…the signer's signature with its attestation…}}}
//! ```
//!
//! A feedback counts as TEE-verified when its file is fetched under the
//! reader's rules and hashes to `feedbackHash`; its receipt is a
//! `TaskReceipt` for this agent on this chain and identity registry, and
//! the signature is of that receipt's digest; the signer is the agent's
//! TEE signer (its wallet or its `tee-signer` metadata) and the agent holds
//! a passing verdict (100) from the validators the reader trusts, under
//! `tee-attestation` or ERC-8004's `tee`; and the signature's attestation
//! passes the reader's pinned policy. Every feedback left out says why.

use alloy_sol_types::{SolEvent, sol};
use serde::Serialize;
use serde_json::{Value, json};
use tee_core::primitives::keccak256;
use tee_core::{Action, Address, B256, U256};
use tee_verify::{TeeSignature, Verifier};

use super::fetch::{FetchRules, fetch};
use super::rpc::{Rpc, RpcError};

sol! {
    /// The Reputation Registry's reads used here.
    interface IReputationReads {
        function getIdentityRegistry() external view returns (address);
        function readFeedback(uint256 agentId, address clientAddress, uint64 feedbackIndex) external view returns (int128 value, uint8 valueDecimals, string tag1, string tag2, bool isRevoked);
    }

    /// A feedback, as the Reputation Registry v2 emits it.
    event NewFeedback(uint256 indexed agentId, address indexed clientAddress, uint64 feedbackIndex, int128 value, uint8 valueDecimals, string indexed indexedTag1, string tag1, string tag2, string endpoint, string feedbackURI, bytes32 feedbackHash);
}

/// The Validation Registry tags whose verdicts vouch for an agent's TEE:
/// this project's and ERC-8004's unmerged TEE work's.
pub const VERDICT_TAGS: [&str; 2] = [super::TAG, "tee"];

/// What to read and how.
#[derive(Debug)]
pub struct Query<'a> {
    /// The chain.
    pub rpc: &'a Rpc,
    /// The Reputation Registry.
    pub reputation_registry: Address,
    /// The Validation Registry the verdicts are in.
    pub validation_registry: Address,
    /// The agent.
    pub agent_id: U256,
    /// The validators whose verdicts the reader trusts.
    pub validators: &'a [Address],
    /// The reader's pinned policy for attestations.
    pub verifier: &'a Verifier,
    /// What feedback files may be fetched from.
    pub fetch: FetchRules<'a>,
    /// Search `NewFeedback` from this block.
    pub from_block: u64,
    /// Unix time to verify at.
    pub now: u64,
}

/// One feedback and what was found of its receipt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Feedback {
    /// The client that gave it.
    pub client: Address,
    /// Its index among the client's feedback for the agent.
    pub feedback_index: u64,
    /// The value (an `int128`, as a decimal string).
    pub value: String,
    /// Its decimals.
    pub value_decimals: u8,
    /// `tag1`.
    pub tag1: String,
    /// `tag2`.
    pub tag2: String,
    /// The feedback file's URI.
    pub feedback_uri: String,
    /// Whether its receipt verified.
    pub tee_verified: bool,
    /// Why it is not TEE-verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A count and the average value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// How many feedbacks.
    pub count: u64,
    /// Their average value (each scaled by its decimals); `null` for none.
    pub average: Option<f64>,
}

impl Summary {
    fn of<'a>(feedback: impl Iterator<Item = &'a Feedback>) -> Summary {
        let values: Vec<f64> = feedback
            .map(|f| {
                let v: f64 = f.value.parse().unwrap_or(0.0);
                v / 10f64.powi(i32::from(f.value_decimals))
            })
            .collect();
        let count = values.len() as u64;
        let average =
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        Summary { count, average }
    }
}

/// The agent's reputation, all and TEE-verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reputation {
    /// The agent.
    pub agent_id: U256,
    /// The agent's TEE signers as the identity registry names them (its
    /// wallet, its `tee-signer` metadata).
    pub tee_signers: Vec<Address>,
    /// Whether the trusted validators' verdicts pass (count > 0, average 100).
    pub validated: bool,
    /// Every feedback not revoked.
    pub all: Summary,
    /// The feedback whose receipts verified.
    pub tee_verified: Summary,
    /// Each feedback, with the reason where it is not TEE-verified.
    pub feedback: Vec<Feedback>,
}

/// Reads and checks the agent's feedback.
pub fn reputation(q: &Query<'_>) -> Result<Reputation, RpcError> {
    use IReputationReads::*;
    let identity = Address(q.rpc.view(&q.reputation_registry, &getIdentityRegistryCall {})?.0.0);
    let chain_id = q.rpc.chain_id()?;
    let (wallet, metadata) = q.rpc.tee_signers(&identity, &q.agent_id)?;
    let tee_signers: Vec<Address> = [wallet, metadata].into_iter().flatten().collect();
    let mut validated = false;
    for tag in VERDICT_TAGS {
        let (count, average) =
            q.rpc.summary(&q.validation_registry, &q.agent_id, q.validators, tag)?;
        if count > 0 {
            if average != 100 {
                validated = false;
                break;
            }
            validated = true;
        }
    }
    let agent = Agent { chain_id, identity, agent_id: q.agent_id, tee_signers: &tee_signers };
    let mut feedback = Vec::new();
    for log in new_feedback(q)? {
        let client = Address(log.clientAddress.0.0);
        let read = q.rpc.view(
            &q.reputation_registry,
            &readFeedbackCall {
                agentId: log.agentId,
                clientAddress: log.clientAddress,
                feedbackIndex: log.feedbackIndex,
            },
        )?;
        if read.isRevoked {
            continue;
        }
        let checked = if validated {
            check_file(q, &agent, &log.feedbackURI, &B256(log.feedbackHash.0))
        } else {
            Err("the agent has no passing TEE verdict from the validators given".into())
        };
        feedback.push(Feedback {
            client,
            feedback_index: log.feedbackIndex,
            value: log.value.to_string(),
            value_decimals: log.valueDecimals,
            tag1: log.tag1,
            tag2: log.tag2,
            feedback_uri: log.feedbackURI,
            tee_verified: checked.is_ok(),
            reason: checked.err(),
        });
    }
    Ok(Reputation {
        agent_id: q.agent_id,
        tee_signers,
        validated,
        all: Summary::of(feedback.iter()),
        tee_verified: Summary::of(feedback.iter().filter(|f| f.tee_verified)),
        feedback,
    })
}

/// The agent as the chain names it.
struct Agent<'a> {
    chain_id: u64,
    identity: Address,
    agent_id: U256,
    tee_signers: &'a [Address],
}

fn new_feedback(q: &Query<'_>) -> Result<Vec<NewFeedback>, RpcError> {
    let method = "eth_getLogs";
    let filter = json!({
        "address": [q.reputation_registry.to_string()],
        "fromBlock": format!("{:#x}", q.from_block),
        "toBlock": "latest",
        "topics": [B256(NewFeedback::SIGNATURE_HASH.0).to_string(), q.agent_id_topic()],
    });
    let logs = q.rpc.call(method, json!([filter]))?;
    let answer = |message: String| RpcError::Answer { method, message };
    let logs = logs.as_array().ok_or_else(|| answer(logs.to_string()))?;
    logs.iter()
        .map(|l| {
            let topics: Vec<alloy_primitives::B256> = l
                .get("topics")
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .ok_or_else(|| answer(l.to_string()))?;
            let data = l.get("data").and_then(Value::as_str).unwrap_or("0x");
            let data =
                hex::decode(data.trim_start_matches("0x")).map_err(|e| answer(e.to_string()))?;
            NewFeedback::decode_raw_log(topics, &data).map_err(|e| answer(e.to_string()))
        })
        .collect()
}

impl Query<'_> {
    fn agent_id_topic(&self) -> String {
        B256(self.agent_id.0).to_string()
    }
}

/// The feedback file at `uri`, its hash, and its receipt: `Ok` if TEE-verified.
fn check_file(q: &Query<'_>, agent: &Agent<'_>, uri: &str, hash: &B256) -> Result<(), String> {
    if uri.is_empty() {
        return Err("no feedback file".into());
    }
    let bytes = fetch(uri, &q.fetch).map_err(|e| format!("the feedback file: {e}"))?;
    if keccak256(&bytes) != *hash {
        return Err("the feedback file does not hash to feedbackHash".into());
    }
    let file: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the feedback file is not JSON: {e}"))?;
    let receipt = file.get("teeReceipt").ok_or("the feedback file carries no teeReceipt")?;
    check_receipt(q, agent, receipt)
}

fn check_receipt(q: &Query<'_>, agent: &Agent<'_>, receipt: &Value) -> Result<(), String> {
    let typed = receipt.get("typedData").ok_or("the receipt has no typedData")?;
    let action = crate::actions::from_json(&typed.to_string(), &[])
        .map_err(|e| format!("the receipt's typed data: {e}"))?
        .action;
    let Action::TaskReceipt(r) = action.view() else {
        return Err(format!("the receipt is a {}, not a TaskReceipt", action.view().kind()));
    };
    if (r.chain_id, r.identity_registry, r.agent_id)
        != (agent.chain_id, agent.identity, agent.agent_id)
    {
        return Err(format!(
            "a receipt of agent {} on chain {} (registry {}), not of this agent",
            r.agent_id, r.chain_id, r.identity_registry
        ));
    }
    let signature: TeeSignature = serde_json::from_value(
        receipt.get("signature").cloned().ok_or("the receipt has no signature")?,
    )
    .map_err(|e| format!("the receipt's signature: {e}"))?;
    if signature.digest != action.view().digest() {
        return Err("the signature is not of this receipt's digest".into());
    }
    if !agent.tee_signers.contains(&signature.address) {
        return Err(format!(
            "signed by {}, which is not the agent's TEE signer (its wallet or tee-signer metadata)",
            signature.address
        ));
    }
    let report = q.verifier.verify_tee_signature(&signature, q.now);
    if !report.verified() {
        let failed: Vec<String> =
            report.failures().map(|(check, f)| format!("{check}: {f}")).collect();
        return Err(format!("the attestation does not verify: {}", failed.join("; ")));
    }
    Ok(())
}
