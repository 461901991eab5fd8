//! The metrics endpoint (`serve --metrics`), scraped as Prometheus would
//! and read with a Prometheus text parser: every response counted by
//! command and outcome, refusals by reason, claims of the shared marks,
//! the journal's syncs and size, the rollback anchor; `/health` says 200
//! while dstack, the marks database and the journal answer and 503 once the
//! database is gone. Clients that send garbage, stall, or ask for anything
//! else get an answer or a closed connection, and signing never notices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use tee_client::Client;
use tee_core::protocol::*;
use tee_host::backend::open_device;
use tee_host::metrics::Metrics;
use tee_host::metrics::endpoint::{MetricsHandle, serve_metrics};
use tee_host::server::{Limits, serve_metered};
use tee_testkit::Pair;
use tee_tests::postgres::Cluster;
use tee_tests::replica::{action, app};
use tee_tests::signer::{config, derive_typed};
use tee_transport::{Endpoint, connect};

/// GET `path` on the endpoint: the status and the body.
fn get(m: &MetricsHandle, path: &str) -> (u16, String) {
    let Endpoint::Tcp(addr) = m.endpoint() else { panic!("tcp") };
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

fn scrape(m: &MetricsHandle) -> Scrape {
    let (status, body) = get(m, "/metrics");
    assert_eq!(status, 200);
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of `metric` whose labels include `labels`.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => panic!("no summaries"),
        })
}

