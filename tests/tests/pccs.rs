//! Collateral from a PCCS: a local fake PCCS (a thread on 127.0.0.1 serving
//! the PCCS API v4 responses built from dcap-qvl's sample collateral) is
//! fetched from, and the sample quote verifies with what came back. Nothing
//! here reaches beyond loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use dcap_qvl::QuoteCollateralV3;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tee_core::{Address, B256};
use tee_sim::SAMPLE_QUOTE;
use tee_verify::pccs::{Pccs, PccsError};
use tee_verify::*;

const V4_COLLATERAL: &str = include_str!("../data/dcap-qvl/tdx_quote_collateral.json");
/// Inside the v4 sample collateral's validity window.
const NOW: u64 = 1_750_809_600; // 2025-06-25T00:00:00Z

/// What the fake serves differently from a well-behaved PCCS.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// `tcb` answers 404.
    NoTcb,
    /// `tcb` is served without its issuer chain header.
    NoChainHeader,
    /// One character of the signed TCB info changed.
    TamperedTcb,
    /// The TCB info body is not JSON.
    GarbageTcb,
}

struct FakePccs {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn respond(stream: &mut impl Write, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
}

fn spawn_pccs(c: QuoteCollateralV3, fault: Fault) -> FakePccs {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push(target.clone());
            let chain = |pem: &str| utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string();
            let path = target.split('?').next().unwrap_or("");
            match path {
                "/sgx/certification/v4/pckcrl" => respond(
                    &mut stream,
                    "200 OK",
                    &[("SGX-PCK-CRL-Issuer-Chain", chain(&c.pck_crl_issuer_chain))],
                    &c.pck_crl,
                ),
                "/tdx/certification/v4/tcb" if fault == Fault::NoTcb => {
                    respond(&mut stream, "404 Not Found", &[], b"")
                }
                "/tdx/certification/v4/tcb" => {
                    let tcb_info = match fault {
                        Fault::TamperedTcb => c.tcb_info.replacen("UpToDate", "UpToDatE", 1),
                        _ => c.tcb_info.clone(),
                    };
                    let body = if fault == Fault::GarbageTcb {
                        "<html>maintenance</html>".to_owned()
                    } else {
                        format!(
                            r#"{{"tcbInfo":{tcb_info},"signature":"{}"}}"#,
                            hex::encode(&c.tcb_info_signature)
                        )
                    };
                    let headers = if fault == Fault::NoChainHeader {
                        vec![]
                    } else {
                        vec![("TCB-Info-Issuer-Chain", chain(&c.tcb_info_issuer_chain))]
                    };
                    respond(&mut stream, "200 OK", &headers, body.as_bytes())
                }
                "/tdx/certification/v4/qe/identity" => respond(
                    &mut stream,
                    "200 OK",
                    &[("SGX-Enclave-Identity-Issuer-Chain", chain(&c.qe_identity_issuer_chain))],
                    format!(
                        r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
                        c.qe_identity,
                        hex::encode(&c.qe_identity_signature)
                    )
                    .as_bytes(),
                ),
                "/sgx/certification/v4/rootcacrl" => {
                    respond(&mut stream, "200 OK", &[], hex::encode(&c.root_ca_crl).as_bytes())
                }
                _ => respond(&mut stream, "404 Not Found", &[], b""),
            }
        }
    });
    FakePccs { url, requests }
}

fn sample_collateral() -> QuoteCollateralV3 {
    serde_json::from_str(V4_COLLATERAL).unwrap()
}

fn verify_with(pccs: Pccs) -> Report {
    let v = Verifier {
        policy: Policy::default(),
        collateral: None,
        pccs: Some(pccs),
        simulated_root: Some(tee_sim::root()),
    };
    let evidence = Evidence { quote: SAMPLE_QUOTE, event_log: None, key_chain: None };
    v.verify(&evidence, &Address::ZERO, &Expected::Challenge(B256::ZERO), NOW)
}

