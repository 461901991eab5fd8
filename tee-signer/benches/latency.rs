//! What a person (or a script) waits for, against a `tee-signer serve
//! --simulated` on a unix socket, in one run:
//!
//! - a new process doing one request (`tee-signer info`) against one doing
//!   none (`tee-signer --version`): the difference is the connection and the
//!   request;
//! - a new connection's first request (`DeviceInfo`), in this process;
//! - an attested signature on a kept connection (the provider's session,
//!   what `TeeAccount` and the alloy signer use), against one on a fresh
//!   provider (a new connection, `DeviceInfo` asked again).
//!
//! ```sh
//! cargo bench -p tee-signer --bench latency     # LATENCY_RUNS=200 by default
//! ```
//! Prints medians and p99 in milliseconds, and the ratios within the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::print_stdout)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tee_client::Client;
use tee_client::provider::PhalaDstackProvider;
use tee_core::protocol::DeviceInfo;
use tee_core::{ActionKind, sample};
use tee_transport::{Endpoint, connect};
use tee_verify::Verifier;

/// The CLI tests' signer start-up, admin key and policy files.
#[path = "../tests/common/mod.rs"]
mod common;

use common::{
    ADMIN, BIN, Paths, admin_key_file, derive_key, open_policy_file, paths, serve, set_policy,
};

/// Runs `f` `n` times; its durations sorted.
fn times(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    t.sort();
    t
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn at(t: &[Duration], q: f64) -> Duration {
    t[((t.len() - 1) as f64 * q) as usize]
}

fn row(name: &str, t: &[Duration]) -> Duration {
    let p50 = at(t, 0.5);
    println!("{name:<52} {:>8.3} {:>8.3}", ms(p50), ms(at(t, 0.99)));
    p50
}

fn run(args: &[&str]) {
    let ok = Command::new(BIN).args(args).stdout(Stdio::null()).status().unwrap().success();
    assert!(ok, "{args:?}");
}

fn main() {
    let n: usize = std::env::var("LATENCY_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let Paths { state, socket, conn } = paths(dir.path());
    let _server = serve(&state, &socket, Some(ADMIN));
    let key_file = &admin_key_file(dir.path());
    derive_key(&conn, key_file, "bench/agent");
    set_policy(&conn, key_file, &open_policy_file(dir.path(), "policy.toml", &["setAgentURI"]));

    println!("{n} runs each; milliseconds\n{:<52} {:>8} {:>8}", "", "p50", "p99");
    let version = row("process: tee-signer --version", &times(n, || run(&["--version"])));
    let info = row("process: tee-signer info", &times(n, || run(&["info", "-c", &conn])));
    let endpoint = Endpoint::Unix(socket.clone());
    let first = row(
        "new connection: first request (DeviceInfo)",
        &times(n, || {
            let mut c = Client::new(connect(&endpoint, Duration::from_secs(10)).unwrap());
            c.call(&DeviceInfo).unwrap();
        }),
    );
    let action = sample::action(ActionKind::SetAgentUri);
    let kept = PhalaDstackProvider::new(endpoint.clone(), Verifier::default());
    let warm = row(
        "attested signature, kept connection",
        &times(n, || {
            kept.sign_slot(0, &action).unwrap();
        }),
    );
    let cold = row(
        "attested signature, new provider (new connection)",
        &times(n, || {
            PhalaDstackProvider::new(endpoint.clone(), Verifier::default())
                .sign_slot(0, &action)
                .unwrap();
        }),
    );
    println!(
        "\ninfo - --version: {:.3} ms; new connection's first request: {:.3} ms; \
         attested signature kept/new connection: {:.2}",
        ms(info.saturating_sub(version)),
        ms(first),
        warm.as_secs_f64() / cold.as_secs_f64(),
    );
    assert_eq!(kept.stats().connections, 1, "one connection for every signature");
}
