//! The verifier as an attacker would try it: its own app on real TDX
//! hardware emitting the victim's identity after boot, logs that lie about
//! where boot ended, a quote from another TD with a correct binding, a
//! verifier left without a policy, and a signature's JSON with fields
//! swapped. Each must fail, with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tee_core::binding::{self, Purpose};
use tee_core::primitives::FixedBytes;
use tee_core::{Address, B256, SigningKey};
use tee_sim::{SimDstack, patched_quote, sample_collateral};
use tee_verify::eventlog::{self, BootLog, Event, EventLogError};
use tee_verify::*;

/// Inside the sample collateral's validity window.
const NOW: u64 = 1_750_809_600;
const VICTIM_APP: [u8; 20] = [0xa1; 20];
const VICTIM_COMPOSE: [u8; 32] = [0xc0; 32];
const ATTACKER_APP: [u8; 20] = [0x66; 20];
const ATTACKER_COMPOSE: [u8; 32] = [0x99; 32];

/// A policy pinning the victim's app.
fn victim_policy() -> Policy {
    Policy {
        compose_hash: Some(vec![B256(VICTIM_COMPOSE)]),
        app_id: Some(vec![FixedBytes(VICTIM_APP)]),
        ..Policy::default()
    }
}

fn verifier(policy: Policy) -> Verifier {
    Verifier {
        policy,
        collateral: Some(sample_collateral().unwrap()),
        pccs: None,
        simulated_root: Some(tee_sim::root()),
    }
}

/// A quote over `log`'s RTMR3 binding `key` to the challenge: what real
/// hardware would give an app whose log this is.
fn quote_for(log: &[Event], key: &SigningKey, challenge: &B256) -> Vec<u8> {
    let rtmr3 = eventlog::replay(log, 3).unwrap();
    patched_quote(&binding::bind(&key.address(), Purpose::Challenge, challenge), &rtmr3)
}

fn run(v: &Verifier, quote: &[u8], log: &[Event], key: &SigningKey, c: &B256) -> Report {
    let evidence = Evidence { quote, event_log: Some(log), key_chain: None };
    v.verify(&evidence, &key.address(), &Expected::Challenge(*c), NOW)
}

fn failed(r: &Report, check: Check) -> bool {
    matches!(r.status(check), Some(Status::Failed(_)))
}

fn passed(r: &Report, check: Check) -> bool {
    matches!(r.status(check), Some(Status::Passed(_)))
}

#[test]
fn identity_emitted_after_system_ready_is_not_identity() {
    let attacker = SimDstack::new(&[0x11; 32], ATTACKER_APP, ATTACKER_COMPOSE).unwrap();
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let c = B256([7; 32]);
    // The attacker's app, booted honestly, then emitting the victim's
    // identity through EmitEvent: the log still replays to RTMR3.
    let mut log = attacker.event_log();
    log.push(Event::runtime("compose-hash", &VICTIM_COMPOSE));
    log.push(Event::runtime("app-id", &VICTIM_APP));
    let quote = quote_for(&log, &key, &c);
    let r = run(&verifier(victim_policy()), &quote, &log, &key, &c);
    assert!(passed(&r, Check::EventLog), "the log itself is honest: {r}");
    assert!(failed(&r, Check::ComposeHash) && failed(&r, Check::AppId), "{r}");
    assert!(!r.verified() && !r.verified_but_dcap());
    // The appended events are shown as the app's own.
    let names: Vec<&str> = r.runtime_events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["compose-hash", "app-id"]);
    assert!(r.to_string().contains("app-emitted, not identity"), "{r}");
    // The same events before system-ready would be the attacker's boot
    // identity twice: refused as well.
    let mut early = attacker.event_log();
    let ready = early.iter().position(|e| e.event == "system-ready").unwrap();
    early.insert(ready, Event::runtime("app-id", &VICTIM_APP));
    let quote = quote_for(&early, &key, &c);
    let r = run(&verifier(victim_policy()), &quote, &early, &key, &c);
    assert!(
        matches!(
            r.status(Check::EventLog),
            Some(Status::Failed(Failure::EventLog(EventLogError::DuplicateIdentity { .. })))
        ),
        "{r}"
    );
    assert!(!passed(&r, Check::AppId), "{r}");
}

#[test]
fn a_log_that_never_reaches_system_ready_names_no_app() {
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let c = B256([7; 32]);
    // Only the victim's identity, never system-ready: every event could
    // be the app's own.
    let log = vec![
        Event::runtime("app-id", &VICTIM_APP),
        Event::runtime("compose-hash", &VICTIM_COMPOSE),
    ];
    let quote = quote_for(&log, &key, &c);
    let r = run(&verifier(victim_policy()), &quote, &log, &key, &c);
    assert!(
        matches!(
            r.status(Check::EventLog),
            Some(Status::Failed(Failure::EventLog(EventLogError::NoSystemReady)))
        ),
        "{r}"
    );
    assert!(!passed(&r, Check::ComposeHash) && !passed(&r, Check::AppId), "{r}");
    assert_eq!(BootLog::read(&log), Err(EventLogError::NoSystemReady));
}

