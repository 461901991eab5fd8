//! The end-to-end demo on the built-in simulated TEE, everything over real
//! transports: a simulated dstack guest agent on a unix socket (dstack's own
//! HTTP API), the signer opened on a fresh state directory with dstack
//! reached through `dstack-sdk`, served on a unix socket; the admin derives
//! the agent's key and sets its policy; the agent signs an ERC-8004 action
//! through the `phala-dstack` provider and gets a quote bound to the
//! action's digest; a validator verifies signature, binding, event log,
//! compose hash, app id, KMS key chain and DCAP, and sees DCAP fail, as it
//! must for a simulated TEE. Then a replay and a policy refusal.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tee_core::action::tx;
use tee_core::limits::MAX_SIGNED_TX_LEN;
use tee_core::primitives::Hex;
use tee_core::protocol::{
    Allow, BackendKind, DEVICE_SLOT, GetAuditLog, KindSet, Outcome, Policy, Sign, TokenRule,
};
use tee_core::sample;
use tee_core::{Action, ActionKind, Address, B256, Signature, SigningKey, U256, heapless};

use tee_client::Client;
pub use tee_client::policyfile::kind_by_name;
use tee_client::provider::PhalaDstackProvider;
use tee_host::backend::{SignerConfig, open_device};
use tee_host::server::{Limits, serve};
use tee_sim::SimServer;
use tee_sim::{SimDstack, deployment};
use tee_transport::{Endpoint, connect};
use tee_verify::policy::Deployment;
use tee_verify::{Check, Expected, Policy as VerifierPolicy, Verifier};

/// The demo admin key: anvil/hardhat account 0, public knowledge. Never fund it.
pub const DEMO_KEY: [u8; 32] = [
    0xac, 0x09, 0x74, 0xbe, 0xc3, 0x9a, 0x17, 0xe3, 0x6b, 0xa4, 0xa6, 0xb4, 0xd2, 0x38, 0xff, 0x94,
    0x4b, 0xac, 0xb4, 0x78, 0xcb, 0xed, 0x5e, 0xfc, 0xae, 0x78, 0x4d, 0x7b, 0xf4, 0xf2, 0xff, 0x80,
];

