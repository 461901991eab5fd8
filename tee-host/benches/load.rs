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
//! Then replicas of one simulated dstack app (derived keys), 64 clients on
//! 64 keys spread over them: one replica with its own marks (the baseline
//! of that table), and 1, 2 and 3 replicas sharing their marks in the
//! PostgreSQL server at TEE_SIGNER_TEST_PG (`source .ci/postgres` starts
//! one), each signature's mark claimed there in its own transaction; and
//! two replicas signing 1-wei transfers without and with a spend cap (a
//! capped claim reserves in the key's shared window in the same
//! transaction).
//!
//! ```text
//! cargo bench -p tee-host --bench load            # LOAD_SECONDS=3 per row
//! LOAD_CLIENTS=64 cargo bench -p tee-host --bench load   # that row alone
//! source .ci/postgres && cargo bench -p tee-host --bench load; pg_stop
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

use tee_client::{Client, ClientError};
use tee_core::protocol::{
    AdminAuth, BackendKind, DeviceError, GenerateKey, KindSet, Policy, SetPolicy, Sign, SpendCap,
};
use tee_core::{Action, ActionKind, B256, SigningKey, U256};
use tee_host::backend::{HOST_SLOTS, HostBackend, HostDevice};
use tee_host::server::{Limits, serve};
use tee_store::store::{FileStore, StateKey};
use tee_testkit::{Pair, sample};
use tee_transport::{Endpoint, connect};

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

/// What the clients sign, under which policy.
struct Payload {
    policy: Policy,
    action: Action<'static>,
}

/// Typed registry calls (`setAgentUri`) under the testkit's typed policy.
fn typed() -> Payload {
    Payload { policy: tee_testkit::typed_policy(), action: sample::action(ActionKind::SetAgentUri) }
}

/// Transfers of one wei, under a spend cap no run reaches (or none): what a
/// capped claim costs against an uncapped one.
fn payments(cap: bool) -> Payload {
    let policy = Policy {
        kinds: KindSet::NONE.with(ActionKind::GenericTx),
        max_value: U256([0xff; 32]),
        spend_cap: cap.then_some(SpendCap { max: U256([0xff; 32]), window_secs: 86_400 }),
        ..tee_testkit::typed_policy()
    };
    Payload { policy, action: sample::transfer(U256::from_u64(1), 1) }
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
        p.admin(GenerateKey { slot, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
        let policy = tee_testkit::typed_policy();
        p.admin(SetPolicy { slot, policy, auth: AdminAuth::UNSIGNED }).unwrap();
    }
    let socket = Endpoint::Unix(dir.path().join("signer.sock"));
    let server = serve(Arc::new(Mutex::new(*p.device)), &[socket], limits()).unwrap();
    let syncs_before = group.syncs();
    let endpoints = [server.endpoints()[0].clone()];
    let (latencies, elapsed) = drive(&endpoints, clients, slots, seconds, &typed().action);
    let syncs = group.syncs() - syncs_before;
    drop(server);
    row(label, latencies, elapsed, Some(syncs))
}

fn limits() -> Limits {
    Limits { max_connections: 1024, max_per_peer: 1024, ..Limits::default() }
}

/// `replicas` signers of one simulated dstack app, each on its own state
/// directory, sharing the marks at `marks` (or each its own, for `None`);
/// every replica derives slots 0..`slots` at the same paths (the same
/// keys); client i signs on replica i % replicas, slot i % slots.
fn run_replicas(
    label: &str,
    (replicas, payload): (usize, &Payload),
    marks: Option<&str>,
    clients: usize,
    slots: usize,
    seconds: f64,
) -> Row {
    use tee_core::protocol::DeriveKey;
    use tee_host::backend::{SignerConfig, open_device};
    let dir = tempfile::tempdir().unwrap();
    let sim = tee_sim::SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap();
    let dstack =
        tee_sim::SimServer::start(sim, &Endpoint::Unix(dir.path().join("dstack.sock"))).unwrap();
    let servers: Vec<_> = (0..replicas)
        .map(|r| {
            let device = open_device(&SignerConfig {
                state: dir.path().join(format!("state-{r}")),
                dstack: Some(dstack.endpoint().to_owned()),
                kind: BackendKind::Simulated,
                admin: Some(tee_testkit::config().admin),
                marks: marks.map(str::to_owned),
                accept_async_standbys: false,
            })
            .unwrap();
            let mut p = Pair::with(device);
            let mut counter = 0;
            for slot in 0..slots as u8 {
                let path =
                    tee_core::heapless::String::try_from(format!("bench/{slot}").as_str()).unwrap();
                counter += 1;
                admin(
                    &mut p,
                    DeriveKey { slot, path, replace: false, auth: AdminAuth::UNSIGNED },
                    counter,
                );
                let policy = payload.policy.clone();
                counter += 1;
                admin(&mut p, SetPolicy { slot, policy, auth: AdminAuth::UNSIGNED }, counter);
            }
            let socket = Endpoint::Unix(dir.path().join(format!("signer-{r}.sock")));
            serve(Arc::new(Mutex::new(*p.device)), &[socket], limits()).unwrap()
        })
        .collect();
    let endpoints: Vec<_> = servers.iter().map(|s| s.endpoints()[0].clone()).collect();
    let (latencies, elapsed) = drive(&endpoints, clients, slots, seconds, &payload.action);
    drop(servers);
    row(label, latencies, elapsed, None)
}

/// Runs `cmd` on a device `open_device` made (its own device id), signed
/// with the testkit's admin key at admin counter `counter`.
fn admin<C: tee_core::protocol::AdminCommand>(
    p: &mut Pair<HostBackend, HOST_SLOTS>,
    mut cmd: C,
    counter: u64,
) where
    C::Response<'static>: serde::de::DeserializeOwned + serde::Serialize,
{
    let device_id = p.call(&tee_core::protocol::DeviceInfo).unwrap().device_id;
    let key = SigningKey::from_bytes(&tee_testkit::ADMIN_SECRET).unwrap();
    tee_core::protocol::authorize(&mut cmd, &key, &device_id, counter).unwrap();
    p.call(&cmd).unwrap();
}

/// Runs the clients (client i on `endpoints[i % n]`, slot i % slots) for
/// `seconds`: each signature's latency, and how long they ran.
fn drive(
    endpoints: &[Endpoint],
    clients: usize,
    slots: usize,
    seconds: f64,
    action: &Action<'static>,
) -> (Vec<Duration>, Duration) {
    let start_line = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let endpoint = endpoints[i % endpoints.len()].clone();
            let start_line = start_line.clone();
            let action = action.clone();
            std::thread::spawn(move || {
                let mut client = Client::new(connect(&endpoint, Duration::from_secs(30)).unwrap());
                let slot = (i % slots) as u8;
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
    (all, elapsed)
}

fn row(label: &str, mut all: Vec<Duration>, elapsed: Duration, syncs: Option<u64>) -> Row {
    all.sort();
    let at = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len() - 1)).copied();
    Row {
        label: label.to_owned(),
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50).unwrap_or_default(),
        p99: at(0.99).unwrap_or_default(),
        per_sync: syncs.map_or(f64::NAN, |s| all.len() as f64 / s.max(1) as f64),
    }
}

