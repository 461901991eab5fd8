//! Attested signatures through the JSON-RPC endpoint against the same
//! signatures asked on the signer's own socket, in one run: a signer on the
//! simulated dstack (the real server, a state directory on disk, every mark
//! fsynced, each signature's quote and evidence fetched), C clients each on
//! its own slot, for C = 1 and 4. Native: `PhalaDstackProvider::sign_json`
//! (what the CLI and Python call). Endpoint: `eth_signTypedData_v4` over
//! HTTP to `tee-signer rpc`'s server (which calls the same, then keeps the
//! attestation). The action: the identity registry's `AgentWalletSet`.
//! Printed per row: attested signatures/s, p50 and p99 latency, and the
//! endpoint's rate as a ratio of the native rate.
//!
//! ```text
//! cargo bench -p tee-rpc --bench endpoint          # RPC_BENCH_SECONDS=3 per row
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::indexing_slicing)]

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tee_client::provider::PhalaDstackProvider;
use tee_core::protocol::BackendKind;
use tee_core::{ActionKind, SigningKey};
use tee_host::backend::{SignerConfig, open_device};
use tee_host::server::{Limits, serve};
use tee_rpc::http::{Options, RpcServer};
use tee_rpc::{Config, Gateway};
use tee_testkit::{ADMIN_SECRET, sample};
use tee_transport::Endpoint;
use tee_verify::Verifier;

const SLOTS: u8 = 4;

fn wallet_set(address: &str) -> Value {
    let mut data =
        tee_client::actions::to_json(&sample::action(ActionKind::AgentWalletSet)).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    data["message"]["deadline"] = json!(now.as_secs() + 200);
    data["message"]["newWallet"] = json!(address);
    data
}

/// Runs `one(client)` on `clients` threads for `seconds`: the latencies and the time taken.
fn drive(clients: usize, seconds: f64, one: impl Fn(usize) + Sync) -> (Vec<Duration>, Duration) {
    let barrier = Barrier::new(clients);
    let latencies = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (barrier, latencies, one) = (&barrier, &latencies, &one);
            s.spawn(move || {
                barrier.wait();
                let begin = Instant::now();
                let mut mine = Vec::new();
                while begin.elapsed().as_secs_f64() < seconds {
                    let t = Instant::now();
                    one(c);
                    mine.push(t.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    (latencies.into_inner().unwrap(), start.elapsed())
}

fn row(label: &str, (mut l, elapsed): (Vec<Duration>, Duration)) -> f64 {
    l.sort();
    let rate = l.len() as f64 / elapsed.as_secs_f64();
    let at = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)];
    println!(
        "{label:<34} {rate:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
    rate
}

fn main() {
    let seconds: f64 =
        std::env::var("RPC_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let dir = tempfile::tempdir().unwrap();
    let sim = tee_sim::SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap();
    let dstack =
        tee_sim::SimServer::start(sim, &Endpoint::Unix(dir.path().join("dstack.sock"))).unwrap();
    let admin = SigningKey::from_bytes(&ADMIN_SECRET).unwrap();
    let device = open_device(&SignerConfig {
        state: dir.path().join("state"),
        dstack: Some(dstack.endpoint().to_owned()),
        kind: BackendKind::Simulated,
        admin: Some(admin.address()),
        marks: None,
        accept_async_standbys: false,
    })
    .unwrap();
    let socket = Endpoint::Unix(dir.path().join("signer.sock"));
    let server = serve(Arc::new(Mutex::new(*device)), &[socket], Limits::default()).unwrap();
    let signer = server.endpoints()[0].clone();
    let provisioner =
        PhalaDstackProvider::new(signer.clone(), Verifier::default()).with_admin(admin);
    let mut addresses = Vec::new();
    for slot in 0..SLOTS {
        let policy = tee_testkit::typed_policy();
        let key = provisioner.generate_key(slot, &format!("bench/{slot}"), &policy).unwrap();
        addresses.push(key.address.to_string());
    }
    let natives: Vec<_> =
        (0..SLOTS).map(|_| PhalaDstackProvider::new(signer.clone(), Verifier::default())).collect();
    let config = Config { signer, slots: (0..SLOTS).collect(), upstream: None, keep: 1024 };
    let gateway = Gateway::open(&config).unwrap();
    let rpc =
        RpcServer::start(Arc::new(gateway), Options::new(Endpoint::Tcp("127.0.0.1:0".into())))
            .unwrap();
    let agent = ureq::Agent::config_builder().build().new_agent();

    println!("attested AgentWalletSet signatures, {seconds} s per row (simulated dstack quotes)");
    for clients in [1usize, SLOTS as usize] {
        let native = row(
            &format!("native socket, {clients} client(s)"),
            drive(clients, seconds, |c| {
                let request = json!({
                    "method": "eth_signTypedData_v4",
                    "params": [addresses[c], wallet_set(&addresses[c])],
                });
                natives[c].sign_json(c as u8, &request.to_string(), None).unwrap();
            }),
        );
        let endpoint = row(
            &format!("JSON-RPC endpoint, {clients} client(s)"),
            drive(clients, seconds, |c| {
                let body = json!({
                    "jsonrpc": "2.0", "id": 1, "method": "eth_signTypedData_v4",
                    "params": [addresses[c], wallet_set(&addresses[c])],
                });
                let mut resp = agent
                    .post(rpc.url())
                    .header("content-type", "application/json")
                    .send(body.to_string())
                    .unwrap();
                let answer: Value =
                    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
                assert!(answer["result"].is_string(), "{answer}");
            }),
        );
        println!("  endpoint / native: {:.2}", endpoint / native);
    }
}
