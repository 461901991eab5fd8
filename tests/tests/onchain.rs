//! The validator's checks (`tee_client::onchain::validate`) as an attacker
//! would probe them, without a chain (python/tests/test_tee_trust.py runs
//! the flow on the real registries): a bundle that passes, then one thing
//! changed at a time, each answered 0 with that check failed and the
//! others as before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tee_client::onchain::bundle::{
    AgentRef, AttestationBundle, BundleError, data_uri, read_data_uri,
};
use tee_client::onchain::{AgentOnChain, Registration, Service, validate};
use tee_client::provider::PhalaDstackProvider;
use tee_core::{Address, B256, SigningKey, U256};
use tee_testkit::ADMIN_SECRET;
use tee_tests::signer::{APP_ID, COMPOSE, setup};
use tee_verify::{Policy, Verifier};

const NOW: u64 = 1_800_000_000;
const DAY: u64 = 24 * 3600;

/// What is changed, the request as the chain holds it, the bytes published,
/// the time, and the checks that must fail.
type Case = (&'static str, AgentOnChain, Vec<u8>, u64, Vec<&'static str>);

fn failed(v: &tee_client::onchain::Validation) -> Vec<&'static str> {
    v.checks.iter().filter(|c| !c.passed).map(|c| c.check).collect()
}

