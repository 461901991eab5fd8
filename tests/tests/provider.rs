//! The `phala-dstack` TEE provider an agent SDK calls, against a signer
//! serving over a unix socket with dstack simulated behind its HTTP API:
//! generate_key, sign with a per-action attestation, verify_attestation
//! (every check, and which ones fail when anything is swapped or edited),
//! get_attestation_report, JSON for other languages, and alloy agreeing on
//! the signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tee_client::provider::{PhalaDstackProvider, ProviderError};
use tee_core::action::BoundField;
use tee_core::primitives::FixedBytes;
use tee_core::protocol::{DeviceError, PolicyViolation};
use tee_core::{ActionKind, B256, SigningKey};
use tee_sim::SAMPLE_COLLATERAL_TIME;
use tee_testkit::ADMIN_SECRET;
use tee_testkit::sample;
use tee_tests::signer::{setup, verifier};
use tee_transport::Endpoint;
use tee_verify::{Bound, Check, Status, TeeSignature, Verifier};

fn passed(r: &tee_verify::Report, c: Check) -> bool {
    matches!(r.status(c), Some(Status::Passed(_)))
}

#[test]
fn an_agent_sdk_generates_signs_and_a_validator_verifies() {
    let s = setup();
    let endpoint = s.server.endpoints()[0].clone();
    let agent = PhalaDstackProvider::new(endpoint.clone(), verifier(s.kms_root));
    assert_eq!(agent.provider_name(), "phala-dstack");
    assert!(agent.is_available());
    let nobody = PhalaDstackProvider::new(
        Endpoint::Unix("/nonexistent/signer.sock".into()),
        Verifier::default(),
    );
    assert!(!nobody.is_available());

    // Only the admin provisions keys.
    let r = agent.generate_key(0, "erc8004/agent-42", &tee_testkit::typed_policy());
    assert!(matches!(r, Err(ProviderError::NotAdmin)), "{r:?}");
    let admin = PhalaDstackProvider::new(endpoint, verifier(s.kms_root))
        .with_admin(SigningKey::from_bytes(&ADMIN_SECRET).unwrap());
    let key = admin.generate_key(0, "erc8004/agent-42", &tee_testkit::typed_policy()).unwrap();
    assert_eq!(key.path.as_deref(), Some("erc8004/agent-42"));
    assert!(key.attestation.key_chain.is_some());

    // The key's attestation: everything but the hardware's signature.
    let v = verifier(s.kms_root);
    let Bound::Challenge(c) = key.attestation.bound else { panic!("bound to a challenge") };
    let report = v.verify(
        &key.attestation.evidence(),
        &tee_core::Address(key.address.0),
        &tee_verify::Expected::Challenge(B256(c.0)),
        SAMPLE_COLLATERAL_TIME,
    );
    for check in [
        Check::Quote,
        Check::Binding,
        Check::EventLog,
        Check::ComposeHash,
        Check::AppId,
        Check::Collateral,
        Check::KeyChain,
    ] {
        assert!(passed(&report, check), "{check}: {report}");
    }
    assert!(matches!(report.status(Check::Dcap), Some(Status::Failed(_))), "{report}");
    assert!(!report.verified() && report.verified_but_dcap(), "{report}");

    // The agent signs; the signature carries a quote bound to its digest.
    let action = sample::action(ActionKind::SetAgentUri);
    let signed = agent.sign(&key, &action).unwrap();
    assert_eq!(signed.sequence, 1);
    assert_eq!(signed.digest.0, action.digest().0);
    assert_eq!(signed.attestation.bound, Bound::ActionDigest(signed.digest));
    let sig = alloy_primitives::Signature::from_raw_array(&signed.signature.0).unwrap();
    let by =
        sig.recover_address_from_prehash(&alloy_primitives::B256::from(signed.digest.0)).unwrap();
    assert_eq!(by.0.0, key.address.0, "alloy recovers the key's address");
    let report = agent.verify_attestation(&signed, Some(SAMPLE_COLLATERAL_TIME));
    assert!(passed(&report, Check::Signature) && passed(&report, Check::Binding), "{report}");

    // A transaction comes signed, ready for eth_sendRawTransaction: alloy
    // decodes it to the action's fields and recovers the key's address.
    {
        use alloy_consensus::transaction::SignerRecoverable;
        use alloy_eips::eip2718::Decodable2718;
        let raw = signed.raw_transaction.clone().expect("a transaction is signed raw");
        let env = alloy_consensus::TxEnvelope::decode_2718(&mut &raw[..]).unwrap();
        assert_eq!(env.recover_signer().unwrap().0.0, key.address.0);
        assert_eq!(env.tx_hash().0, signed.transaction_hash.unwrap().0);
        let json = serde_json::to_value(&signed).unwrap();
        assert!(json["rawTransaction"].as_str().unwrap().starts_with("0x02"));
        // Another transaction in its place, or a wrong hash: the JSON fails.
        let mut other = signed.clone();
        let mut edited = raw.clone();
        let last = edited.len() - 40;
        edited[last] ^= 1;
        other.raw_transaction = Some(edited);
        let r = v.verify_tee_signature(&other, SAMPLE_COLLATERAL_TIME);
        assert!(!passed(&r, Check::Fields), "{r}");
        let mut other = signed.clone();
        other.transaction_hash = Some(B256([1; 32]));
        let r = v.verify_tee_signature(&other, SAMPLE_COLLATERAL_TIME);
        assert!(!passed(&r, Check::Fields), "{r}");
    }
    assert!(report.verified_but_dcap() && !report.verified(), "{report}");

    // The same call as a legacy (EIP-155) transaction: signed raw as well,
    // its fields checked by the verifier, and the EIP-1559 bytes of the
    // same call in its place refused.
    let legacy_signed = {
        use alloy_consensus::transaction::SignerRecoverable;
        use alloy_eips::eip2718::Decodable2718;
        let legacy = sample::legacy(&action).unwrap();
        let signed_legacy = agent.sign(&key, &legacy).unwrap();
        let raw = signed_legacy.raw_transaction.clone().unwrap();
        let env = alloy_consensus::TxEnvelope::decode_2718(&mut &raw[..]).unwrap();
        assert!(env.is_legacy());
        assert_eq!(env.recover_signer().unwrap().0.0, key.address.0);
        assert_eq!(env.tx_hash().0, signed_legacy.transaction_hash.unwrap().0);
        let r = v.verify_tee_signature(&signed_legacy, SAMPLE_COLLATERAL_TIME);
        assert!(passed(&r, Check::Fields) && r.verified_but_dcap(), "{r}");
        let mut other = signed_legacy.clone();
        other.raw_transaction = signed.raw_transaction.clone();
        let r = v.verify_tee_signature(&other, SAMPLE_COLLATERAL_TIME);
        assert!(!passed(&r, Check::Fields), "{r}");
        signed_legacy
    };

    // Next signature, next sequence.
    let second = agent.sign(&key, &sample::action(ActionKind::GiveFeedback)).unwrap();
    assert_eq!((legacy_signed.sequence, second.sequence), (2, 3));

    // JSON for other languages, and back.
    let json = serde_json::to_string(&signed).unwrap();
    let back: TeeSignature = serde_json::from_str(&json).unwrap();
    assert_eq!(back, signed);
    assert!(v.verify_tee_signature(&back, SAMPLE_COLLATERAL_TIME).verified_but_dcap());

    // Edits: another digest, another signature's attestation, a
    // signature by someone else.
    let mut edited = signed.clone();
    edited.digest = second.digest;
    let r = v.verify_tee_signature(&edited, SAMPLE_COLLATERAL_TIME);
    assert!(!passed(&r, Check::Binding) && !passed(&r, Check::Signature), "{r}");
    let mut swapped = signed.clone();
    swapped.attestation = second.attestation.clone();
    let r = v.verify_tee_signature(&swapped, SAMPLE_COLLATERAL_TIME);
    assert!(!passed(&r, Check::Binding), "{r}");
    let mut forged = signed.clone();
    let other = SigningKey::from_bytes(&[0x42; 32]).unwrap().sign(&action).unwrap().signature;
    forged.signature = FixedBytes(other.to_bytes());
    let r = v.verify_tee_signature(&forged, SAMPLE_COLLATERAL_TIME);
    assert!(!passed(&r, Check::Signature) && passed(&r, Check::Binding), "{r}");
    // A key chain from another KMS.
    let r =
        verifier(tee_core::Address([9; 20])).verify_tee_signature(&signed, SAMPLE_COLLATERAL_TIME);
    assert!(!passed(&r, Check::KeyChain), "{r}");

    // The policy holds through the provider: blind kinds are not allowed.
    let r = agent.sign(&key, &sample::action(ActionKind::PersonalMessage));
    assert!(
        matches!(
            r,
            Err(ProviderError::Denied {
                reason: DeviceError::Denied(PolicyViolation::KindNotAllowed),
                ..
            })
        ),
        "{r:?}"
    );

    // The refusal says, in words, what the action was read as and what the
    // policy allows (Python's `Refused` carries this message).
    let why = r.unwrap_err().to_string();
    let read_as = format!("read as {};", ActionKind::PersonalMessage.name());
    assert!(why.contains(&read_as) && why.contains("the policy allows the kinds"), "{why}");

    // Message bytes, as SDKs hand them over: EIP-191, refused until the
    // policy names personal_sign, then signed and attested like any action.
    let r = agent.sign_message(&key, b"hello from agent 42");
    assert!(
        matches!(
            r,
            Err(ProviderError::Denied {
                reason: DeviceError::Denied(PolicyViolation::KindNotAllowed),
                ..
            })
        ),
        "{r:?}"
    );
    let mut policy = tee_testkit::typed_policy();
    policy.kinds = policy.kinds.with(ActionKind::PersonalMessage);
    admin.generate_key(1, "erc8004/agent-42-messages", &policy).unwrap();
    let key1 = agent.key(1).unwrap();
    let m = agent.sign_message(&key1, b"hello from agent 42").unwrap();
    let sig = alloy_primitives::Signature::from_raw_array(&m.signature.0).unwrap();
    let by = sig.recover_address_from_msg(b"hello from agent 42").unwrap();
    assert_eq!(by.0.0, key1.address.0, "alloy's EIP-191 recovers the key");
    assert!(agent.verify_attestation(&m, Some(SAMPLE_COLLATERAL_TIME)).verified_but_dcap());
    // A message over the signer's bound is named, with its length and the
    // bound the signer reported, before it is sent.
    let bound = tee_core::action::ActionBounds::HOST.message;
    let r = agent.sign_message(&key1, &vec![0u8; bound as usize + 1]);
    let Err(ProviderError::OverBound(over)) = r else { panic!("{r:?}") };
    assert_eq!((over.field, over.len, over.max), (BoundField::Message, bound + 1, bound));

    // get_attestation_report for a validator's challenge.
    let challenge = B256([0xcc; 32]);
    let a = agent.get_attestation_report(0, challenge).unwrap();
    assert_eq!(a.bound, Bound::Challenge(challenge));
    let addr = tee_core::Address(a.address.0);
    let ok = v.verify(
        &a.evidence(),
        &addr,
        &tee_verify::Expected::Challenge(challenge),
        SAMPLE_COLLATERAL_TIME,
    );
    assert!(ok.verified_but_dcap(), "{ok}");
    let stale = v.verify(
        &a.evidence(),
        &addr,
        &tee_verify::Expected::Challenge(B256([0xcd; 32])),
        SAMPLE_COLLATERAL_TIME,
    );
    assert!(!passed(&stale, Check::Binding), "{stale}");
    // An empty slot.
    assert!(matches!(
        agent.get_attestation_report(5, challenge),
        Err(ProviderError::Refused(DeviceError::SlotEmpty))
    ));
}