/// The dstack path of the agent's key.
pub const DEMO_KEY_PATH: &str = "erc8004/agent-42";

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// Setting up (temp dir, sockets, the simulated dstack).
    #[error("setup: {0}")]
    Setup(String),
    /// The signer did not open.
    #[error(transparent)]
    Open(#[from] tee_host::backend::OpenError),
    /// A provider call failed.
    #[error(transparent)]
    Provider(#[from] tee_client::provider::ProviderError),
    /// A core operation failed.
    #[error("{0}")]
    Core(#[from] tee_core::Error),
    /// Something the demo checks did not hold.
    #[error("check failed: {0}")]
    Check(String),
}

fn setup<E: std::fmt::Display>(e: E) -> DemoError {
    DemoError::Setup(e.to_string())
}

/// The agent's policy: every typed kind (and `kind`, named, if it is
/// blind), on the sample chain, to the ERC-8004 registries only (any
/// contract for a generic transaction), capped value, gas and fees,
/// wallet-binding deadlines within 300 s, 100 signatures a minute; token
/// actions in USDC only, at most 5 USDC each, to the sample's two parties.
#[must_use]
pub fn demo_policy(kind: ActionKind) -> Policy {
    let registries =
        [sample::IDENTITY_REGISTRY, sample::REPUTATION_REGISTRY, sample::VALIDATION_REGISTRY];
    Policy {
        kinds: KindSet::typed().with(kind),
        chains: Allow::Only(heapless::Vec::from_slice(&[sample::CHAIN_ID]).unwrap_or_default()),
        contracts: if kind == ActionKind::GenericTx {
            Allow::Any
        } else {
            Allow::Only(heapless::Vec::from_slice(&registries).unwrap_or_default())
        },
        agents: Allow::Any,
        max_value: U256::from_u128(100_000_000_000_000_000),
        max_gas_limit: 1_000_000,
        max_fee_per_gas: 100_000_000_000,
        max_deadline_ahead_secs: 300,
        rate_limit: Some(tee_core::protocol::RateLimit { max: 100, window_secs: 60 }),
        eip712_domains: Allow::Any,
        spend_cap: None,
        valid_until: 0,
        tokens: heapless::Vec::from_slice(&[TokenRule {
            token: sample::USDC,
            max_amount: U256::from_u64(5_000_000),
            cap: None,
        }])
        .unwrap_or_default(),
        recipients: Allow::Only(
            heapless::Vec::from_slice(&[sample::OWNER, sample::AGENT_WALLET]).unwrap_or_default(),
        ),
        unlimited_approvals: false,
        approvals: None,
    }
}

/// The sample action of `kind`, made valid now for `signer`: a wallet
/// binding names the signer and a deadline two minutes ahead.
#[must_use]
pub fn demo_action(kind: ActionKind, signer: Address, now: u64) -> Action<'static> {
    sample::made_valid(sample::action(kind), signer, now)
}

/// Runs the demo for `kind`; returns what it shows.
pub fn run(kind: ActionKind) -> Result<String, DemoError> {
    let mut out = String::new();
    let mut line = |label: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{label:<20} {value}");
    };
    let dir = tempfile::tempdir().map_err(setup)?;

    // 1. The simulated TEE: dstack's guest agent API on a unix socket.
    let sim = SimDstack::with_app_compose(
        &deployment::KMS_ROOT,
        deployment::APP_ID,
        deployment::APP_COMPOSE,
    )?;
    let kms_root = sim.kms_root();
    let dstack =
        SimServer::start(sim, &Endpoint::Unix(dir.path().join("dstack.sock"))).map_err(setup)?;

    // 2. The signer on a fresh state directory, served on a unix socket.
    let admin = SigningKey::from_bytes(&DEMO_KEY)?;
    let admin_address = admin.address();
    let device = open_device(&SignerConfig {
        state: dir.path().join("state"),
        dstack: Some(dstack.endpoint().to_owned()),
        kind: BackendKind::Simulated,
        admin: Some(admin_address),
        marks: None,
        accept_async_standbys: false,
    })?;
    let api = device.backend().dstack().map(|d| d.api());
    let endpoint = Endpoint::Unix(dir.path().join("signer.sock"));
    let server =
        serve(Arc::new(Mutex::new(*device)), std::slice::from_ref(&endpoint), Limits::default())
            .map_err(setup)?;
    line("simulated dstack", &dstack.endpoint());
    if let Some(api) = api {
        line("dstack API", &format!("{api} (keys by /{api}/GetKey, quotes by /{api}/Attest)"));
    }
    line("signer", &endpoint);

    // 3. The admin checks the signer's identity key (attested at slot 255
    // for its own challenge, the app-compose file it reviewed pinned), pins
    // it, and provisions the agent's key and its policy: each command
    // confirmed by the identity's signed statement.
    let admin_side = PhalaDstackProvider::new(endpoint.clone(), Verifier::default());
    let info = admin_side.info()?;
    line(
        "device",
        &format!("{:?} backend, {} slots, id {}", info.backend, info.slots, info.device_id),
    );
    line("admin", &format!("{admin_address} (demo key: anvil account 0, public)"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let challenge = tee_verify::random_challenge().map_err(setup)?;
    let id = admin_side.get_attestation_report(DEVICE_SLOT, challenge)?;
    let mut pinned = VerifierPolicy::pin(
        Deployment::Attestation(&id),
        None,
        Some(deployment::APP_COMPOSE.as_bytes()),
        true,
    )
    .map_err(|e| DemoError::Check(e.to_string()))?;
    pinned.trust_simulator_root = true;
    let checked = Verifier {
        policy: pinned,
        collateral: None,
        pccs: None,
        simulated_root: Some(tee_sim::root()),
    }
    .verify_attestation(&id, &Expected::Device(challenge), now);
    if !checked.verified() {
        return Err(DemoError::Check(format!("the identity's attestation: {checked}")));
    }
    line("signer identity", &format!("{} (attested at slot 255, pinned)", id.address));
    let admin_side = admin_side.with_admin(admin).with_identity(id.address);
    let key = admin_side.generate_key(0, DEMO_KEY_PATH, &demo_policy(kind))?;
    let address = Address(key.address.0);
    line("agent key", &format!("{address} (dstack path {DEMO_KEY_PATH:?}, slot 0)"));
    line("KMS root", &kms_root);

    // 4. The agent signs through the provider (no admin key on its side).
    let agent = PhalaDstackProvider::new(endpoint.clone(), Verifier::default());
    line("provider", &format!("{} (available: {})", agent.provider_name(), agent.is_available()));
    let action = demo_action(kind, address, now);
    let signed = agent.sign(&key, &action)?;
    line("action kind", &kind);
    line("action", &action);
    line("digest", &Hex(&signed.digest.0));
    line("signature", &Hex(&signed.signature.0));
    line("sequence", &signed.sequence);
    let mut raw = signed.signature.0;
    raw[64] -= 27;
    let signature = Signature::from_bytes(&raw)?;
    let recovered = signature.recover_address(&B256(signed.digest.0))?;
    line("recovered address", &recovered);
    if recovered != address {
        return Err(DemoError::Check("the signature does not recover to the key".into()));
    }
    if action.is_transaction() {
        let mut buf = [0u8; MAX_SIGNED_TX_LEN];
        line("signed tx", &Hex(tx::encode_signed(&action, &signature, &mut buf)?));
        line("tx hash", &tx::tx_hash(&action, &signature)?);
    }
    line(
        "quote",
        &format!(
            "{} bytes, report_data {}",
            signed.attestation.quote.len(),
            Hex(&signed.attestation.report_data.0)
        ),
    );

    // 5. A validator pins its policy to the deployment (`tee-signer policy`:
    // the key's attestation, the app-compose file it reviewed, the KMS
    // root; and, for this simulated TEE only, the simulator's DCAP root),
    // then checks the signature against it.
    let mut policy = VerifierPolicy::pin(
        Deployment::Attestation(&key.attestation),
        Some(kms_root),
        Some(deployment::APP_COMPOSE.as_bytes()),
        true,
    )
    .map_err(|e| DemoError::Check(e.to_string()))?;
    policy.trust_simulator_root = true;
    let toml = toml::to_string(&policy).map_err(setup)?;
    let _ = writeln!(
        out,
        "\nthe validator's policy (tee-signer policy --attestation key.json \
        --app-compose app-compose.json --kms-root {kms_root} --trust-simulator-root):\n{}",
        toml.trim_end()
    );
    let validator = Verifier {
        policy: policy.clone(),
        collateral: None,
        pccs: None,
        simulated_root: Some(tee_sim::root()),
    };
    let report = validator.verify_tee_signature(&signed, now);
    let _ = writeln!(out, "\nverification:\n{report}");
    if !report.verified() || !report.simulated_root {
        return Err(DemoError::Check(
            "a simulated quote must verify under the simulator's root".into(),
        ));
    }
    // The same signature under Intel's root (what a validator of real
    // deployments keeps): DCAP refuses it.
    policy.trust_simulator_root = false;
    let intel =
        Verifier { policy, collateral: None, pccs: None, simulated_root: Some(tee_sim::root()) }
            .verify_tee_signature(&signed, now);
    if intel.verified() || intel.passed(Check::Dcap) {
        return Err(DemoError::Check("a simulated quote must fail under Intel's root".into()));
    }
    let _ = writeln!(
        out,
        "  -> every check passes, DCAP included, because this validator chose to trust the \
         simulator's root; no hardware was involved. Under Intel's root (the default, as for a \
         real dstack CVM) the same signature is NOT VERIFIED."
    );

    // 6. What the signer refuses: a replay and a blind kind the policy does not name.
    let mut c = Client::new(connect(&endpoint, std::time::Duration::from_secs(10)).map_err(setup)?);
    let other = sample::action(if kind == ActionKind::Register {
        ActionKind::SetAgentUri
    } else {
        ActionKind::Register
    });
    let replay = c.call(&Sign { slot: 0, sequence: signed.sequence, action: other });
    let _ = writeln!(out, "\nreplay at sequence {}: {}", signed.sequence, refusal(replay));
    let blind = ActionKind::ALL
        .iter()
        .copied()
        .find(|k| k.is_blind() && *k != kind)
        .unwrap_or(ActionKind::PersonalMessage);
    let refused =
        c.call(&Sign { slot: 0, sequence: signed.sequence + 1, action: sample::action(blind) });
    let _ = writeln!(out, "{blind} (blind, not named): {}", refusal(refused));
    let log = c.call(&GetAuditLog { from: 0 }).map_err(setup)?;
    let _ = writeln!(out, "audit log: {} entries, head {}", log.next_index, log.head_hash);
    for e in &log.entries {
        let outcome = match e.outcome {
            Outcome::Ok => "ok".to_owned(),
            Outcome::Retry => "retry".to_owned(),
            Outcome::Refused(r) => format!("refused ({r:?})"),
            Outcome::Approved(by) => format!("approved (approvers {by:#05b})"),
        };
        let _ = writeln!(
            out,
            "  #{:<2} command {:#04x} slot {} seq {:<14} {outcome}",
            e.index, e.command, e.slot, e.sequence
        );
    }
    drop(c);
    server.stop();
    Ok(out)
}

fn refusal<T>(r: Result<T, tee_client::ClientError>) -> String {
    match r {
        Ok(_) => "SIGNED (it should not have been)".into(),
        Err(e) => format!("refused: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn demo_runs_end_to_end_for_every_kind() {
        for &kind in ActionKind::ALL {
            let report = run(kind).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(
                report.contains("VERIFIED (simulated root)")
                    && report.contains("no hardware was involved"),
                "{report}"
            );
            assert!(report.contains("replay at sequence 1: refused"), "{report}");
            assert!(report.contains("(blind, not named): refused"), "{report}");
            let is_transaction = sample::action(kind).is_transaction();
            assert_eq!(report.contains("signed tx"), is_transaction, "{kind}");
            assert_eq!(kind_by_name(kind.name()), Some(kind));
        }
        assert_eq!(kind_by_name("setagenturi"), Some(ActionKind::SetAgentUri));
        assert_eq!(kind_by_name("nope"), None);
    }
}
