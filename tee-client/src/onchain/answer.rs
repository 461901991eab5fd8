//! The validator's use case, whole: read a validation request from the
//! Validation Registry, check that the validator's slot is the validator it
//! names (before anything is verified, attested or signed), fetch the
//! bundle, run [`validate`](super::validate), optionally attest the
//! validator's own slot into the report, and answer `validationResponse`
//! through the signer. `tee-signer validate` only parses and prints around
//! it.

use std::time::Duration;

use alloy_sol_types::SolCall;
use serde_json::{Value, json};
use tee_core::{Address, B256, U256};

use super::bundle::data_uri;
use super::fetch::{FetchRules, MAX_FETCH, fetch};
use super::rpc::{Rpc, RpcError};
use super::validator::{Validation, validate};
use super::{AgentOnChain, TAG};
use crate::actions::calldata::IValidationRegistry::validationResponseCall;
use crate::actions::{Fees, JsonActionError, TxRequest};
use crate::provider::{PhalaDstackProvider, ProviderError};

/// Local test chains: a dev geth or ganache (1337), anvil and hardhat
/// (31337), eth-tester (131277322940537). A verdict under the simulator's
/// root is sent only there: on any other chain it would vouch for quotes
/// anyone can make.
pub const TEST_CHAINS: [u64; 3] = [1337, 31337, 131_277_322_940_537];

/// How long a sent response may take to be mined.
const MINED_WITHIN: Duration = Duration::from_secs(120);

/// What to answer, and how.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The chain's JSON-RPC endpoint.
    pub rpc: &'a Rpc,
    /// The Validation Registry.
    pub validation_registry: Address,
    /// The request's hash.
    pub request_hash: B256,
    /// Where the bundle is, if the operator says (a URI or a local path);
    /// otherwise the request's URI from its `ValidationRequest` event,
    /// which is never read as a local path.
    pub bundle: Option<String>,
    /// The first block searched for that event.
    pub from_block: u64,
    /// What a fetch may reach ([`fetch`](super::fetch)).
    pub fetch: FetchRules<'a>,
    /// The chains on which a verifier trusting the simulator's root may
    /// answer (local test chains): [`TEST_CHAINS`] unless the operator
    /// names others.
    pub test_chains: &'a [u64],
    /// The oldest bundle accepted, in seconds.
    pub max_age: u64,
    /// Unix time to verify at.
    pub now: u64,
    /// Where the report is published (default: a `data:` URI holding it).
    pub report_uri: Option<String>,
    /// The validator's pinned verifier.
    pub verifier: &'a tee_verify::Verifier,
}

/// The validator's signer: its slot answers, optionally attesting itself.
#[derive(Debug, Clone, Copy)]
pub struct Responder<'a> {
    /// The validator's signer.
    pub provider: &'a PhalaDstackProvider,
    /// The validator's slot.
    pub slot: u8,
    /// Attach the slot's own attestation (bound to the request and the
    /// response) to the report.
    pub attest: bool,
}

/// What the validator found, and sent if it had a signer.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The validator the request names.
    pub validator: Address,
    /// The agent.
    pub agent_id: U256,
    /// The checks and the verdict.
    pub validation: Validation,
    /// The report, as published (its keccak256, bound to the attested
    /// signer, is the response hash: [`Validation::response_hash`]).
    pub report: Vec<u8>,
    /// Where it is published.
    pub response_uri: String,
    /// The response hash.
    pub response_hash: B256,
    /// The sent response's receipt (`None`: nothing was sent).
    pub receipt: Option<Value>,
}

/// Why the validator could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The chain.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The signer.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The validator's slot is not the validator the request names.
    #[error("the request names validator {named}; slot {slot} is {slot_address}")]
    NotTheValidator {
        /// The validator the request names.
        named: Address,
        /// The slot.
        slot: u8,
        /// The slot's address.
        slot_address: Address,
    },
    /// A local bundle file could not be read.
    #[error("{path}: {source}")]
    Bundle {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The response transaction is not one the signer takes.
    #[error("the validationResponse transaction: {0}")]
    Transaction(#[from] JsonActionError),
    /// The signer signed no raw transaction.
    #[error("the signer returned no raw transaction")]
    NoRawTransaction,
    /// The validator's own policy pins nothing a dstack signer is: every
    /// verdict would be 0 because of the validator, not the agent.
    #[error("your verifier policy is not pinned ({0}): nothing sent")]
    NotPinned(String),
    /// The validator trusts the simulator's root on a chain that is not a
    /// test chain.
    #[error(
        "your verifier trusts the simulator's root, and chain {0} is not a test chain \
         (--test-chain to name one): nothing sent"
    )]
    SimulatorRoot(u64),
    /// A local bundle file over the size cap.
    #[error("{path} is longer than {MAX_FETCH} bytes")]
    TooLarge {
        /// The path.
        path: String,
    },
}

