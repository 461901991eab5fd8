//! `serve --metrics`: the operator's scrape of a running signer, over a unix
//! socket, as curl or a Prometheus agent beside it would make it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::io::{Read, Write};

use common::*;

fn get(socket: &std::path::Path, path: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: signer\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_running_signer_serves_its_metrics_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let (state, socket) = (dir.path().join("state"), dir.path().join("signer.sock"));
    let metrics = dir.path().join("metrics.sock");
    let at = format!("unix:{}", metrics.display());
    let _server = serve_with(&state, &socket, Some(ADMIN), &["--metrics", &at]);
    let conn = format!("unix:{}", socket.display());
    ok(&["info", "-c", &conn]);
    let scraped = get(&metrics, "/metrics");
    assert!(scraped.starts_with("HTTP/1.1 200 OK"), "{scraped}");
    assert!(scraped.contains("text/plain; version=0.0.4"), "{scraped}");
    assert!(
        scraped.contains("tee_signer_responses_total{command=\"DeviceInfo\",outcome=\"ok\"}"),
        "{scraped}"
    );
    assert!(scraped.contains("tee_signer_up{part=\"dstack\"} 1"), "{scraped}");
    let health = get(&metrics, "/health");
    assert!(health.starts_with("HTTP/1.1 200 OK"), "{health}");
    let body: serde_json::Value =
        serde_json::from_str(health.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["healthy"], true);
    assert_eq!(body["dstack"], "ok");
    assert_eq!(body["marks"], "notUsed");
    assert!(body["journal"]["bytes"].as_u64().unwrap() > 0, "{body}");
}
