//! The validator's side: given a validation request as the Validation
//! Registry holds it (and what the identity registry says of the agent)
//! and the bundle's bytes as published, every check, and the
//! `validationResponse` to send: 100 when all pass, 0 otherwise, with the
//! report (its reasons) whose `keccak256`, bound to the attested signer, is
//! the `responseHash`.

use serde::Serialize;
use tee_core::primitives::keccak256;
use tee_core::{Address, B256, U256};

use super::bundle::{AgentRef, AttestationBundle};
use tee_verify::{Bound, Expected, Report, Verifier};

/// The request and the agent, as the chain says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOnChain {
    /// The chain's id.
    pub chain_id: u64,
    /// The identity registry the Validation Registry names.
    pub identity_registry: Address,
    /// The request's hash.
    pub request_hash: B256,
    /// The agent the request is for.
    pub agent_id: U256,
    /// The agent's wallet (`getAgentWallet`), if set.
    pub agent_wallet: Option<Address>,
    /// The signer the agent's metadata names ([`super::METADATA_KEY`]), if any.
    pub tee_signer: Option<Address>,
}

impl AgentOnChain {
    /// The agent.
    #[must_use]
    pub fn agent(&self) -> AgentRef {
        AgentRef {
            chain_id: self.chain_id,
            identity_registry: self.identity_registry,
            agent_id: self.agent_id,
        }
    }
}

/// One check of a validation: its name, whether it passed, what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationCheck {
    /// `requestHash`, `bundle`, `agent`, `challenge`, `freshness`,
    /// `attestation` or `signer`.
    pub check: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was found (why it failed).
    pub detail: String,
}

/// What the validator says of the bundle: the report it publishes (its
/// JSON is the `responseURI`'s content; [`Validation::response_hash`] the `responseHash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// `tee-signer/erc8004-validation-report/v1`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request answered.
    pub request_hash: B256,
    /// `eip155:{chainId}:{identityRegistry}`.
    pub agent_registry: String,
    /// The agent.
    pub agent_id: U256,
    /// The TEE signer the bundle attests, if it reads.
    pub signer: Option<Address>,
    /// 100: every check passed; 0: one failed.
    pub response: u8,
    /// [`super::TAG`].
    pub tag: &'static str,
    /// When the checks ran (unix seconds).
    pub validated_at: u64,
    /// Every check, in order.
    pub checks: Vec<ValidationCheck>,
    /// The attestation verifier's report, when it ran.
    pub attestation: Option<Report>,
    /// A validator that itself runs in a TEE: its own key's attestation,
    /// bound to [`Validation::validator_challenge`] (this request and this
    /// response), so a reader can check who answered (and that the key
    /// that signed `validationResponse` is in a measured app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validator_attestation: Option<tee_verify::Attestation>,
}

impl Validation {
    /// The report's bytes (compact JSON): `responseURI`'s content.
    #[must_use]
    pub fn report_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `keccak256` of [`Validation::report_bytes`]: the report's hash.
    #[must_use]
    pub fn report_hash(&self) -> B256 {
        keccak256(&self.report_bytes())
    }

    /// The `responseHash`: `keccak256(signer ‖ keccak256(report))`, the
    /// report's hash bound to the signer it attests (20 zero bytes when the
    /// bundle did not read), so a contract can check, with the report's
    /// hash alone, that a verdict is about the address the identity
    /// registry now names as the agent's wallet (`contracts/RequireTEE.sol`).
    /// A reader of the report recomputes it from the report's `signer`.
    #[must_use]
    pub fn response_hash(&self) -> B256 {
        let mut m = self.signer.map_or([0; 20], |a| a.0).to_vec();
        m.extend_from_slice(&self.report_hash().0);
        keccak256(&m)
    }

    /// What a validator's own attestation binds: `keccak256(domain ‖
    /// requestHash ‖ response)`.
    #[must_use]
    pub fn validator_challenge(&self) -> B256 {
        let mut m = b"tee-signer/erc8004-validator-report/v1".to_vec();
        m.extend_from_slice(&self.request_hash.0);
        m.push(self.response);
        keccak256(&m)
    }

    /// Whether every check passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.response == 100
    }

    /// The failed checks' reasons, one line each.
    #[must_use]
    pub fn reasons(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.check, c.detail))
            .collect()
    }
}

