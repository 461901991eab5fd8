//! dstack's `VersionedAttestation` as the simulated guest agent writes it
//! (V0 from `Attest`, V1 as `encode_v1` writes dstack's MessagePack), read
//! back by the verifier's parser; other platforms, versions and
//! inconsistent fields refused.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use tee_sim::SimDstack;
use tee_verify::eventlog;
use tee_verify::versioned::{AttestationError, encode_v1, parse};

fn sim() -> SimDstack {
    SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap()
}

#[test]
fn both_encodings_read_back_to_the_quote_and_log() {
    let s = sim();
    s.emit_event("agent-config", b"v2").unwrap();
    let rd = [7u8; 64];
    let (quote, log) = s.get_quote(&rd);
    for (bytes, v1) in [(s.attest(&rd), false), (encode_v1(&quote, &log, &rd, "{}"), true)] {
        let a = parse(&bytes).unwrap();
        assert_eq!(a.report_data, rd);
        // Each quote has a fresh attestation key: only the V1 one is `quote`.
        assert!(!v1 || a.quote == quote, "the quote reads back");
        assert_eq!(eventlog::replay(&a.event_log, 3).unwrap(), s.measurements().rtmr[3]);
        assert_eq!(a.event_log.len(), log.len());
    }
}

/// The V1 wire form is dstack's: a named map, byte fields as arrays or bin.
#[test]
fn v1_is_a_named_messagepack_map() {
    let s = sim();
    let rd = [1u8; 64];
    let (quote, log) = s.get_quote(&rd);
    let bytes = encode_v1(&quote, &log, &rd, "");
    let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
    assert_eq!(v["version"], rmpv::Value::from(1));
    assert_eq!(v["platform"]["kind"].as_str(), Some("tdx"));
    assert!(v["platform"]["data"]["quote"].is_array());
    assert!(v["stack"]["data"]["report_data"].is_array());
    let first = &v["platform"]["data"]["event_log"][0];
    assert!(first["event_payload"].is_bin());
    assert!(first["digest"].as_slice().unwrap().is_empty(), "runtime events are stripped");
}

#[test]
fn other_platforms_versions_and_lies_are_refused() {
    let s = sim();
    let rd = [1u8; 64];
    let (quote, log) = s.get_quote(&rd);
    let enc = |v: &rmpv::Value| {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    };
    let good: rmpv::Value =
        rmpv::decode::read_value(&mut &encode_v1(&quote, &log, &rd, "")[..]).unwrap();
    let with = |path: &[&str], value: rmpv::Value| {
        let mut v = good.clone();
        let mut at = &mut v;
        for key in path {
            let rmpv::Value::Map(map) = at else { panic!("not a map at {key}") };
            at = &mut map.iter_mut().find(|(k, _)| k.as_str() == Some(key)).unwrap().1;
        }
        *at = value;
        enc(&v)
    };
    assert_eq!(
        parse(&with(&["platform", "kind"], "sev-snp".into())),
        Err(AttestationError::UnsupportedPlatform("sev-snp".into()))
    );
    assert_eq!(parse(&with(&["version"], 2.into())), Err(AttestationError::UnsupportedVersion(2)));
    let other_rd = rmpv::Value::Array(vec![rmpv::Value::from(2); 64]);
    assert!(matches!(
        parse(&with(&["stack", "data", "report_data"], other_rd)),
        Err(AttestationError::Inconsistent(_))
    ));
    assert!(matches!(
        parse(&with(&["stack", "data", "runtime_events"], rmpv::Value::Array(vec![]))),
        Err(AttestationError::Inconsistent(_))
    ));
    let mut trailing = enc(&good);
    trailing.push(0);
    assert!(matches!(parse(&trailing), Err(AttestationError::Malformed(_))));
    assert!(matches!(parse(&[]), Err(AttestationError::Size(0))));
    let v0 = s.attest(&rd);
    for cut in [1, 2, 10, v0.len() - 1] {
        assert!(parse(&v0[..cut]).is_err(), "{cut}");
    }
}
