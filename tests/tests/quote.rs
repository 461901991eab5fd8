//! The zero-copy TDX quote parser against dcap-qvl's, on Intel's sample
//! quotes (v4, v5 TD 1.5, v5 TD 1.5 extended) and on mutations of them.
//!
//! Agreement rule: whenever our parser accepts, dcap-qvl accepts and every
//! field is equal. Where only dcap-qvl accepts, ours must say why, and the
//! reason must be one of the documented strictnesses: bytes dcap-qvl ignores
//! (its own re-encoding differs from the input), an SGX quote, an attestation
//! key type other than P-256, or a certification data type other than 6.
//! Ours accepts zero padding after a quote; dcap-qvl's re-encoding then equals
//! our `raw`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use dcap_qvl::quote::{AuthData as DcapAuth, Quote as DcapQuote, Report};
use parity_scale_codec::Encode;
use proptest::prelude::*;
use tee_core::Error;
use tee_core::quote::{BodyType, Quote};

pub const SAMPLES: [(&str, &[u8]); 3] = [
    ("tdx_quote", include_bytes!("../data/dcap-qvl/tdx_quote")),
    ("tdx_quote_outdated", include_bytes!("../data/dcap-qvl/tdx_quote_outdated")),
    ("tdx_quote_td15ex", include_bytes!("../data/dcap-qvl/tdx_quote_td15ex")),
];
const SGX: &[u8] = include_bytes!("../data/dcap-qvl/sgx_quote");

/// Every field of ours equals dcap-qvl's.
fn assert_same(ours: &Quote<'_>, theirs: &DcapQuote) {
    let h = &theirs.header;
    assert_eq!(ours.header.version, h.version);
    assert_eq!(ours.header.attestation_key_type, h.attestation_key_type);
    assert_eq!(ours.header.tee_type, h.tee_type);
    assert_eq!(ours.header.qe_svn, h.qe_svn);
    assert_eq!(ours.header.pce_svn, h.pce_svn);
    assert_eq!(ours.header.qe_vendor_id, &h.qe_vendor_id);
    assert_eq!(ours.header.user_data, &h.user_data);

    let td = theirs.report.as_td10().expect("a TD report");
    let r = &ours.report;
    assert_eq!(r.tee_tcb_svn, &td.tee_tcb_svn);
    assert_eq!(r.mr_seam, &td.mr_seam);
    assert_eq!(r.mr_signer_seam, &td.mr_signer_seam);
    assert_eq!(r.seam_attributes, &td.seam_attributes);
    assert_eq!(r.td_attributes, &td.td_attributes);
    assert_eq!(r.xfam, &td.xfam);
    assert_eq!(r.mr_td, &td.mr_td);
    assert_eq!(r.mr_config_id, &td.mr_config_id);
    assert_eq!(r.mr_owner, &td.mr_owner);
    assert_eq!(r.mr_owner_config, &td.mr_owner_config);
    assert_eq!(r.rtmr, [&td.rt_mr0, &td.rt_mr1, &td.rt_mr2, &td.rt_mr3]);
    assert_eq!(r.report_data, &td.report_data);
    match &theirs.report {
        Report::TD10(_) => {
            assert_eq!(ours.body_type, BodyType::Td10);
            assert_eq!((r.tee_tcb_svn2, r.mr_service_td, r.td15_ex), (None, None, None));
        }
        Report::TD15(t) => {
            assert_eq!(ours.body_type, BodyType::Td15);
            assert_eq!(r.tee_tcb_svn2, Some(&t.tee_tcb_svn2));
            assert_eq!(r.mr_service_td, Some(&t.mr_service_td));
            assert_eq!(r.td15_ex, None);
        }
        Report::TD15Ex(t) => {
            assert_eq!(ours.body_type, BodyType::Td15Ex);
            assert_eq!(r.tee_tcb_svn2, Some(&t.base.tee_tcb_svn2));
            assert_eq!(r.mr_service_td, Some(&t.base.mr_service_td));
            // The extension, field by field, from its raw bytes.
            let ex = r.td15_ex.unwrap();
            assert_eq!(ex[0], t.vmid);
            assert_eq!(&ex[1..33], &t.td_id);
            assert_eq!(&ex[33..81], &t.dev_info);
            assert_eq!(&ex[81..129], &t.init_service_td_hash);
            assert_eq!(&ex[129..137], &t.init_service_td_attributes);
            assert_eq!(&ex[137..153], &t.init_cpu_svn);
            assert_eq!(&ex[153..169], &t.init_tee_tcb_svn);
            assert_eq!(&ex[169..181], &t.init_tee_fmspc);
            assert_eq!(&ex[181..229], &t.cur_service_td_hash);
            assert_eq!(&ex[229..237], &t.cur_service_td_attributes);
        }
        Report::SgxEnclave(_) => panic!("SGX accepted"),
    }

    let DcapAuth::V4(a) = &theirs.auth_data else { panic!("v3 auth data in a TDX quote") };
    assert_eq!(ours.auth.ecdsa_signature, &a.ecdsa_signature);
    assert_eq!(ours.auth.attestation_key, &a.ecdsa_attestation_key);
    assert_eq!(a.certification_data.cert_type, 6);
    let q = &a.qe_report_data;
    assert_eq!(ours.auth.qe_report, &q.qe_report);
    assert_eq!(ours.auth.qe_report_signature, &q.qe_report_signature);
    assert_eq!(ours.auth.qe_auth_data, &q.qe_auth_data.data[..]);
    assert_eq!(ours.auth.cert_type, q.certification_data.cert_type);
    assert_eq!(ours.auth.cert_data, &q.certification_data.body.data[..]);
    assert_eq!(ours.signed.len(), theirs.signed_length());
    if ours.auth.cert_type == 5 {
        assert_eq!(ours.auth.cert_data, theirs.raw_cert_chain().unwrap());
    }
    assert_eq!(ours.raw, &theirs.encode()[..], "raw is the quote without padding");
}

