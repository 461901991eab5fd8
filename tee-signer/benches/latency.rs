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
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tee_client::Client;
use tee_client::provider::PhalaDstackProvider;
use tee_core::protocol::DeviceInfo;
use tee_core::{ActionKind, sample};
use tee_transport::{Endpoint, connect};
use tee_verify::Verifier;

const BIN: &str = env!("CARGO_BIN_EXE_tee-signer");
const ADMIN_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ADMIN: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

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
    let state = dir.path().join("state");
    let socket = dir.path().join("signer.sock");
    let conn = format!("unix:{}", socket.display());
    let mut server = Command::new(BIN)
        .args(["serve", "--simulated", "--state", state.to_str().unwrap(), "--listen", &conn])
        .args(["--admin", ADMIN])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = std::io::BufReader::new(server.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut log, &mut line).unwrap() > 0, "signer exited");
        if line.contains("signer running") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    let key_file = dir.path().join("admin.key");
    std::fs::write(&key_file, format!("0x{ADMIN_KEY}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();
    run(&["derive-key", "-c", &conn, "--admin-key-file", key_file, "--path", "bench/agent"]);
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "kinds = [\"setAgentURI\"]\nchains = \"any\"\ncontracts = \"any\"\nagents = \"any\"\n\
         max_value_wei = \"0\"\nmax_gas_limit = 10000000\nmax_fee_per_gas_wei = \"1000000000000\"\n\
         max_deadline_ahead_secs = 300\n",
    )
    .unwrap();
    run(&[
        "set-policy",
        "-c",
        &conn,
        "--admin-key-file",
        key_file,
        "--policy",
        policy.to_str().unwrap(),
    ]);

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
    let _ = server.kill();
    let _ = server.wait();
}
