//! TEE trust on the ERC-8004 registries (`docs/onchain.md`): the agent's
//! `agent-bundle` and `registration-file`, the validator's `validate`, and
//! anyone's `verdict`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use tee_core::{Address, B256, U256};

use super::verify::VerifierOpts;
use super::{At, Failure, json, now_secs};
use tee_client::onchain::bundle::{self, AgentRef, AttestationBundle, Registration, Service};
use tee_client::onchain::fetch::FetchRules;
use tee_client::onchain::rpc::Rpc;
use tee_client::onchain::{TAG, answer};
use tee_client::provider::PhalaDstackProvider;
use tee_verify::Verifier;

fn u256(s: &str) -> Result<U256, String> {
    U256::from_decimal(s).ok_or_else(|| format!("{s:?}: not a decimal number below 2^256"))
}

#[derive(Args)]
pub(super) struct AgentBundle {
    #[command(flatten)]
    at: At,
    /// The chain's id (or read from --rpc).
    #[arg(long, required_unless_present = "rpc")]
    chain_id: Option<u64>,
    /// A JSON-RPC endpoint of the chain, to read its id.
    #[arg(long)]
    rpc: Option<String>,
    /// The identity registry's address.
    #[arg(long)]
    identity_registry: Address,
    /// The agent's id (decimal).
    #[arg(long, value_parser = u256)]
    agent_id: U256,
    /// Write the bundle here (its bytes are what requestHash commits to).
    #[arg(long, short)]
    out: PathBuf,
}

/// The slot's attestation bound to the agent's challenge, as a bundle.
pub(super) fn agent_bundle(c: AgentBundle) -> Result<ExitCode, Failure> {
    let chain_id = match (c.chain_id, &c.rpc) {
        (Some(id), _) => id,
        (None, Some(url)) => Rpc::new(url).chain_id()?,
        (None, None) => return Err(super::exit::Invalid("give --chain-id or --rpc".into()).into()),
    };
    let agent = AgentRef { chain_id, identity_registry: c.identity_registry, agent_id: c.agent_id };
    let issued_at = now_secs()?;
    let p = PhalaDstackProvider::new(c.at.conn.connect.clone(), Verifier::default());
    let attestation = p.get_attestation_report(c.at.slot, agent.challenge(issued_at))?;
    let b = AttestationBundle::new(&agent, issued_at, attestation)?;
    let bytes = b.to_bytes();
    std::fs::write(&c.out, &bytes).map_err(|e| format!("{}: {e}", c.out.display()))?;
    json(&json!({
        "bundle": c.out.display().to_string(),
        "requestHash": AttestationBundle::request_hash(&bytes).to_string(),
        "signer": b.attestation.address.to_string(),
        "agentRegistry": b.agent_registry,
        "agentId": b.agent_id,
        "challenge": b.challenge.to_string(),
        "dataUri": bundle::data_uri(&bytes),
    }))
}

#[derive(Args)]
pub(super) struct RegistrationFile {
    /// The attestation bundle (from `agent-bundle`).
    #[arg(long)]
    bundle: PathBuf,
    /// Where the bundle is published (default: a data: URI holding it).
    #[arg(long)]
    bundle_uri: Option<String>,
    /// The agent's name.
    #[arg(long)]
    name: String,
    /// What it does.
    #[arg(long, default_value = "")]
    description: String,
    /// An image URI.
    #[arg(long)]
    image: Option<String>,
    /// A service, NAME=ENDPOINT (repeatable): web, A2A, MCP, ...
    #[arg(long = "service", value_parser = service)]
    services: Vec<Service>,
    /// Print the file as a data: URI (to pass to register or setAgentURI).
    #[arg(long)]
    data_uri: bool,
}

fn service(s: &str) -> Result<Service, String> {
    let (name, endpoint) = s.split_once('=').ok_or("give NAME=ENDPOINT")?;
    Ok(Service { name: name.to_owned(), endpoint: endpoint.to_owned(), version: None })
}