/// Compares the two parsers on `bytes` under the agreement rule.
fn differential(bytes: &[u8]) -> Result<(), String> {
    let ours = Quote::parse(bytes);
    let theirs = DcapQuote::parse(bytes);
    match (ours, theirs) {
        (Ok(o), Ok(t)) => {
            assert_same(&o, &t);
            Ok(())
        }
        (Ok(_), Err(e)) => Err(format!("we accepted what dcap-qvl refuses: {e}")),
        (Err(_), Err(_)) => Ok(()),
        (Err(e), Ok(t)) => {
            let ignored_bytes = t.encode() != bytes;
            let why = match e {
                Error::TrailingBytes if ignored_bytes => true,
                Error::Unsupported => {
                    t.report.is_sgx()
                        || t.header.attestation_key_type != 2
                        || t.header.tee_type != 0x81
                }
                Error::Malformed => match &t.auth_data {
                    DcapAuth::V4(a) => a.certification_data.cert_type != 6,
                    DcapAuth::V3(_) => true,
                },
                _ => false,
            };
            if why {
                Ok(())
            } else {
                Err(format!("only dcap-qvl accepted; our {e:?} is not a documented strictness"))
            }
        }
    }
}

#[test]
fn samples_parse_and_agree_field_by_field() {
    for (name, bytes) in SAMPLES {
        let ours = Quote::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let theirs = DcapQuote::parse(bytes).unwrap();
        assert_same(&ours, &theirs);
        assert!(!ours.is_debug(), "{name} is a production TD");
        assert_eq!(ours.raw.len() + ours.padding, bytes.len());
    }
    // The v4 sample comes zero-padded to 5006 bytes, the v5 ones exact.
    let padding: Vec<_> = SAMPLES.iter().map(|(_, b)| Quote::parse(b).unwrap().padding).collect();
    assert_eq!(padding, [70, 0, 0]);
    let kinds: Vec<_> = SAMPLES.iter().map(|(_, b)| Quote::parse(b).unwrap().body_type).collect();
    assert_eq!(kinds, [BodyType::Td10, BodyType::Td15, BodyType::Td15Ex]);
}

#[test]
fn sgx_and_other_tee_types_are_unsupported() {
    assert_eq!(Quote::parse(SGX), Err(Error::Unsupported));
    assert!(DcapQuote::parse(SGX).unwrap().report.is_sgx());
}

#[test]
fn every_truncation_is_refused() {
    for (name, bytes) in SAMPLES {
        let end = Quote::parse(bytes).unwrap().raw.len();
        for len in 0..bytes.len() {
            let r = Quote::parse(&bytes[..len]);
            if len < end {
                let e = r.err().unwrap_or_else(|| panic!("{name} cut at {len} parsed"));
                assert!(
                    matches!(e, Error::Truncated | Error::Malformed),
                    "{name} cut at {len}: {e:?}"
                );
            } else {
                assert!(r.is_ok(), "{name} cut at {len}, inside its padding");
            }
            differential(&bytes[..len]).unwrap();
        }
    }
}