/// Answers the request (see the module docs). Without a responder it
/// verifies and reports, and sends nothing.
pub fn answer(r: &Request<'_>, responder: Option<Responder<'_>>) -> Result<Answered, AnswerError> {
    let (validator, on_chain) =
        r.rpc.validation_request(&r.validation_registry, &r.request_hash)?;
    if responder.is_some() {
        // A derived key of a dstack app is what a verdict is about.
        r.verifier.policy.pinning(true, true).map_err(AnswerError::NotPinned)?;
        if r.verifier.policy.trust_simulator_root && !r.test_chains.contains(&on_chain.chain_id) {
            return Err(AnswerError::SimulatorRoot(on_chain.chain_id));
        }
    }
    if let Some(me) = &responder {
        let slot_address = me.provider.address(me.slot)?;
        if slot_address != validator {
            let slot = me.slot;
            return Err(AnswerError::NotTheValidator { named: validator, slot, slot_address });
        }
    }
    let bytes = match &r.bundle {
        // The operator's: a URI, or a file of theirs.
        Some(b) if b.contains("://") || b.starts_with("data:") => fetch(b, &r.fetch)?,
        Some(path) => read_capped(path)?,
        // The agent owner's: a URI only, under the operator's rules.
        None => {
            let uri = r.rpc.request_uri(&r.validation_registry, &r.request_hash, r.from_block)?;
            fetch(&uri, &r.fetch)?
        }
    };
    let mut v = validate(&on_chain, &bytes, r.verifier, r.max_age, r.now);
    if let Some(me) = &responder
        && me.attest
    {
        let attestation = me.provider.get_attestation_report(me.slot, v.validator_challenge())?;
        v.validator_attestation = Some(attestation);
    }
    let report = v.report_bytes();
    let response_uri = r.report_uri.clone().unwrap_or_else(|| data_uri(&report));
    let response_hash = v.response_hash();
    let receipt = match responder {
        None => None,
        Some(me) => {
            let call = validationResponseCall {
                requestHash: alloy_primitives::B256::from(r.request_hash.0),
                response: v.response,
                responseURI: response_uri.clone(),
                responseHash: alloy_primitives::B256::from(response_hash.0),
                tag: TAG.into(),
            };
            Some(send(r, &on_chain, me, validator, &call.abi_encode())?)
        }
    };
    Ok(Answered {
        validator,
        agent_id: on_chain.agent_id,
        validation: v,
        report,
        response_uri,
        response_hash,
        receipt,
    })
}

/// The operator's local bundle file, at most [`MAX_FETCH`] bytes.
fn read_capped(path: &str) -> Result<Vec<u8>, AnswerError> {
    use std::io::Read;
    let io = |source| AnswerError::Bundle { path: path.to_owned(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FETCH as u64 + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() > MAX_FETCH {
        return Err(AnswerError::TooLarge { path: path.to_owned() });
    }
    Ok(bytes)
}

/// Signs the response's transaction (the typed registry call, fees and
/// nonce from the chain) with the validator's slot and sends it.
fn send(
    r: &Request<'_>,
    on_chain: &AgentOnChain,
    me: Responder<'_>,
    from: Address,
    data: &[u8],
) -> Result<Value, AnswerError> {
    let fees = r.rpc.fees()?;
    let gas = r.rpc.estimate_gas(&from, &r.validation_registry, data)?;
    let tx = TxRequest {
        fees: Fees::Eip1559 {
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        },
        chain_id: on_chain.chain_id,
        nonce: r.rpc.nonce(&from)?,
        gas_limit: gas + gas / 5,
        to: r.validation_registry,
        value: U256::ZERO,
        data: data.to_vec(),
    };
    // The registry the request was read from is a registry wherever it is
    // deployed: its call is typed, so the slot's policy reads it.
    let action = tx.into_action(&[r.validation_registry])?;
    let signed = me.provider.sign_slot_at(me.slot, &action.view(), None)?;
    let raw = signed.raw_transaction.ok_or(AnswerError::NoRawTransaction)?;
    Ok(r.rpc.send_raw(&raw, MINED_WITHIN)?)
}

impl Answered {
    /// What `tee-signer validate --json` prints: camelCase, as the
    /// registry's event names its fields.
    #[must_use]
    pub fn to_json(&self, request_hash: &B256) -> Value {
        let mut out = json!({
            "requestHash": request_hash.to_string(),
            "agentId": self.agent_id,
            "validator": self.validator.to_string(),
            "response": self.validation.response,
            "tag": TAG,
            "responseURI": self.response_uri,
            "responseHash": self.response_hash.to_string(),
            "reportHash": self.validation.report_hash().to_string(),
            "signer": self.validation.signer.map(|s| s.to_string()),
            "reasons": self.validation.reasons(),
        });
        if let (Some(o), Some(receipt)) = (out.as_object_mut(), &self.receipt) {
            for k in ["transactionHash", "blockNumber"] {
                o.insert(k.into(), receipt.get(k).cloned().unwrap_or_default());
            }
        }
        out
    }
}
