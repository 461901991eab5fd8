//! The simulated dstack's HTTP API as its clients meet it: the signer's
//! own dstack client (`tee_host::dstack`), the official dstack SDK, and
//! raw HTTP, on unix sockets and TCP.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{Read, Write};

use tee_core::binding::{self, Purpose};
use tee_core::quote::Quote;
use tee_core::{B256, SigningKey};

use tee_host::dstack::Dstack;
use tee_sim::server::{MAX_BODY, SIMULATED_VERSION};
use tee_sim::{SimDstack, SimServer};
use tee_transport::Endpoint;
use tee_verify::eventlog;
use tee_verify::verify_key_chain;

fn sim() -> SimDstack {
    SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap()
}

/// The SDK's own client, against the simulator on both transports.
#[test]
fn dstack_sdk_talks_to_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let unix = SimServer::start(sim(), &Endpoint::Unix(dir.path().join("dstack.sock"))).unwrap();
    let tcp = SimServer::start(sim(), &Endpoint::Tcp("127.0.0.1:0".into())).unwrap();
    assert!(tcp.endpoint().starts_with("http://127.0.0.1:"));
    let reference = sim();
    for server in [&unix, &tcp] {
        let d = Dstack::new(Some(server.endpoint())).unwrap();
        let (secret, chain) = d.get_key("agent/1", "erc8004-signer").unwrap();
        let (want, _) = reference.get_key("agent/1", "erc8004-signer").unwrap();
        assert_eq!(*secret, *want, "the key is the simulated KMS's");
        let address = SigningKey::from_bytes(&secret).unwrap().address();
        let app = verify_key_chain(&chain, &address, Some(&[0x22; 20]), &reference.kms_root());
        assert!(app.is_ok(), "{app:?}");

        let challenge = B256([9; 32]);
        let rd = binding::bind(&address, Purpose::Challenge, &challenge);
        let q = d.get_quote(&rd).unwrap();
        let parsed = Quote::parse(&q.quote).unwrap();
        assert_eq!(parsed.report.report_data, &rd);
        assert_eq!(eventlog::replay(&q.event_log, 3).unwrap(), *parsed.report.rtmr[3]);
        let boot = eventlog::BootLog::read(&q.event_log).unwrap();
        assert_eq!(boot.get("compose-hash"), Some(&[0x33; 32][..]));

        let info = d.info().unwrap();
        assert_eq!(info.app_id, hex::encode([0x22; 20]));
        assert_eq!(info.compose_hash, hex::encode([0x33; 32]));
    }
}