#[test]
fn a_v2_event_whose_preimage_lies_is_refused() {
    let sim = SimDstack::new(&[0x11; 32], VICTIM_APP, VICTIM_COMPOSE).unwrap();
    let mut log = sim.event_log();
    for e in &mut log {
        e.version = Some(2);
        e.preimage = Some(hex::encode(e.preimage_bytes(0).unwrap()));
        e.digest = e.computed_digest(0).unwrap().to_vec();
    }
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let c = B256([7; 32]);
    let quote = quote_for(&log, &key, &c);
    let r = run(&verifier(victim_policy()), &quote, &log, &key, &c);
    assert!(passed(&r, Check::EventLog) && passed(&r, Check::AppId), "v2 events read: {r}");
    // A preimage that is not the event's content.
    log[1].preimage = Some(hex::encode(b"something else"));
    let r = run(&verifier(victim_policy()), &quote, &log, &key, &c);
    assert!(
        matches!(
            r.status(Check::EventLog),
            Some(Status::Failed(Failure::EventLog(EventLogError::PreimageMismatch { .. })))
        ),
        "{r}"
    );
}

#[test]
fn a_quote_from_another_td_fails_a_pinned_image() {
    // The validator pins the image it reviewed (here: the v4 sample's).
    let victim = SimDstack::new(&[0x11; 32], VICTIM_APP, VICTIM_COMPOSE).unwrap();
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let c = B256([7; 32]);
    let (quote, log) = victim.get_quote(&binding::bind(&key.address(), Purpose::Challenge, &c));
    let q = tee_core::quote::Quote::parse(&quote).unwrap();
    let mut policy = victim_policy();
    policy.mrtd = Some(vec![FixedBytes(*q.report.mr_td)]);
    for (n, list) in
        [&mut policy.rtmr0, &mut policy.rtmr1, &mut policy.rtmr2].into_iter().enumerate()
    {
        *list = Some(vec![FixedBytes(*q.report.rtmr[n])]);
    }
    let r = run(&verifier(policy.clone()), &quote, &log, &key, &c);
    assert!(passed(&r, Check::Pinned) && passed(&r, Check::Mrtd), "{r}");
    // The image alone is not the app: every dstack app on that image boots
    // the same MRTD and RTMR0-2. A policy that pins only the image (and the
    // KMS root) is no pin for a dstack app's quote: before, it verified
    // another app's signer.
    let image_only = Policy {
        compose_hash: None,
        app_id: None,
        kms_root: Some(Address([1; 20])),
        ..policy.clone()
    };
    let r = run(&verifier(image_only.clone()), &quote, &log, &key, &c);
    assert!(
        matches!(r.status(Check::Pinned), Some(Status::Failed(Failure::Unpinned(why))) if why.contains("dstack app")),
        "{r}"
    );
    assert!(!r.verified() && !r.verified_but_dcap(), "{r}");
    // A TD that is not a dstack app (no event log, no key chain) may be
    // pinned by its image.
    assert!(image_only.pinning(false, false).is_ok());
    let mut with_rtmr3 = image_only;
    with_rtmr3.rtmr3 = Some(vec![FixedBytes(*q.report.rtmr[3])]);
    assert!(with_rtmr3.pinning(true, true).is_ok());
    // Another TD (another firmware: Intel's v5 sample), the same event log
    // and a correct binding to the same key and challenge.
    let other = include_bytes!("../data/dcap-qvl/tdx_quote_outdated");
    let mut forged = other.to_vec();
    let oq = tee_core::quote::Quote::parse(other).unwrap();
    let at = |field: &[u8]| field.as_ptr() as usize - other.as_ptr() as usize;
    let rd = at(oq.report.report_data);
    forged[rd..rd + 64].copy_from_slice(&binding::bind(&key.address(), Purpose::Challenge, &c));
    let r3 = at(oq.report.rtmr[3]);
    forged[r3..r3 + 48].copy_from_slice(&eventlog::replay(&log, 3).unwrap());
    let r = run(&verifier(policy), &forged, &log, &key, &c);
    assert!(passed(&r, Check::Binding) && passed(&r, Check::AppId), "{r}");
    assert!(failed(&r, Check::Mrtd), "{r}");
    assert!(!r.verified());
}

