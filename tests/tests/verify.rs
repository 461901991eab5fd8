//! The attestation verifier: each rejection the issue names comes with its
//! own reason, and each check passes where it should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use dcap_qvl::QuoteCollateralV3;
use tee_core::binding::{self, Mismatch, Purpose};
use tee_core::primitives::FixedBytes;
use tee_core::{Address, B256, SigningKey};
use tee_sim::{SAMPLE_QUOTE, SimDstack};
use tee_verify::*;

const V4_COLLATERAL: &str = include_str!("../data/dcap-qvl/tdx_quote_collateral.json");
const V5_OUTDATED: &[u8] = include_bytes!("../data/dcap-qvl/tdx_quote_outdated");
const V5_OUTDATED_COLLATERAL: &str =
    include_str!("../data/dcap-qvl/tdx_quote_outdated_collateral.json");
const V5_EX: &[u8] = include_bytes!("../data/dcap-qvl/tdx_quote_td15ex");
const V5_EX_COLLATERAL: &str = include_str!("../data/dcap-qvl/tdx_quote_td15ex_collateral.json");

/// Inside the v4 sample collateral's validity window (2025-06-19 .. 2025-07-19).
const NOW: u64 = 1_750_809_600; // 2025-06-25T00:00:00Z

/// A day after a collateral's TCB info was issued: inside its window.
fn inside(json: &str) -> u64 {
    let c = collateral(json);
    let tcb: serde_json::Value = serde_json::from_str(&c.tcb_info).unwrap();
    let issued = tcb["issueDate"].as_str().unwrap();
    let t = chrono::DateTime::parse_from_rfc3339(issued).unwrap().timestamp() as u64;
    t + 86_400
}

fn collateral(json: &str) -> QuoteCollateralV3 {
    serde_json::from_str(json).unwrap()
}

fn verifier(json: &str) -> Verifier {
    Verifier { collateral: Some(collateral(json)), ..simulated() }
}

/// The default policy, no collateral, the simulator's root given.
fn simulated() -> Verifier {
    Verifier {
        policy: Policy::default(),
        collateral: None,
        pccs: None,
        simulated_root: Some(tee_sim::root()),
    }
}

fn evidence(quote: &[u8]) -> Evidence<'_> {
    Evidence { quote, event_log: None, key_chain: None }
}

/// A simulated app's quote (and event log) binding a key to a challenge.
fn simulated_quote() -> (SigningKey, B256, Vec<u8>, Vec<tee_verify::eventlog::Event>) {
    let sim = SimDstack::new(&[0x11; 32], [0xa1; 20], [0xc0; 32]).unwrap();
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let challenge = B256([0x33; 32]);
    let (quote, log) =
        sim.get_quote(&binding::bind(&key.address(), Purpose::Challenge, &challenge));
    (key, challenge, quote, log)
}

/// `v`'s report on `quote` alone (no event log or key chain), for no key
/// of ours (the samples bind none), at `now`.
fn unbound(v: &Verifier, quote: &[u8], now: u64) -> tee_verify::Report {
    v.verify(&evidence(quote), &Address::ZERO, &Expected::Challenge(B256::ZERO), now)
}

#[test]
fn intel_samples_pass_dcap_offline() {
    for (quote, json) in [(SAMPLE_QUOTE, V4_COLLATERAL), (V5_EX, V5_EX_COLLATERAL)] {
        let r = unbound(&verifier(json), quote, inside(json));
        assert!(matches!(r.status(Check::Collateral), Some(Status::Passed(_))), "{r}");
        assert!(matches!(r.status(Check::Dcap), Some(Status::Passed(_))), "{r}");
        assert_eq!(r.status(Check::TcbStatus), Some(&Status::Passed("UpToDate".into())), "{r}");
        // The samples bind no key of ours: the binding check says so.
        assert!(matches!(r.status(Check::Binding), Some(Status::Failed(Failure::Binding(_)))));
        assert!(!r.verified());
    }
}

/// dcap-qvl's "outdated" fixture has no TCB level matching its platform
/// (dcap-qvl's own test verifies it only with a deliberate TCB override).
#[test]
fn a_quote_without_a_matching_tcb_level_fails_dcap() {
    let now = inside(V5_OUTDATED_COLLATERAL);
    let r = unbound(&verifier(V5_OUTDATED_COLLATERAL), V5_OUTDATED, now);
    assert!(
        matches!(r.status(Check::Dcap), Some(Status::Failed(Failure::Dcap(why))) if why.contains("TCB level")),
        "{r}"
    );
}

