//! Durable signatures under load: the real server on a state directory on
//! disk (every signature's mark fsynced before the signature leaves, with
//! group commit), over a unix socket, C concurrent clients each with its own
//! connection, for C = 1, 8, 64, 256. Printed per row: durable signatures/s,
//! p50 and p99 latency of a `Sign`, signatures per fsync, and the ratio to
//! raw k256 signing (with tables) on one core, measured in the same run.
//!
//! The std signer has 255 slots (`HOST_SLOTS`): each client signs on its
//! own slot, but for 256 clients, two of which share slot 0. Clients on a
//! shared slot take their sequence from the device (a `Replay { high_water }`
//! refusal says where to go on), so contended rows count only signatures
//! that were made. One more row: 8 clients on one slot.
//!
//! ```text
//! cargo bench -p tee-std --bench load            # LOAD_SECONDS=3 per row
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use tee_core::protocol::{AdminAuth, BackendKind, DeviceError, GenerateKey, SetPolicy, Sign};
use tee_core::{ActionKind, B256, SigningKey};
use tee_std::client::{Client, ClientError};
use tee_std::service::backend::{HOST_SLOTS, HostBackend, HostDevice};
use tee_std::service::server::{Limits, serve};
use tee_std::service::store::{FileStore, StateKey};
use tee_std::transport::{Endpoint, connect};
use tee_testkit::{Pair, sample};

/// Raw k256 signatures per second on one core (precomputed tables).
fn raw_rate(seconds: f64) -> f64 {
    let key = SigningKey::from_bytes(&[7; 32]).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let digest = B256([(n & 0xff) as u8; 32]);
        std::hint::black_box(tee_core::hazmat::sign_prehash(&key, &digest).unwrap());
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

struct Row {
    label: String,
    rate: f64,
    p50: Duration,
    p99: Duration,
    per_sync: f64,
}

/// `clients` clients on `slots` slots (client i on slot i % slots) for
/// `seconds`, against a fresh server on a state directory.
fn run(label: &str, clients: usize, slots: usize, seconds: f64) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let admin = tee_testkit::config().admin;
    let store = FileStore::open(&dir.path().join("state"), StateKey::File, Some(admin)).unwrap();
    let group = store.group();
    let backend = HostBackend::new(store, None, BackendKind::Simulated);
    let mut p = Pair::with(HostDevice::open(backend, tee_testkit::config()).unwrap());
    for slot in 0..slots as u8 {
        p.admin(GenerateKey { slot, auth: AdminAuth::UNSIGNED }).unwrap();
        let policy = tee_testkit::typed_policy();
        p.admin(SetPolicy { slot, policy, auth: AdminAuth::UNSIGNED }).unwrap();
    }
    let limits = Limits { max_connections: 1024, max_per_peer: 1024, ..Limits::default() };
    let socket = Endpoint::Unix(dir.path().join("signer.sock"));
    let server = serve(Arc::new(Mutex::new(p.device)), &[socket], limits).unwrap();
    let endpoint = server.endpoints()[0].clone();
    let syncs_before = group.syncs();
    let start_line = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let endpoint = endpoint.clone();
            let start_line = start_line.clone();
            std::thread::spawn(move || {
                let mut client = Client::new(connect(&endpoint, Duration::from_secs(30)).unwrap());
                let slot = (i % slots) as u8;
                let action = sample::action(ActionKind::SetAgentUri);
                let mut sequence = 1u64;
                let mut latencies = Vec::new();
                start_line.wait();
                let start = Instant::now();
                while start.elapsed().as_secs_f64() < seconds {
                    let t = Instant::now();
                    let sign = Sign { slot, sequence, action: action.clone() };
                    match client.call(&sign) {
                        Ok(_) => {
                            latencies.push(t.elapsed());
                            sequence += 1;
                        }
                        // Another client took it: go on after the mark.
                        Err(ClientError::Device(DeviceError::Replay { high_water })) => {
                            sequence = high_water + 1;
                        }
                        Err(e) => panic!("sign: {e}"),
                    }
                }
                (latencies, start.elapsed())
            })
        })
        .collect();
    start_line.wait();
    let mut all = Vec::new();
    let mut elapsed = Duration::ZERO;
    for t in threads {
        let (l, e) = t.join().unwrap();
        all.extend(l);
        elapsed = elapsed.max(e);
    }
    let syncs = group.syncs() - syncs_before;
    drop(server);
    all.sort();
    let at = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len() - 1)).copied();
    Row {
        label: label.to_owned(),
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50).unwrap_or_default(),
        p99: at(0.99).unwrap_or_default(),
        per_sync: all.len() as f64 / syncs.max(1) as f64,
    }
}

fn main() {
    // `cargo test --benches` runs this as a test: a token run.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let seconds: f64 = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.2 } else { 3.0 });
    let raw = raw_rate(seconds.min(2.0));
    let mut rows = Vec::new();
    for clients in [1usize, 8, 64, 256] {
        let slots = clients.min(HOST_SLOTS);
        let label = if clients <= slots {
            format!("{clients} client(s), each its own slot")
        } else {
            format!("{clients} clients on {slots} slots (two share one)")
        };
        rows.push(run(&label, clients, slots, seconds));
    }
    rows.push(run("8 clients on one slot (sequence from the device)", 8, 1, seconds));
    println!("\nraw k256 signing (tables), one core: {raw:.0} signatures/s\n");
    println!(
        "| load (unix socket, fsynced state directory) | durable signatures/s | p50 (ms) | p99 (ms) | signatures per fsync | / raw k256, one core |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.2} |",
            r.label,
            r.rate,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.per_sync,
            r.rate / raw
        );
    }
}