#[test]
fn no_policy_is_no_verdict() {
    let sim = SimDstack::new(&[0x11; 32], VICTIM_APP, VICTIM_COMPOSE).unwrap();
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let c = B256([7; 32]);
    let (quote, log) = sim.get_quote(&binding::bind(&key.address(), Purpose::Challenge, &c));
    let v = Verifier { collateral: Some(sample_collateral().unwrap()), ..Verifier::default() };
    let r = run(&v, &quote, &log, &key, &c);
    assert!(
        matches!(r.status(Check::Pinned), Some(Status::Failed(Failure::Unpinned(why))) if why.contains("compose_hash")),
        "{r}"
    );
    assert!(!r.verified() && !r.verified_but_dcap());
    // Half a pin is no pin: an app id without its compose hash, an empty
    // list, an image without RTMR2.
    for policy in [
        Policy { app_id: Some(vec![FixedBytes(VICTIM_APP)]), ..Policy::default() },
        Policy { compose_hash: Some(vec![]), app_id: Some(vec![]), ..Policy::default() },
        Policy {
            mrtd: Some(vec![FixedBytes([1; 48])]),
            rtmr0: Some(vec![FixedBytes([1; 48])]),
            rtmr1: Some(vec![FixedBytes([1; 48])]),
            ..Policy::default()
        },
    ] {
        assert!(policy.pinning(false, false).is_err(), "{policy:?}");
    }
    // A derived key needs its KMS root pinned.
    assert!(victim_policy().pinning(false, true).is_ok());
    let e = victim_policy().pinning(true, true).unwrap_err();
    assert!(e.contains("kms_root"), "{e}");
    let mut with_root = victim_policy();
    with_root.kms_root = Some(Address([1; 20]));
    assert!(with_root.pinning(true, true).is_ok());
}

/// A signature's JSON as a signer hands it out, through the real provider
/// is tested in `provider.rs`; here the fields are swapped one by one.
#[test]
fn every_field_of_a_signature_json_is_checked() {
    let sim = SimDstack::new(&[0x11; 32], VICTIM_APP, VICTIM_COMPOSE).unwrap();
    let key = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let digest = B256([0xd1; 32]);
    let (quote, log) =
        sim.get_quote(&binding::bind(&key.address(), Purpose::ActionDigest, &digest));
    let q = tee_core::quote::Quote::parse(&quote).unwrap();
    let signature = tee_core::hazmat::sign_prehash(&key, &digest).unwrap();
    let attestation = Attestation {
        provider: "phala-dstack".into(),
        address: key.address(),
        bound: Bound::ActionDigest(digest),
        report_data: FixedBytes(*q.report.report_data),
        quote: quote.clone(),
        event_log: log,
        key_chain: None,
        backend: "Simulated".into(),
    };
    let signed = TeeSignature {
        provider: "phala-dstack".into(),
        slot: 0,
        sequence: 1,
        digest,
        signature: FixedBytes(signature.to_bytes()),
        address: key.address(),
        raw_transaction: None,
        transaction_hash: None,
        attestation,
    };
    let v = verifier(victim_policy());
    let r = v.verify_tee_signature(&signed, NOW);
    assert!(passed(&r, Check::Fields) && passed(&r, Check::Signature), "{r}");
    assert!(r.verified_but_dcap(), "{r}");

    let field = |r: &Report| match r.status(Check::Fields) {
        Some(Status::Failed(Failure::FieldMismatch { field, .. })) => Some(*field),
        _ => None,
    };
    let other = Address([0x77; 20]);
    let mut s = signed.clone();
    s.address = other;
    assert_eq!(field(&v.verify_tee_signature(&s, NOW)), Some("address"));
    let mut s = signed.clone();
    s.attestation.bound = Bound::Challenge(digest);
    assert_eq!(field(&v.verify_tee_signature(&s, NOW)), Some("bound"));
    let mut s = signed.clone();
    s.attestation.bound = Bound::ActionDigest(B256([0xd2; 32]));
    assert_eq!(field(&v.verify_tee_signature(&s, NOW)), Some("bound"));
    let mut s = signed.clone();
    s.attestation.report_data = FixedBytes([0; 64]);
    assert_eq!(field(&v.verify_tee_signature(&s, NOW)), Some("report_data"));
    // The address the attestation binds, changed together with the top
    // level one: the fields agree, the binding does not.
    let mut s = signed.clone();
    s.address = other;
    s.attestation.address = other;
    let r = v.verify_tee_signature(&s, NOW);
    assert!(passed(&r, Check::Fields) && failed(&r, Check::Binding), "{r}");
    // And an attestation JSON must bind what the verifier expects.
    let r = v.verify_attestation(&signed.attestation, &Expected::Challenge(digest), NOW);
    assert!(failed(&r, Check::Fields), "{r}");
}