pub(super) fn registration_file(c: RegistrationFile) -> Result<ExitCode, Failure> {
    let bytes = std::fs::read(&c.bundle).map_err(|e| format!("{}: {e}", c.bundle.display()))?;
    let b = AttestationBundle::from_bytes(&bytes)?;
    let agent = b.agent()?;
    let uri = c.bundle_uri.unwrap_or_else(|| bundle::data_uri(&bytes));
    let registration = Registration {
        name: c.name,
        description: c.description,
        image: c.image,
        services: c.services,
    };
    let file = registration.file(
        &agent,
        &b.attestation.address,
        &uri,
        &AttestationBundle::request_hash(&bytes),
    );
    if c.data_uri {
        println!("{}", bundle::data_uri(file.to_string().as_bytes()));
        return Ok(ExitCode::SUCCESS);
    }
    json(&file)
}

/// What a document someone else chose the URI of may be read from.
#[derive(Args)]
struct FetchOpts {
    /// An IPFS gateway for ipfs:// URIs (e.g. https://ipfs.io).
    #[arg(long)]
    ipfs_gateway: Option<String>,
    /// Read over plain http:// too (https:// only by default).
    #[arg(long)]
    allow_http: bool,
    /// Read from hosts on loopback, private or link-local addresses: a test
    /// network only (an agent's owner or a client chose the URI).
    #[arg(long)]
    allow_private_hosts: bool,
}

impl FetchOpts {
    fn rules(&self) -> FetchRules<'_> {
        FetchRules {
            ipfs_gateway: self.ipfs_gateway.as_deref(),
            allow_http: self.allow_http,
            allow_private: self.allow_private_hosts,
        }
    }
}

#[derive(Args)]
pub(super) struct Validate {
    /// The chain's JSON-RPC endpoint.
    #[arg(long)]
    rpc: String,
    /// The Validation Registry's address.
    #[arg(long)]
    validation_registry: Address,
    /// The request's hash (from its ValidationRequest event).
    #[arg(long)]
    request_hash: B256,
    /// The bundle: a file, or a data:, http(s):// or ipfs:// URI (default:
    /// the requestURI of the request's ValidationRequest event).
    #[arg(long)]
    bundle: Option<String>,
    #[command(flatten)]
    fetch: FetchOpts,
    /// A chain on which a verifier trusting the simulator's root may answer
    /// (repeatable; default: the local test chains 1337, 31337 and
    /// eth-tester's).
    #[arg(long = "test-chain")]
    test_chains: Vec<u64>,
    /// Search the ValidationRequest event from this block (public
    /// endpoints limit eth_getLogs' range).
    #[arg(long, default_value_t = 0)]
    from_block: u64,
    #[command(flatten)]
    verifier: VerifierOpts,
    /// The oldest bundle accepted, in seconds.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    max_age: u64,
    /// The validator's signer and slot: sign the validationResponse and
    /// send it (without: print the verdict only).
    #[arg(long, short)]
    connect: Option<tee_transport::Endpoint>,
    /// The validator's slot.
    #[arg(long, default_value_t = 0)]
    slot: u8,
    /// Attach the validator slot's own attestation (bound to the request
    /// and the response) to the report: for a validator in a TEE.
    #[arg(long, requires = "connect")]
    attest_validator: bool,
    /// Where the report is published (default: a data: URI holding it).
    #[arg(long)]
    report_uri: Option<String>,
    /// Also write the report here.
    #[arg(long)]
    report_out: Option<PathBuf>,
    /// Unix time to verify at (default: now).
    #[arg(long)]
    now: Option<u64>,
}