#[test]
fn fetched_collateral_is_the_served_one_and_verifies_the_sample() {
    let stored = sample_collateral();
    let fake = spawn_pccs(stored.clone(), Fault::None);
    // The `/sgx/certification/v4` suffix a PCCS URL is often given with is accepted.
    let pccs = Pccs::new(&format!("{}/sgx/certification/v4/", fake.url), None).unwrap();
    let fetched = pccs.collateral(SAMPLE_QUOTE).unwrap();

    assert_eq!(fetched.pck_crl_issuer_chain, stored.pck_crl_issuer_chain);
    assert_eq!(fetched.pck_crl, stored.pck_crl);
    assert_eq!(fetched.root_ca_crl, stored.root_ca_crl);
    assert_eq!(fetched.tcb_info_issuer_chain, stored.tcb_info_issuer_chain);
    // The signed JSON is taken byte for byte, never re-serialised.
    assert_eq!(fetched.tcb_info, stored.tcb_info);
    assert_eq!(fetched.tcb_info_signature, stored.tcb_info_signature);
    assert_eq!(fetched.qe_identity, stored.qe_identity);
    assert_eq!(fetched.qe_identity_signature, stored.qe_identity_signature);
    assert!(fetched.pck_certificate_chain.as_deref().unwrap().contains("BEGIN CERTIFICATE"));

    // The requests name the quote's FMSPC and PCK CA, as dcap-qvl reads them.
    let dcap = dcap_qvl::quote::Quote::parse(SAMPLE_QUOTE).unwrap();
    let fmspc = hex::encode_upper(dcap_qvl::intel::quote_fmspc(&dcap).unwrap());
    let ca = dcap_qvl::intel::quote_ca(&dcap).unwrap().as_id_str();
    let requests = fake.requests.lock().unwrap().clone();
    assert!(requests.contains(&format!("/tdx/certification/v4/tcb?fmspc={fmspc}")), "{requests:?}");
    assert!(
        requests.contains(&format!("/sgx/certification/v4/pckcrl?ca={ca}&encoding=der")),
        "{requests:?}"
    );

    let r = verify_with(Pccs::new(&fake.url, None).unwrap());
    assert!(matches!(r.status(Check::Collateral), Some(Status::Passed(_))), "{r}");
    assert!(matches!(r.status(Check::Dcap), Some(Status::Passed(_))), "{r}");
    assert_eq!(r.status(Check::TcbStatus), Some(&Status::Passed("UpToDate".into())), "{r}");
}

#[test]
fn pccs_faults_are_reported_with_their_reason() {
    let stored = sample_collateral();

    let fake = spawn_pccs(stored.clone(), Fault::NoTcb);
    let err = Pccs::new(&fake.url, None).unwrap().collateral(SAMPLE_QUOTE).unwrap_err();
    assert!(
        matches!(&err, PccsError::Http { url, message } if url.contains("/tcb?fmspc=") && message.contains("404")),
        "{err}"
    );
    let r = verify_with(Pccs::new(&fake.url, None).unwrap());
    assert!(
        matches!(r.status(Check::Collateral), Some(Status::Failed(Failure::CollateralFetch(m))) if m.contains("404")),
        "{r}"
    );
    assert!(matches!(r.status(Check::Dcap), Some(Status::Skipped(_))), "{r}");
    assert!(!r.verified());

    let fake = spawn_pccs(stored.clone(), Fault::NoChainHeader);
    let err = Pccs::new(&fake.url, None).unwrap().collateral(SAMPLE_QUOTE).unwrap_err();
    assert!(
        matches!(&err, PccsError::Response { message, .. } if message.contains("issuer chain")),
        "{err}"
    );

    let fake = spawn_pccs(stored.clone(), Fault::GarbageTcb);
    let err = Pccs::new(&fake.url, None).unwrap().collateral(SAMPLE_QUOTE).unwrap_err();
    assert!(
        matches!(&err, PccsError::Response { message, .. } if message.contains("not JSON")),
        "{err}"
    );

    // A PCCS that alters the signed TCB info is caught by DCAP, not trusted.
    let fake = spawn_pccs(stored, Fault::TamperedTcb);
    let r = verify_with(Pccs::new(&fake.url, None).unwrap());
    assert!(matches!(r.status(Check::Dcap), Some(Status::Failed(Failure::Dcap(_)))), "{r}");
    assert!(!r.verified());

    // Nobody listening: a typed error, not a hang.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = Pccs::new(&url, None).unwrap().collateral(SAMPLE_QUOTE).unwrap_err();
    assert!(matches!(err, PccsError::Http { .. }), "{err}");

    // A quote that is not one cannot name its collateral.
    let err = Pccs::new(&url, None).unwrap().collateral(&SAMPLE_QUOTE[..100]).unwrap_err();
    assert!(matches!(err, PccsError::Quote(_)), "{err}");

    // A CA file with no certificate is refused up front.
    let err = Pccs::new(&url, Some(b"not a pem")).unwrap_err();
    assert!(matches!(err, PccsError::Config(_)), "{err}");
}