/// An attested signature of a JSON request (`tee-signer sign --json`,
/// `TeeAccount`) is one connection and the fewest round trips the protocol
/// allows: `DeviceInfo` once per session (bounds, backend), `GetPublicKey`
/// (the sequence and the key's origin), `GetPolicy` (the contracts the JSON
/// decoder takes as registries), `Sign`, `AttestAction`, the event log and
/// the key chain by `GetEvidence` (one chunk each here). On the kept
/// connection, the next signature asks no `DeviceInfo`.
#[test]
fn an_attested_signature_is_one_connection_and_the_fewest_round_trips() {
    use tee_client::session::Stats;
    let s = setup();
    let endpoint = s.server.endpoints()[0].clone();
    PhalaDstackProvider::new(endpoint.clone(), verifier(s.kms_root))
        .with_admin(SigningKey::from_bytes(&ADMIN_SECRET).unwrap())
        .generate_key(0, "erc8004/agent-42", &tee_testkit::typed_policy())
        .unwrap();
    let agent = PhalaDstackProvider::new(endpoint, verifier(s.kms_root));
    let request = |kind| tee_client::actions::to_json(&sample::action(kind)).unwrap().to_string();
    let first = agent.sign_json(0, &request(ActionKind::SetAgentUri), None).unwrap();
    assert!(first.signature.attestation.key_chain.is_some());
    assert_eq!(agent.stats(), Stats { connections: 1, round_trips: 7 });
    let second = agent.sign_json(0, &request(ActionKind::GiveFeedback), None).unwrap();
    assert_eq!(second.signature.sequence, first.signature.sequence + 1);
    assert_eq!(agent.stats(), Stats { connections: 1, round_trips: 13 });
    // A typed action skips GetPolicy.
    agent.sign_slot(0, &sample::action(ActionKind::Register)).unwrap();
    assert_eq!(agent.stats(), Stats { connections: 1, round_trips: 18 });
}