/// How far in the future a bundle's `issuedAt` may be (clock skew).
pub const MAX_SKEW_SECS: u64 = 300;

/// Checks `bundle` (its bytes as published) for the request `on_chain`
/// under `verifier` (its pinned policy), at `now`, accepting bundles made
/// at most `max_age_secs` before:
///
/// 1. `requestHash`: the bytes hash to the request's hash;
/// 2. `bundle`: they read as an attestation bundle;
/// 3. `agent`: it names this agent on this registry and chain;
/// 4. `challenge`: its challenge is this agent's for its `issuedAt`, and
///    the attestation binds it;
/// 5. `freshness`: `issuedAt` is not in the future or too old;
/// 6. `attestation`: the full verifier passes (quote, binding of the
///    signer's address to the challenge, pinned app and image, DCAP, key
///    chain to the pinned KMS root);
/// 7. `signer`: the attested address is the agent's wallet or the signer
///    its metadata names.
#[must_use]
pub fn validate(
    on_chain: &AgentOnChain,
    bundle: &[u8],
    verifier: &Verifier,
    max_age_secs: u64,
    now: u64,
) -> Validation {
    let agent = on_chain.agent();
    let mut v = Validation {
        kind: "tee-signer/erc8004-validation-report/v1",
        request_hash: on_chain.request_hash,
        agent_registry: agent.agent_registry(),
        agent_id: on_chain.agent_id,
        signer: None,
        response: 0,
        tag: super::TAG,
        validated_at: now,
        checks: Vec::new(),
        attestation: None,
        validator_attestation: None,
    };
    let mut check = |name: &'static str, passed: bool, detail: String| {
        v.checks.push(ValidationCheck { check: name, passed, detail });
        passed
    };
    let hash = AttestationBundle::request_hash(bundle);
    check(
        "requestHash",
        hash == on_chain.request_hash,
        format!("the bundle hashes to {hash}, the request names {}", on_chain.request_hash),
    );
    let b = match AttestationBundle::from_bytes(bundle) {
        Ok(b) => b,
        Err(e) => {
            check("bundle", false, e.public_reason().to_owned());
            return v;
        }
    };
    check("bundle", true, format!("{} bytes", bundle.len()));
    check(
        "agent",
        b.agent_registry == agent.agent_registry() && b.agent_id == agent.agent_id,
        format!(
            "the bundle is for agent {} on {}; the request is for agent {} on {}",
            b.agent_id,
            b.agent_registry,
            agent.agent_id,
            agent.agent_registry()
        ),
    );
    let challenge = agent.challenge(b.issued_at);
    check(
        "challenge",
        b.challenge == challenge && b.attestation.bound == Bound::Challenge(challenge),
        format!(
            "this agent's challenge at {} is {challenge}; the bundle says {}, its attestation binds {:?}",
            b.issued_at, b.challenge, b.attestation.bound
        ),
    );
    let fresh = b.issued_at <= now.saturating_add(MAX_SKEW_SECS)
        && now.saturating_sub(b.issued_at) <= max_age_secs;
    check(
        "freshness",
        fresh,
        format!("issued at {}, checked at {now}, accepted up to {max_age_secs} s old", b.issued_at),
    );
    // The verifier binds the address to this agent's challenge, whatever
    // the bundle claims.
    let report = verifier.verify_attestation(&b.attestation, &Expected::Challenge(challenge), now);
    let failures: Vec<String> = report.failures().map(|(c, f)| format!("{c}: {f}")).collect();
    check(
        "attestation",
        report.verified(),
        if report.verified() {
            format!("{} in the pinned TEE app", b.attestation.address)
        } else {
            failures.join("; ")
        },
    );
    let signer = b.attestation.address;
    let named = on_chain.agent_wallet == Some(signer) || on_chain.tee_signer == Some(signer);
    check(
        "signer",
        named,
        format!(
            "attested {signer}; the agent's wallet is {}, its {:?} metadata {}",
            on_chain.agent_wallet.map_or("unset".into(), |a| a.to_string()),
            super::METADATA_KEY,
            on_chain.tee_signer.map_or("unset".into(), |a| a.to_string()),
        ),
    );
    v.signer = Some(signer);
    v.attestation = Some(report);
    if v.checks.iter().all(|c| c.passed) {
        v.response = 100;
    }
    v
}