#[test]
fn a_tcb_status_outside_the_policy_is_refused() {
    let mut v = verifier(V4_COLLATERAL);
    v.policy.tcb_status = vec!["SWHardeningNeeded".into()];
    let r = unbound(&v, SAMPLE_QUOTE, NOW);
    assert!(
        matches!(r.status(Check::TcbStatus), Some(Status::Failed(Failure::TcbStatus { status, .. })) if status == "UpToDate"),
        "{r}"
    );
}

#[test]
fn expired_and_not_yet_valid_collateral() {
    // The collateral's failure 60 days after and before its window.
    let collateral_at = |at| {
        let r = unbound(&verifier(V4_COLLATERAL), SAMPLE_QUOTE, at);
        assert!(matches!(r.status(Check::Dcap), Some(Status::Skipped(_))), "{r}");
        match r.status(Check::Collateral) {
            Some(Status::Failed(f)) => f.clone(),
            other => panic!("{other:?}: {r}"),
        }
    };
    let later = collateral_at(NOW + 60 * 86_400);
    assert!(matches!(later, Failure::CollateralExpired { .. }), "{later:?}");
    let earlier = collateral_at(NOW - 60 * 86_400);
    assert!(matches!(earlier, Failure::CollateralNotYetValid { .. }), "{earlier:?}");
    let none = unbound(&Verifier::default(), SAMPLE_QUOTE, NOW);
    assert!(matches!(
        none.status(Check::Collateral),
        Some(Status::Failed(Failure::Missing("collateral")))
    ));
}