/// `tcb` through a PCCS serving the real sample collateral, asked at chosen
/// times: inside its window (accepted, days left), three days before its
/// `nextUpdate` (a warning), after it (nothing verifies); a tampered TCB
/// info is a DCAP failure the report names; a PCCS that does not answer is
/// a fetch error, not a report.
#[test]
fn the_tcb_of_the_sample_from_a_pccs_at_chosen_times() {
    let fake = spawn_pccs(sample_collateral(), Fault::None);
    let v = Verifier {
        policy: Policy::default(),
        collateral: None,
        pccs: Some(Pccs::new(&fake.url, None).unwrap()),
        simulated_root: None,
    };
    let t = v.tcb(SAMPLE_QUOTE, NOW).unwrap();
    assert_eq!((t.status.as_deref(), t.accepted), (Some("UpToDate"), true), "{t:?}");
    let next = chrono::DateTime::parse_from_rfc3339(&t.next_update).unwrap().timestamp() as u64;
    let soon = v.tcb(SAMPLE_QUOTE, next - 3 * 86_400).unwrap();
    assert!(soon.accepted && soon.expires_soon(), "{soon:?}");
    let after = v.tcb(SAMPLE_QUOTE, next + 1).unwrap();
    assert!(!after.accepted && after.seconds_left < 0 && after.status.is_none(), "{after:?}");

    let tampered = spawn_pccs(sample_collateral(), Fault::TamperedTcb);
    let v = Verifier { pccs: Some(Pccs::new(&tampered.url, None).unwrap()), ..v };
    let t = v.tcb(SAMPLE_QUOTE, NOW).unwrap();
    assert!(!t.accepted && t.dcap_error.is_some(), "a TCB info the PCCS altered: {t:?}");

    let gone = Verifier { pccs: Some(Pccs::new("http://127.0.0.1:1", None).unwrap()), ..v };
    assert!(matches!(gone.tcb(SAMPLE_QUOTE, NOW), Err(Failure::CollateralFetch(_))));
}

/// A validator's collateral cache (`--collateral-cache`): one fetch per
/// platform while the collateral is valid, fetched again after its
/// `nextUpdate`, and a cache file someone edited or swapped is never used
/// as it is (fetched again, or refused by DCAP: the collateral is
/// Intel-signed).
#[test]
fn cached_collateral_is_reused_until_its_next_update() {
    use tee_verify::pccs::Source;
    let fake = spawn_pccs(sample_collateral(), Fault::None);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("collateral");
    let pccs = Pccs::new(&fake.url, None).unwrap().with_cache(&cache).unwrap();
    let asked = || fake.requests.lock().unwrap().len();
    let (first, src) = pccs.collateral_at(SAMPLE_QUOTE, NOW).unwrap();
    assert_eq!(src, Source::Fetched);
    let after_first = asked();
    assert!(after_first >= 4, "CRL, TCB info, QE identity, root CRL");
    let (second, src) = pccs.collateral_at(SAMPLE_QUOTE, NOW + 3600).unwrap();
    assert_eq!((src, asked()), (Source::Cached, after_first), "no request while valid");
    assert_eq!(second.tcb_info, first.tcb_info);
    let (fmspc, next) = pccs.last_seen().unwrap();
    assert_eq!(
        fmspc,
        hex::encode_upper(
            dcap_qvl::intel::quote_fmspc(&dcap_qvl::quote::Quote::parse(SAMPLE_QUOTE).unwrap())
                .unwrap()
        )
    );
    let next = u64::try_from(next).unwrap();
    // Past its nextUpdate: fetched again.
    let (_, src) = pccs.collateral_at(SAMPLE_QUOTE, next + 1).unwrap();
    assert_eq!(src, Source::Fetched);
    assert!(asked() > after_first);
    // A cache file that does not read: fetched again, and rewritten.
    let file = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&file, b"{ not collateral").unwrap();
    assert_eq!(pccs.collateral_at(SAMPLE_QUOTE, NOW).unwrap().1, Source::Fetched);
    // A cache file whose TCB info someone edited (keeping the dates): used,
    // and DCAP refuses it, as it refuses the same from a PCCS.
    let mut edited: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let tcb = edited["tcb_info"].as_str().unwrap().replace("UpToDate", "UpToDatf");
    edited["tcb_info"] = tcb.into();
    std::fs::write(&file, edited.to_string()).unwrap();
    let v = Verifier {
        policy: Policy::default(),
        collateral: None,
        pccs: Some(pccs.clone()),
        simulated_root: None,
    };
    let t = v.tcb(SAMPLE_QUOTE, NOW).unwrap();
    assert!(!t.accepted && t.dcap_error.is_some(), "{t:?}");
    // The directory is the validator's own.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o700);
}