#[test]
fn trailing_bytes_are_refused_and_zero_padding_is_not() {
    for (_, bytes) in SAMPLES {
        let mut padded = bytes.to_vec();
        padded.extend_from_slice(&[0; 100]);
        let q = Quote::parse(&padded).unwrap();
        assert_eq!(q.raw, Quote::parse(bytes).unwrap().raw);
        for tail in [1u8, 0x80, 0xff] {
            let mut longer = padded.clone();
            longer.push(tail);
            assert_eq!(Quote::parse(&longer), Err(Error::TrailingBytes));
            // dcap-qvl accepts it: the documented difference.
            assert!(DcapQuote::parse(&longer).is_ok());
            differential(&longer).unwrap();
        }
    }
}

#[test]
fn inconsistent_lengths_are_refused() {
    let v4 = SAMPLES[0].1;
    let v5 = SAMPLES[1].1;
    // v5 body size that does not fit its body type.
    let mut bad = v5.to_vec();
    bad[50..54].copy_from_slice(&584u32.to_le_bytes());
    assert_eq!(Quote::parse(&bad), Err(Error::Malformed));
    differential(&bad).unwrap();
    // Unknown v5 body type, SGX body type.
    for ty in [0u16, 1, 5, 0xffff] {
        bad = v5.to_vec();
        bad[48..50].copy_from_slice(&ty.to_le_bytes());
        assert_eq!(Quote::parse(&bad), Err(Error::Unsupported), "body type {ty}");
    }
    // Other versions and key types.
    for version in [0u16, 3, 6] {
        bad = v4.to_vec();
        bad[0..2].copy_from_slice(&version.to_le_bytes());
        assert_eq!(Quote::parse(&bad), Err(Error::Unsupported), "version {version}");
    }
    bad = v4.to_vec();
    bad[2..4].copy_from_slice(&3u16.to_le_bytes());
    assert_eq!(Quote::parse(&bad), Err(Error::Unsupported));
    differential(&bad).unwrap();
    // Auth data size one byte short, one byte long, huge.
    let auth_at = 48 + 584;
    let auth_len = u32::from_le_bytes(v4[auth_at..auth_at + 4].try_into().unwrap());
    for wrong in [auth_len - 1, auth_len + 1, u32::MAX] {
        bad = v4.to_vec();
        bad[auth_at..auth_at + 4].copy_from_slice(&wrong.to_le_bytes());
        assert!(Quote::parse(&bad).is_err(), "auth size {wrong}");
        differential(&bad).unwrap();
    }
    // Outer certification data type other than 6.
    bad = v4.to_vec();
    let cert_type_at = auth_at + 4 + 128;
    bad[cert_type_at..cert_type_at + 2].copy_from_slice(&5u16.to_le_bytes());
    assert_eq!(Quote::parse(&bad), Err(Error::Malformed));
    differential(&bad).unwrap();
}

#[derive(Debug, Clone)]
enum Mutation {
    Set { at: usize, value: u8 },
    Length { at: usize, value: u32 },
    Truncate { len: usize },
    Append { bytes: Vec<u8> },
    Delete { at: usize },
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        3 => (any::<usize>(), prop_oneof![0u32..16, 5000..6000u32, any::<u32>()])
            .prop_map(|(at, value)| Mutation::Length { at, value }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => proptest::collection::vec(any::<u8>(), 1..8).prop_map(|bytes| Mutation::Append { bytes }),
        1 => any::<usize>().prop_map(|at| Mutation::Delete { at }),
    ]
}

/// Offsets where length fields live in a sample (and a few around them),
/// so length mutations land where they matter.
fn length_offsets(bytes: &[u8]) -> Vec<usize> {
    let q = Quote::parse(bytes).unwrap();
    let auth_at = q.signed.len();
    let qe_auth_at = auth_at + 4 + 128 + 6 + 384 + 64;
    let inner_at = qe_auth_at + 2 + q.auth.qe_auth_data.len() + 2;
    vec![50, auth_at, auth_at + 4 + 128 + 2, qe_auth_at, inner_at]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_samples(sample in 0usize..3, m in arb_mutation()) {
        let bytes = SAMPLES[sample].1;
        let mut v = bytes.to_vec();
        match &m {
            Mutation::Set { at, value } => v[at % bytes.len()] = *value,
            Mutation::Length { at, value } => {
                let offsets = length_offsets(bytes);
                let at = offsets[at % offsets.len()];
                if at + 4 <= v.len() {
                    v[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
            Mutation::Truncate { len } => v.truncate(len % bytes.len()),
            Mutation::Append { bytes } => v.extend_from_slice(bytes),
            Mutation::Delete { at } => {
                v.remove(at % bytes.len());
            }
        }
        differential(&v).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        differential(&bytes).map_err(TestCaseError::fail)?;
    }
}