#[test]
fn every_flipped_byte_of_report_body_or_signature_fails_dcap() {
    let quote = tee_core::quote::Quote::parse(SAMPLE_QUOTE).unwrap();
    let body = 48..quote.signed.len();
    let sig_at = quote.signed.len() + 4;
    let signature = sig_at..sig_at + 64;
    let v = verifier(V4_COLLATERAL);
    let mut checked = 0;
    for i in body.chain(signature) {
        let mut bad = SAMPLE_QUOTE.to_vec();
        bad[i] ^= 0x01;
        let r = unbound(&v, &bad, NOW);
        match r.status(Check::Dcap) {
            Some(Status::Failed(Failure::Dcap(why))) => assert!(!why.is_empty()),
            other => panic!("byte {i}: DCAP {other:?}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 584 + 64);
}

#[test]
fn binding_wrong_address_stale_challenge_and_purpose() {
    let (key, challenge, quote, log) = simulated_quote();
    let ev = Evidence { quote: &quote, event_log: Some(&log), key_chain: None };
    let v = verifier(V4_COLLATERAL);

    let ok = v.verify(&ev, &key.address(), &Expected::Challenge(challenge), NOW);
    assert!(matches!(ok.status(Check::Binding), Some(Status::Passed(_))), "{ok}");
    assert!(matches!(ok.status(Check::EventLog), Some(Status::Passed(_))), "{ok}");
    // A simulated quote is signed through the simulator's PKI: under Intel's
    // root its DCAP signature does not verify, and the verifier says so.
    assert!(matches!(ok.status(Check::Dcap), Some(Status::Failed(Failure::Dcap(_)))), "{ok}");
    assert!(!ok.verified());

    let other = SigningKey::from_bytes(&[0x43; 32]).unwrap().address();
    let r = v.verify(&ev, &other, &Expected::Challenge(challenge), NOW);
    assert_eq!(
        r.status(Check::Binding),
        Some(&Status::Failed(Failure::Binding(Mismatch::WrongAddress)))
    );
    let stale = B256([0x34; 32]);
    let r = v.verify(&ev, &key.address(), &Expected::Challenge(stale), NOW);
    assert_eq!(
        r.status(Check::Binding),
        Some(&Status::Failed(Failure::Binding(Mismatch::WrongValue)))
    );
    let r = v.verify(&ev, &key.address(), &Expected::ActionDigest(challenge), NOW);
    assert_eq!(
        r.status(Check::Binding),
        Some(&Status::Failed(Failure::Binding(Mismatch::WrongPurpose)))
    );
}

#[test]
fn measurements_outside_the_policy() {
    let q = tee_core::quote::Quote::parse(SAMPLE_QUOTE).unwrap();
    let mrtd = FixedBytes(*q.report.mr_td);
    let mut v = verifier(V4_COLLATERAL);
    v.policy.mrtd = Some(vec![mrtd]);
    v.policy.rtmr1 = Some(vec![FixedBytes(*q.report.rtmr[1])]);
    let r = unbound(&v, SAMPLE_QUOTE, NOW);
    assert!(matches!(r.status(Check::Mrtd), Some(Status::Passed(_))));
    assert!(matches!(r.status(Check::Rtmr(1)), Some(Status::Passed(_))));
    assert!(matches!(r.status(Check::Rtmr(0)), Some(Status::Skipped(_))));
    v.policy.mrtd = Some(vec![FixedBytes([0; 48])]);
    v.policy.rtmr2 = Some(vec![FixedBytes([0; 48])]);
    let r = unbound(&v, SAMPLE_QUOTE, NOW);
    assert!(
        matches!(r.status(Check::Mrtd), Some(Status::Failed(Failure::NotAllowed { value })) if *value == hex::encode(mrtd.0))
    );
    assert!(matches!(r.status(Check::Rtmr(2)), Some(Status::Failed(Failure::NotAllowed { .. }))));
}

#[test]
fn event_log_compose_hash_and_app_id() {
    let sim = SimDstack::new(&[0x11; 32], [0xa1; 20], [0xc0; 32]).unwrap();
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let c = B256([9; 32]);
    let (quote, log) = sim.get_quote(&binding::bind(&key.address(), Purpose::Challenge, &c));
    let mut v = simulated();
    v.policy.compose_hash = Some(vec![B256([0xc0; 32])]);
    v.policy.app_id = Some(vec![FixedBytes([0xa1; 20])]);
    let check = |v: &Verifier, log: Option<&[tee_verify::eventlog::Event]>| {
        v.verify(
            &Evidence { quote: &quote, event_log: log, key_chain: None },
            &key.address(),
            &Expected::Challenge(c),
            NOW,
        )
    };
    let r = check(&v, Some(&log));
    assert!(matches!(r.status(Check::ComposeHash), Some(Status::Passed(_))), "{r}");
    assert!(matches!(r.status(Check::AppId), Some(Status::Passed(_))), "{r}");
    // Another compose hash than allowed.
    v.policy.compose_hash = Some(vec![B256([0xc1; 32])]);
    let r = check(&v, Some(&log));
    assert!(
        matches!(r.status(Check::ComposeHash), Some(Status::Failed(Failure::NotAllowed { .. }))),
        "{r}"
    );
    // A forged event: its digest no longer matches.
    let mut forged = log.clone();
    forged[2].event_payload = vec![0xc1; 32];
    let r = check(&v, Some(&forged));
    assert!(matches!(r.status(Check::EventLog), Some(Status::Failed(Failure::EventLog(_)))), "{r}");
    // A consistent but different log: does not replay to the quote's RTMR3.
    let other = SimDstack::new(&[0x11; 32], [0xa1; 20], [0xc1; 32]).unwrap().event_log();
    let r = check(&v, Some(&other));
    assert!(
        matches!(r.status(Check::EventLog), Some(Status::Failed(Failure::Rtmr3Mismatch { .. }))),
        "{r}"
    );
    assert!(matches!(r.status(Check::ComposeHash), Some(Status::Skipped(_))), "{r}");
    // No log when the policy needs one.
    let r = check(&v, None);
    assert_eq!(r.status(Check::EventLog), Some(&Status::Failed(Failure::Missing("event log"))));
}

#[test]
fn dstack_key_chain_up_to_the_kms_root() {
    let sim = SimDstack::new(&[0x11; 32], [0xa1; 20], [0xc0; 32]).unwrap();
    let (secret, chain) = sim.get_key("agents/42", "ethereum").unwrap();
    let key = SigningKey::from_bytes(&secret).unwrap();
    let c = B256([5; 32]);
    let (quote, log) = sim.get_quote(&binding::bind(&key.address(), Purpose::Challenge, &c));
    let mut v = simulated();
    v.policy.kms_root = Some(sim.kms_root());
    let run =
        |v: &Verifier, chain: Option<&KeyChain>, log: Option<&[tee_verify::eventlog::Event]>| {
            v.verify(
                &Evidence { quote: &quote, event_log: log, key_chain: chain },
                &key.address(),
                &Expected::Challenge(c),
                NOW,
            )
        };
    let r = run(&v, Some(&chain), Some(&log));
    assert!(matches!(r.status(Check::KeyChain), Some(Status::Passed(_))), "{r}");
    // Another KMS root.
    v.policy.kms_root = Some(Address([0x99; 20]));
    assert!(matches!(
        run(&v, Some(&chain), Some(&log)).status(Check::KeyChain),
        Some(Status::Failed(Failure::KeyChain(_)))
    ));
    v.policy.kms_root = Some(sim.kms_root());
    // Another purpose than the one signed.
    let mut wrong = chain.clone();
    wrong.purpose = "signing".into();
    assert!(matches!(
        run(&v, Some(&wrong), Some(&log)).status(Check::KeyChain),
        Some(Status::Failed(Failure::KeyChain(_)))
    ));
    // Another app's log (another app id).
    let other = SimDstack::new(&[0x11; 32], [0xa2; 20], [0xc0; 32]).unwrap();
    assert!(matches!(
        run(&v, Some(&chain), Some(&other.event_log())).status(Check::KeyChain),
        Some(Status::Failed(_))
    ));
    // No chain at all.
    assert_eq!(
        run(&v, None, Some(&log)).status(Check::KeyChain),
        Some(&Status::Failed(Failure::Missing("key signature chain")))
    );
    // The chain matches what tee-verify's own chain verifier computes directly.
    assert!(verify_key_chain(&chain, &key.address(), Some(&sim.app_id()), &sim.kms_root()).is_ok());
}

#[test]
fn policy_files_in_toml_and_json() {
    let dir = std::env::temp_dir().join(format!("tee-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let q = tee_core::quote::Quote::parse(SAMPLE_QUOTE).unwrap();
    let toml = format!(
        "mrtd = [\"0x{}\"]\ncompose_hash = [\"{}\"]\ntcb_status = [\"UpToDate\", \"SWHardeningNeeded\"]\nkms_root = \"0x52d3CF51c8A37A2CCfC79bBb98c7810d7Dd4CE51\"\n",
        hex::encode(q.report.mr_td),
        "c0".repeat(32)
    );
    std::fs::write(dir.join("p.toml"), &toml).unwrap();
    let p = Policy::load(&dir.join("p.toml")).unwrap();
    assert_eq!(p.mrtd, Some(vec![FixedBytes(*q.report.mr_td)]));
    assert_eq!(p.compose_hash, Some(vec![B256([0xc0; 32])]));
    std::fs::write(dir.join("p.json"), serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(Policy::load(&dir.join("p.json")).unwrap(), p);
    // Typos are errors, not silently ignored rules.
    std::fs::write(dir.join("bad.toml"), "mrdt = []\n").unwrap();
    assert!(matches!(Policy::load(&dir.join("bad.toml")), Err(PolicyError::Invalid { .. })));
    std::fs::write(dir.join("short.toml"), "mrtd = [\"abcd\"]\n").unwrap();
    assert!(matches!(Policy::load(&dir.join("short.toml")), Err(PolicyError::Invalid { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unparsable_quote_and_debug_td() {
    let r = unbound(&Verifier::default(), &SAMPLE_QUOTE[..100], NOW);
    assert_eq!(
        r.status(Check::Quote),
        Some(&Status::Failed(Failure::Quote(tee_core::Error::Truncated)))
    );
    // Nothing runs after a quote that does not parse (the policy's pinning
    // is read before the quote).
    assert_eq!(r.checks.len(), 2);
    let mut debug = SAMPLE_QUOTE.to_vec();
    debug[48 + 120] |= 1; // td_attributes bit 0
    let r = unbound(&Verifier::default(), &debug, NOW);
    assert_eq!(r.status(Check::Debug), Some(&Status::Failed(Failure::DebugTd)));
}

/// docs/attestation.md shows this example; keep them in step.
#[test]
fn binding_example_in_the_docs() {
    let address = Address(hex_literal::hex!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
    let rd = binding::bind(&address, Purpose::Challenge, &B256([0x77; 32]));
    let doc = include_str!("../../docs/attestation.md");
    assert!(doc.contains(&format!(
        "{} {}\n{}",
        hex::encode(&rd[..20]),
        hex::encode(&rd[20..32]),
        hex::encode(&rd[32..])
    )));
}

/// Simulated DCAP: a simulated quote passes DCAP when, and only when, the
/// policy trusts the simulator's root; that trust replaces Intel's root
/// (Intel's own sample then fails), and the verdict says so.
#[test]
fn simulated_quotes_pass_dcap_under_the_simulator_root_only() {
    let (key, challenge, quote, log) = simulated_quote();
    let ev = Evidence { quote: &quote, event_log: Some(&log), key_chain: None };
    let now = 1_800_000_000;
    let expected = Expected::Challenge(challenge);
    let mut policy = Policy {
        compose_hash: Some(vec![B256([0xc0; 32])]),
        app_id: Some(vec![FixedBytes([0xa1; 20])]),
        ..Policy::default()
    };

    // Intel's root (the default), no collateral given: nothing verifies.
    let v = Verifier { policy: policy.clone(), ..simulated() };
    let r = v.verify(&ev, &key.address(), &expected, now);
    assert!(!r.verified() && !r.simulated_root, "{r}");

    // The simulator's root: its collateral is made for the time, and every
    // check passes, reported as simulated.
    policy.trust_simulator_root = true;
    let v = Verifier { policy: policy.clone(), ..simulated() };
    let r = v.verify(&ev, &key.address(), &expected, now);
    assert!(r.verified() && r.simulated_root, "{r}");
    assert!(r.to_string().contains("VERIFIED (simulated root)"), "{r}");
    assert!(r.to_string().contains("no hardware"), "{r}");
    // A changed quote byte still fails.
    let mut tampered = quote.clone();
    tampered[200] ^= 1;
    let ev2 = Evidence { quote: &tampered, event_log: Some(&log), key_chain: None };
    let r = v.verify(&ev2, &key.address(), &expected, now);
    assert!(matches!(r.status(Check::Dcap), Some(Status::Failed(_))), "{r}");

    // Trusting the simulator's root is instead of Intel's: Intel's own
    // sample fails DCAP under it, and passes under Intel's.
    let sample = Verifier {
        policy: Policy { trust_simulator_root: true, ..Policy::default() },
        ..verifier(V4_COLLATERAL)
    };
    let r = sample.verify(&evidence(SAMPLE_QUOTE), &Address::ZERO, &expected, NOW);
    assert!(matches!(r.status(Check::Dcap), Some(Status::Failed(_))), "{r}");
    let r = verifier(V4_COLLATERAL).verify(&evidence(SAMPLE_QUOTE), &Address::ZERO, &expected, NOW);
    assert!(matches!(r.status(Check::Dcap), Some(Status::Passed(_))), "{r}");
}

/// `Verifier::tcb` (what `tee-signer tcb` prints): the sample platform's
/// status, FMSPC, TCB evaluation numbers and collateral lifetime; near and
/// after its `nextUpdate` it says so, and an expired collateral verifies
/// nothing (no status, not accepted).
#[test]
fn the_tcb_report_names_the_platform_and_how_long_its_collateral_lasts() {
    let v = verifier(V4_COLLATERAL);
    let t = v.tcb(SAMPLE_QUOTE, NOW).unwrap();
    assert_eq!(t.status.as_deref(), Some("UpToDate"));
    assert!(t.advisory_ids.is_empty() && t.dcap_error.is_none() && t.accepted, "{t:?}");
    assert_eq!(t.fmspc, "b0c06f000000");
    assert_eq!((t.tcb_evaluation_data_number, t.qe_evaluation_data_number), (17, 17));
    assert_eq!(t.tcb_info_next_update, "2025-07-19T10:16:03Z");
    assert_eq!(t.next_update, "2025-07-19T10:16:03Z", "the earlier of TCB info and QE identity");
    let next = chrono::DateTime::parse_from_rfc3339(&t.next_update).unwrap().timestamp();
    assert_eq!(t.seconds_left, next - NOW as i64);
    assert!(!t.expires_soon());
    // Three days before it: a warning.
    let soon = v.tcb(SAMPLE_QUOTE, next as u64 - 3 * 86_400).unwrap();
    assert!(soon.expires_soon() && soon.accepted, "{soon:?}");
    // After it: nothing verifies.
    let after = v.tcb(SAMPLE_QUOTE, next as u64 + 60).unwrap();
    assert!(after.seconds_left < 0 && after.status.is_none() && !after.accepted, "{after:?}");
    assert!(after.dcap_error.is_some());
    // A policy that does not accept the status: reported, not accepted.
    let mut strict = verifier(V4_COLLATERAL);
    strict.policy.tcb_status = vec!["SWHardeningNeeded".into()];
    let t = strict.tcb(SAMPLE_QUOTE, NOW).unwrap();
    assert_eq!((t.status.as_deref(), t.accepted), (Some("UpToDate"), false));
    // No collateral at all: an error, not a report.
    assert!(matches!(
        Verifier::default().tcb(SAMPLE_QUOTE, NOW),
        Err(Failure::Missing("collateral"))
    ));
    // A platform whose TCB matches no level: reported as such.
    let out =
        verifier(V5_OUTDATED_COLLATERAL).tcb(V5_OUTDATED, inside(V5_OUTDATED_COLLATERAL)).unwrap();
    assert!(out.dcap_error.as_deref().is_some_and(|e| e.contains("TCB level")), "{out:?}");
    assert_eq!(out.fmspc, "90c06f000000");
}