#[test]
fn a_scrape_counts_what_was_served_and_health_follows_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let db = Cluster::start(false);
    let url = db.socket_url();
    let mut p =
        Pair::with(open_device(&config(&dir.path().join("a"), &dstack, Some(&url))).unwrap());
    derive_typed(&mut p);
    let metrics = Metrics::new();
    let socket = Endpoint::Unix(dir.path().join("signer.sock"));
    let device = Arc::new(Mutex::new(*p.device));
    let limits = Limits { max_connections: 4, max_per_peer: 4, ..Limits::default() };
    let _server =
        serve_metered(device, std::slice::from_ref(&socket), &[], limits, Some(metrics.clone()))
            .unwrap();
    let m = serve_metrics(metrics, &Endpoint::Tcp("127.0.0.1:0".into())).unwrap();
    let mut c = Client::new(connect(&socket, Duration::from_secs(10)).unwrap());

    // Five signatures, a replay, a slot with no key, and a frame of garbage.
    for seq in 1..=5 {
        c.call(&Sign { slot: 0, sequence: seq, action: action(1, seq) }).unwrap();
    }
    assert!(c.call(&Sign { slot: 0, sequence: 3, action: action(1, 3) }).is_err());
    assert!(c.call(&GetPublicKey { slot: 9 }).is_err());
    let mut raw = tee_transport::connect(&socket, Duration::from_secs(10)).unwrap();
    raw.write_all(b"\x07garbage\x00").unwrap();
    let mut byte = [0u8; 64];
    let _ = raw.read(&mut byte);
    // Health over the wire protocol too.
    c.call(&Health).unwrap();

    let s = scrape(&m);
    let responses = |command, outcome| {
        value(&s, "tee_signer_responses_total", &[("command", command), ("outcome", outcome)])
    };
    assert_eq!(responses("Sign", "ok"), Some(5.0));
    assert_eq!(responses("Sign", "Replay"), Some(1.0));
    assert_eq!(responses("GetPublicKey", "SlotEmpty"), Some(1.0));
    assert_eq!(responses("Health", "ok"), Some(1.0));
    assert_eq!(responses("unknown", "Frame"), Some(1.0));
    assert_eq!(value(&s, "tee_signer_bad_frames_total", &[]), Some(1.0));
    assert_eq!(value(&s, "tee_signer_marks_claims_total", &[("outcome", "ok")]), Some(5.0));
    // The replay was refused by the replica's own marks, before any claim.
    assert_eq!(value(&s, "tee_signer_marks_claim_seconds", &[]), Some(5.0));
    assert!(value(&s, "tee_signer_commit_wait_seconds", &[]).unwrap() >= 5.0);
    assert!(value(&s, "tee_signer_journal_syncs_total", &[]).unwrap() >= 1.0);
    let journal = std::fs::metadata(dir.path().join("a").join(tee_store::store::JOURNAL)).unwrap();
    assert_eq!(value(&s, "tee_signer_journal_bytes", &[]), Some(journal.len() as f64));
    assert!(value(&s, "tee_signer_anchor_recorded_bytes", &[]).unwrap() > 0.0);
    assert_eq!(value(&s, "tee_signer_connections_open", &[]), Some(2.0));
    assert_eq!(value(&s, "tee_signer_up", &[("part", "marks")]), Some(1.0));
    assert_eq!(value(&s, "tee_signer_up", &[("part", "dstack")]), Some(1.0));
    assert_eq!(value(&s, "tee_signer_up", &[("part", "journal")]), Some(1.0));
    // Every family has its help and type.
    let families: HashMap<_, _> = s.docs.iter().collect();
    assert!(families.contains_key(&"tee_signer_responses_total".to_owned()));

    let (status, body) = get(&m, "/health");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &health["healthy"], &health["marks"]), (200, &true.into(), &"ok".into()));
    assert_eq!(health["journal"]["bytes"], journal.len());

    // What a stranger may send the endpoint: other paths and methods, a
    // request that never ends, a head over the bound. Each is answered or
    // closed; the endpoint and signing go on.
    assert_eq!(get(&m, "/keys").0, 404);
    let Endpoint::Tcp(addr) = m.endpoint() else { panic!() };
    let mut post = std::net::TcpStream::connect(addr).unwrap();
    post.write_all(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").unwrap();
    let mut out = String::new();
    post.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    let mut huge = std::net::TcpStream::connect(addr).unwrap();
    let _ = huge.write_all(&vec![b'a'; 64 * 1024]);
    let mut out = String::new();
    let _ = huge.read_to_string(&mut out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431"), "{out}");
    let _stalled = std::net::TcpStream::connect(addr).unwrap();
    c.call(&Sign { slot: 0, sequence: 6, action: action(1, 6) }).unwrap();
    assert_eq!(get(&m, "/metrics").0, 200, "a stalled client holds the endpoint for 2 s at most");

    // The database goes away: health says so, the gauge drops, signing is
    // refused (never signed on local marks).
    db.kill();
    let (status, body) = get(&m, "/health");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, &health["healthy"], &health["marks"]),
        (503, &false.into(), &"failed".into())
    );
    assert_eq!(value(&scrape(&m), "tee_signer_up", &[("part", "marks")]), Some(0.0));
    assert!(c.call(&Sign { slot: 0, sequence: 7, action: action(1, 7) }).is_err());
    let s = scrape(&m);
    assert_eq!(value(&s, "tee_signer_marks_claims_total", &[("outcome", "failed")]), Some(1.0));
    assert_eq!(
        value(&s, "tee_signer_responses_total", &[("command", "Sign"), ("outcome", "Storage")]),
        Some(1.0)
    );
}

proptest::proptest! {
    /// Whatever bytes a stranger sends as a request head, the endpoint
    /// reads a route from them (never a panic), and only the two exact GETs
    /// reach the signer's counts.
    #[test]
    fn any_request_head_gets_a_route(head in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..512)) {
        use tee_host::metrics::endpoint::{Route, route};
        let r = route(&head);
        if matches!(r, Route::Metrics | Route::Health) {
            proptest::prop_assert!(head.starts_with(b"GET /metrics") || head.starts_with(b"GET /health"));
        }
    }
}

#[test]
fn request_heads_route_as_written() {
    use tee_host::metrics::endpoint::{Route, route};
    assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
    assert_eq!(route(b"GET /health?x=1 HTTP/1.1\r\n\r\n"), Route::Health);
    assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
    assert_eq!(route(b"get /metrics HTTP/1.1\r\n\r\n"), Route::NotAllowed);
    assert_eq!(route(b"\xff\xfe"), Route::NotAllowed);
    assert_eq!(route(b""), Route::NotAllowed);
}