/// A schema of its own on the PostgreSQL server at TEE_SIGNER_TEST_PG.
fn pg_schema(url: &str, schema: &str) -> String {
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        .unwrap();
    format!("{url} options='-c search_path={schema}'")
}

fn main() {
    // `cargo test --benches` runs this as a test: a token run.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let seconds: f64 = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.2 } else { 3.0 });
    let raw = raw_rate(seconds.min(2.0));
    // LOAD_CLIENTS=64 runs that row alone (to profile one load).
    let only: Option<usize> = std::env::var("LOAD_CLIENTS").ok().and_then(|s| s.parse().ok());
    let mut rows = Vec::new();
    for clients in [1usize, 8, 64, 256] {
        if only.is_some_and(|n| n != clients) {
            continue;
        }
        let slots = clients.min(HOST_SLOTS);
        let label = if clients <= slots {
            format!("{clients} client(s), each its own slot")
        } else {
            format!("{clients} clients on {slots} slots (two share one)")
        };
        rows.push(run(&label, clients, slots, seconds));
    }
    if only.is_some() {
        print_rows(raw, rows, Vec::new(), 1.0);
        return;
    }
    rows.push(run("8 clients on one slot (sequence from the device)", 8, 1, seconds));
    // Replicas of one app (derived keys, simulated dstack), 64 clients on
    // 64 keys: their own marks each, then the marks shared in PostgreSQL.
    let local = run_replicas(
        "64 clients, 1 replica, its own marks (derived keys)",
        (1, &typed()),
        None,
        64,
        64,
        seconds,
    );
    let local_rate = local.rate;
    let mut replica_rows = vec![local];
    match std::env::var("TEE_SIGNER_TEST_PG") {
        Ok(url) => {
            for n in 1..=3 {
                let marks = pg_schema(&url, &format!("bench_replicas_{n}"));
                let label = format!("64 clients, {n} replica(s), marks shared in PostgreSQL");
                replica_rows.push(run_replicas(
                    &label,
                    (n, &typed()),
                    Some(&marks),
                    64,
                    64,
                    seconds,
                ));
            }
            // Transfers on two replicas, without and with a spend cap: a
            // capped claim reserves in the key's shared window, in the
            // locking transaction.
            for cap in [false, true] {
                let marks = pg_schema(&url, &format!("bench_replicas_cap_{cap}"));
                let label = format!(
                    "64 clients, 2 replicas, shared marks, 1-wei transfers, {}",
                    if cap { "spend cap (reserved in PostgreSQL)" } else { "no cap" }
                );
                let payload = payments(cap);
                replica_rows.push(run_replicas(
                    &label,
                    (2, &payload),
                    Some(&marks),
                    64,
                    64,
                    seconds,
                ));
            }
        }
        Err(_) => println!("TEE_SIGNER_TEST_PG unset: no shared-marks rows (source .ci/postgres)"),
    }
    print_rows(raw, rows, replica_rows, local_rate);
}

fn print_rows(raw: f64, rows: Vec<Row>, replica_rows: Vec<Row>, local_rate: f64) {
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
    if replica_rows.is_empty() {
        return;
    }
    println!(
        "\n| replicas (unix sockets, fsynced state directories) | durable signatures/s | p50 (ms) | p99 (ms) | / one replica, own marks |"
    );
    println!("|---|---:|---:|---:|---:|");
    for r in replica_rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            r.label,
            r.rate,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.rate / local_rate
        );
    }
}