pub(super) fn validate(c: Validate) -> Result<ExitCode, Failure> {
    let verifier = c.verifier.verifier(false)?;
    let rpc = Rpc::new(&c.rpc);
    let request = answer::Request {
        rpc: &rpc,
        validation_registry: c.validation_registry,
        request_hash: c.request_hash,
        bundle: c.bundle,
        from_block: c.from_block,
        fetch: c.fetch.rules(),
        test_chains: if c.test_chains.is_empty() { &answer::TEST_CHAINS } else { &c.test_chains },
        max_age: c.max_age,
        now: match c.now {
            Some(t) => t,
            None => now_secs()?,
        },
        report_uri: c.report_uri,
        verifier: &verifier,
    };
    let provider = c.connect.map(|e| PhalaDstackProvider::new(e, Verifier::default()));
    let responder = provider.as_ref().map(|provider| answer::Responder {
        provider,
        slot: c.slot,
        attest: c.attest_validator,
    });
    let answered = answer::answer(&request, responder)?;
    super::verify::warn_expiry(&verifier, request.now);
    if let Some(p) = &c.report_out {
        std::fs::write(p, &answered.report).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    json(&answered.to_json(&c.request_hash))
}

#[derive(Args)]
pub(super) struct Verdict {
    /// The chain's JSON-RPC endpoint.
    #[arg(long)]
    rpc: String,
    /// The Validation Registry's address.
    #[arg(long)]
    validation_registry: Address,
    /// The agent's id (decimal).
    #[arg(long, value_parser = u256)]
    agent_id: U256,
    /// The validators you trust (repeatable; none: every validator, which
    /// anyone can become).
    #[arg(long = "validator")]
    validators: Vec<Address>,
    /// The tag.
    #[arg(long, default_value = TAG)]
    tag: String,
}

/// `getSummary` under the tag, and every request of the agent.
pub(super) fn verdict(c: Verdict) -> Result<ExitCode, Failure> {
    let rpc = Rpc::new(&c.rpc);
    let (count, average) =
        rpc.summary(&c.validation_registry, &c.agent_id, &c.validators, &c.tag)?;
    let validations = rpc.validations(&c.validation_registry, &c.agent_id)?;
    json(&json!({
        "agentId": c.agent_id,
        "tag": c.tag,
        "validators": c.validators.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "count": count,
        "averageResponse": average,
        "validations": validations,
    }))
}

#[derive(Args)]
pub(super) struct Reputation {
    /// The chain's JSON-RPC endpoint.
    #[arg(long)]
    rpc: String,
    /// The Reputation Registry's address.
    #[arg(long)]
    reputation_registry: Address,
    /// The Validation Registry whose verdicts vouch for the agent's TEE.
    #[arg(long)]
    validation_registry: Address,
    /// The agent's id (decimal).
    #[arg(long, value_parser = u256)]
    agent_id: U256,
    /// A validator whose TEE verdicts you trust (repeatable; at least one:
    /// anyone can become a validator).
    #[arg(long = "validator", required = true)]
    validators: Vec<Address>,
    #[command(flatten)]
    verifier: VerifierOpts,
    #[command(flatten)]
    fetch: FetchOpts,
    /// Search NewFeedback events from this block.
    #[arg(long, default_value_t = 0)]
    from_block: u64,
    /// Unix time to verify at (default: now).
    #[arg(long)]
    now: Option<u64>,
}

/// All feedback and TEE-verified feedback (`tee_client::onchain::reputation`).
pub(super) fn reputation(c: Reputation) -> Result<ExitCode, Failure> {
    let verifier = c.verifier.verifier(false)?;
    let rpc = Rpc::new(&c.rpc);
    let query = tee_client::onchain::reputation::Query {
        rpc: &rpc,
        reputation_registry: c.reputation_registry,
        validation_registry: c.validation_registry,
        agent_id: c.agent_id,
        validators: &c.validators,
        verifier: &verifier,
        fetch: c.fetch.rules(),
        from_block: c.from_block,
        now: match c.now {
            Some(t) => t,
            None => now_secs()?,
        },
    };
    json(&tee_client::onchain::reputation::reputation(&query)?)
}