/// Every method of the Rust `dstack-sdk` client, against the
/// simulator, checked on its values.
#[test]
fn every_method_of_the_rust_sdk() {
    use dstack_sdk::dstack_client::DstackClient;
    use dstack_sdk::dstack_client::TlsKeyConfig;
    let dir = tempfile::tempdir().unwrap();
    let compose = r#"{"manifest_version":2,"name":"t"}"#;
    let sim = SimDstack::with_app_compose(&[0x11; 32], [0x22; 20], compose).unwrap();
    let server = SimServer::start(sim, &Endpoint::Unix(dir.path().join("d.sock"))).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = DstackClient::new(Some(server.endpoint()));
        let v = c.version().await.unwrap();
        assert_eq!(v.version, SIMULATED_VERSION);
        let info = c.info().await.unwrap();
        use sha2::Digest;
        assert_eq!(info.tcb_info.app_compose, compose);
        assert_eq!(info.compose_hash, hex::encode(sha2::Sha256::digest(compose)));
        assert_eq!(info.tcb_info.compose_hash, info.compose_hash);
        assert_eq!(info.app_id, hex::encode([0x22; 20]));
        assert_eq!(info.mr_aggregated.len(), 64);

        let k1 = c.get_key(Some("a/1".into()), Some("p".into())).await.unwrap();
        let k2 = c.get_key(Some("a/1".into()), Some("p".into())).await.unwrap();
        assert_eq!(k1.key, k2.key, "a path's key is deterministic");
        assert_eq!(k1.signature_chain.len(), 2);

        let q = c.get_quote(b"hello".to_vec()).await.unwrap();
        let quote = hex::decode(&q.quote).unwrap();
        let parsed = Quote::parse(&quote).unwrap();
        assert_eq!(&parsed.report.report_data[..5], b"hello");
        let a = c.attest(b"hello".to_vec()).await.unwrap();
        let att = hex::decode(&a.attestation).unwrap();
        assert_eq!(&att[..2], &[0, 0], "V0, a dstack TDX quote");

        c.emit_event("agent-config".into(), b"v2".to_vec()).await.unwrap();
        let q = c.get_quote(b"x".to_vec()).await.unwrap();
        let log: Vec<eventlog::Event> = serde_json::from_str(&q.event_log).unwrap();
        assert_eq!(log.last().unwrap().event, "agent-config");
        let parsed_quote = hex::decode(&q.quote).unwrap();
        let parsed = Quote::parse(&parsed_quote).unwrap();
        assert_eq!(eventlog::replay(&log, 3).unwrap(), *parsed.report.rtmr[3]);

        for alg in ["secp256k1", "secp256k1_prehashed", "ed25519"] {
            let s = c.sign(alg, vec![9; 32]).await.unwrap();
            assert_eq!(s.signature_chain.len(), 3);
            let sig = hex::decode(&s.signature).unwrap();
            let pk = hex::decode(&s.public_key).unwrap();
            assert!(c.verify(alg, vec![9; 32], sig.clone(), pk.clone()).await.unwrap().valid);
            assert!(!c.verify(alg, vec![8; 32], sig, pk).await.unwrap().valid);
        }

        let config = TlsKeyConfig::builder()
            .subject("agent.example")
            .alt_names(vec!["agent.example".into(), "127.0.0.1".into()])
            .usage_ra_tls(true)
            .build();
        let tls = c.get_tls_key(config).await.unwrap();
        assert!(tls.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(tls.certificate_chain.len(), 3);
        assert!(tls.certificate_chain.iter().all(|c| c.starts_with("-----BEGIN CERTIFICATE")));
    });
}

#[test]
fn bad_requests_get_reasons_and_the_server_keeps_serving() {
    let server = SimServer::start(sim(), &Endpoint::Tcp("127.0.0.1:0".into())).unwrap();
    let addr = server.endpoint().trim_start_matches("http://").to_owned();
    let post = |path: &str, body: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    for (path, body, want) in [
        ("GetQuote", "{}", "400"),
        ("GetQuote", r#"{"report_data":"zz"}"#, "400"),
        ("GetQuote", r#"{"report_data":""}"#, "400"),
        ("GetQuote", &format!(r#"{{"report_data":"{}"}}"#, "00".repeat(65)), "400"),
        ("GetKey", r#"{"path":"a","algorithm":"rsa"}"#, "400"),
        ("Attest", "{}", "400"),
        ("EmitEvent", r#"{"event":"","payload":"00"}"#, "400"),
        ("Sign", r#"{"algorithm":"secp256k1_prehashed","data":"00"}"#, "400"),
        (
            "Verify",
            r#"{"algorithm":"ed25519","data":"00","signature":"00","public_key":"00"}"#,
            "400",
        ),
        ("GetTlsKey", r#"{"alt_names":["bäd"]}"#, "400"),
        ("GetTlsKey", r#"{"not_before":10,"not_after":5}"#, "400"),
        ("v0/Nope", "{}", "404"),
        ("GetKey", "not json", "400"),
        ("Nope", "{}", "404"),
    ] {
        let r = post(path, body);
        assert!(r.starts_with(&format!("HTTP/1.1 {want}")), "{path} {body}: {r}");
    }
    // Garbage that is not HTTP, then a good request.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(&[0xff; 300]).unwrap();
    drop(s);
    assert!(post("GetQuote", r#"{"report_data":"01"}"#).starts_with("HTTP/1.1 200"));
    // A body over the cap is refused.
    let big = format!(r#"{{"path":"{}"}}"#, "a".repeat(MAX_BODY));
    assert!(post("GetKey", &big).starts_with("HTTP/1.1 400"));
}