#[test]
fn the_validator_passes_one_bundle_and_fails_each_change_for_its_reason() {
    let s = setup();
    let endpoint = s.server.endpoints()[0].clone();
    let admin = SigningKey::from_bytes(&ADMIN_SECRET).unwrap();
    let agent_side = PhalaDstackProvider::new(endpoint, Verifier::default()).with_admin(admin);
    let key = agent_side.generate_key(0, "erc8004/agent", &tee_testkit::typed_policy()).unwrap();
    let agent = AgentRef {
        chain_id: 8453,
        identity_registry: Address([0x80; 20]),
        agent_id: U256::from_u64(42),
    };
    let attestation = agent_side.get_attestation_report(0, agent.challenge(NOW)).unwrap();
    let bundle = AttestationBundle::new(&agent, NOW, attestation.clone()).unwrap();
    let bytes = bundle.to_bytes();
    // An attestation bound to anything else is not made into a bundle.
    let stray = agent_side.get_attestation_report(0, B256([1; 32])).unwrap();
    assert!(matches!(
        AttestationBundle::new(&agent, NOW, stray),
        Err(BundleError::WrongBinding { .. })
    ));

    let verifier = Verifier {
        policy: Policy {
            compose_hash: Some(vec![B256(COMPOSE)]),
            app_id: Some(vec![tee_core::primitives::FixedBytes(APP_ID)]),
            kms_root: Some(s.kms_root),
            trust_simulator_root: true,
            ..Policy::default()
        },
        collateral: None,
        pccs: None,
        simulated_root: Some(tee_sim::root()),
    };
    let on_chain = AgentOnChain {
        chain_id: agent.chain_id,
        identity_registry: agent.identity_registry,
        request_hash: AttestationBundle::request_hash(&bytes),
        agent_id: agent.agent_id,
        agent_wallet: Some(key.address),
        tee_signer: None,
    };
    let ok = validate(&on_chain, &bytes, &verifier, 30 * DAY, NOW + 60);
    assert_eq!((ok.response, failed(&ok)), (100, vec![]), "{:?}", ok.reasons());
    assert_eq!(ok.signer, Some(key.address));
    // The response hash is the report's hash bound to the attested signer
    // (what contracts/RequireTEE.sol recomputes from the agent's wallet).
    let report_hash = tee_core::primitives::keccak256(&ok.report_bytes());
    assert_eq!(ok.report_hash(), report_hash);
    let bound = [&key.address.0[..], &report_hash.0[..]].concat();
    assert_eq!(ok.response_hash(), tee_core::primitives::keccak256(&bound));
    // Named in the metadata instead of as the wallet: also a pass.
    let by_metadata =
        AgentOnChain { agent_wallet: None, tee_signer: Some(key.address), ..on_chain.clone() };
    assert_eq!(validate(&by_metadata, &bytes, &verifier, 30 * DAY, NOW).response, 100);

    let cases: Vec<Case> = vec![
        // The bytes published are not the ones the request commits to.
        ("a byte added", on_chain.clone(), [&bytes[..], b" "].concat(), NOW, vec!["requestHash"]),
        // The request is for another agent (the bundle's hash submitted
        // again for it): the bundle names agent 42, its challenge binds 42.
        (
            "another agent",
            AgentOnChain { agent_id: U256::from_u64(43), ..on_chain.clone() },
            bytes.clone(),
            NOW,
            vec!["agent", "challenge", "attestation"],
        ),
        (
            "another chain",
            AgentOnChain { chain_id: 1, ..on_chain.clone() },
            bytes.clone(),
            NOW,
            vec!["agent", "challenge", "attestation"],
        ),
        // A signer the agent never named.
        (
            "signer not named",
            AgentOnChain {
                agent_wallet: Some(Address([9; 20])),
                tee_signer: Some(Address([8; 20])),
                ..on_chain.clone()
            },
            bytes.clone(),
            NOW,
            vec!["signer"],
        ),
        // Made long ago, or dated in the future.
        ("stale", on_chain.clone(), bytes.clone(), NOW + 31 * DAY, vec!["freshness"]),
        ("future", on_chain.clone(), bytes.clone(), NOW - 3600, vec!["freshness"]),
    ];
    for (what, chain, published, now, want) in cases {
        let v = validate(&chain, &published, &verifier, 30 * DAY, now);
        assert_eq!(v.response, 0, "{what}");
        assert_eq!(failed(&v), want, "{what}: {:?}", v.reasons());
    }

    // A bundle re-labelled for agent 43 with agent 43's challenge: the
    // attestation still binds agent 42's.
    let other = AgentRef { agent_id: U256::from_u64(43), ..agent };
    let mut relabelled = bundle.clone();
    relabelled.agent_id = other.agent_id;
    relabelled.challenge = other.challenge(NOW);
    let relabelled = relabelled.to_bytes();
    let chain = AgentOnChain {
        agent_id: other.agent_id,
        request_hash: AttestationBundle::request_hash(&relabelled),
        ..on_chain.clone()
    };
    let v = validate(&chain, &relabelled, &verifier, 30 * DAY, NOW);
    assert_eq!((v.response, failed(&v)), (0, vec!["challenge", "attestation"]));
    assert!(v.reasons()[1].contains("binding"), "{:?}", v.reasons());

    // Another app (the policy pins another compose hash).
    let mut elsewhere = verifier.clone();
    elsewhere.policy.compose_hash = Some(vec![B256([0x44; 32])]);
    let v = validate(&on_chain, &bytes, &elsewhere, 30 * DAY, NOW);
    assert_eq!((v.response, failed(&v)), (0, vec!["attestation"]));
    assert!(v.reasons()[0].contains("compose hash"), "{:?}", v.reasons());

    // Not a bundle at all, and trailing garbage: typed, never a panic.
    for junk in [&b"{}"[..], b"\xff\xfe", b"[1,2,3]"] {
        let chain = AgentOnChain {
            request_hash: AttestationBundle::request_hash(junk),
            ..on_chain.clone()
        };
        let v = validate(&chain, junk, &verifier, 30 * DAY, NOW);
        assert_eq!((v.response, failed(&v)), (0, vec!["bundle"]));
    }

    // The registration file names the signer and the bundle.
    let file = Registration {
        name: "agent".into(),
        services: vec![Service {
            name: "MCP".into(),
            endpoint: "https://m.example".into(),
            version: None,
        }],
        ..Registration::default()
    }
    .file(&agent, &key.address, &data_uri(&bytes), &on_chain.request_hash);
    assert_eq!(file["registrations"][0]["agentId"], 42);
    assert_eq!(file["supportedTrust"][0], "tee-attestation");
    assert_eq!(file["tee"]["signer"], key.address.to_string());
    let uri = file["tee"]["attestation"]["uri"].as_str().unwrap();
    assert_eq!(read_data_uri(uri).unwrap(), bytes);
    assert_eq!(bundle.agent().unwrap(), agent);
}
