//! What durability and transports cost per signature: the same `Sign`
//! request (frame in, frame out, the sample `setAgentURI`) handled
//! - by a device whose state is in memory (the core's own cost: decode,
//!   policy, counter, k256 with tables),
//! - by a device on the state directory (every signature fsyncs its
//!   high-water mark: file, rename, directory),
//! - through the server over a unix socket, and over TCP loopback,
//!
//! printed as ratios to the in-memory device, measured in the same run.
//!
//! ```text
//! cargo bench -p tee-host --bench serve
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::Criterion;
use tee_client::Client;
use tee_core::ActionKind;
use tee_core::client::encode_request;
use tee_core::device::{Backend, Device};
use tee_core::frame::Accumulator;
use tee_core::protocol::{
    AdminAuth, BackendKind, GenerateKey, GetPublicKey, MAX_REQUEST_FRAME, MAX_REQUEST_WIRE,
    MAX_RESPONSE_WIRE, SetPolicy, Sign,
};
use tee_host::backend::HostBackend;
use tee_host::server::{Limits, serve};
use tee_store::store::{FileStore, StateKey};
use tee_testkit::{MemBackend, Pair, sample};
use tee_transport::{Endpoint, connect};

const GROUP: &str = "sign_request";

/// A device with a generated key in slot 0 under the typed policy.
fn ready<B: Backend>(backend: B) -> Device<B> {
    let mut p = Pair::new(Device::open(backend, tee_testkit::config()).unwrap());
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: tee_testkit::typed_policy(), auth: AdminAuth::UNSIGNED })
        .unwrap();
    *p.device
}

fn request(sequence: u64) -> Vec<u8> {
    let sign = Sign { slot: 0, sequence, action: sample::action(ActionKind::SetAgentUri) };
    let mut buf = vec![0u8; MAX_REQUEST_WIRE];
    encode_request(1, &sign, &mut buf).unwrap().to_vec()
}

/// One request through `serve::feed`, as a transport would, in process.
fn in_process<B: Backend>(c: &mut Criterion, name: &str, mut device: Device<B>) {
    let mut rx = Accumulator::<MAX_REQUEST_FRAME>::new();
    let mut tx = vec![0u8; MAX_RESPONSE_WIRE];
    let mut sequence = 0;
    c.benchmark_group(GROUP).sample_size(20).bench_function(name, |b| {
        b.iter(|| {
            sequence += 1;
            let mut out = Vec::new();
            let Ok(()) =
                tee_core::serve::feed(&mut out, &mut device, &mut rx, &mut tx, &request(sequence));
            assert!(!out.is_empty());
        })
    });
}

fn over(c: &mut Criterion, name: &str, endpoint: &Endpoint) {
    let mut client = Client::new(connect(endpoint, Duration::from_secs(10)).unwrap());
    // The servers share one device: go on from its high-water mark.
    let mut sequence = client.call(&GetPublicKey { slot: 0 }).unwrap().high_water.unwrap_or(0);
    c.benchmark_group(GROUP).sample_size(20).bench_function(name, |b| {
        b.iter(|| {
            sequence += 1;
            client
                .call(&Sign { slot: 0, sequence, action: sample::action(ActionKind::SetAgentUri) })
                .unwrap()
        })
    });
}

fn host_device(dir: &std::path::Path) -> Device<HostBackend> {
    let admin = tee_testkit::config().admin;
    let store = FileStore::open(dir, StateKey::File, Some(admin)).unwrap();
    ready(HostBackend::new(store, None, BackendKind::Simulated))
}

fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

fn median(id: &str) -> Option<f64> {
    let path = criterion_dir()?.join(GROUP).join(id).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v.pointer("/median/point_estimate")?.as_f64()
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    in_process(&mut c, "memory", ready(MemBackend::new(1)));
    let dir = tempfile::tempdir().unwrap();
    in_process(&mut c, "state_dir", host_device(&dir.path().join("a")));
    let device = Arc::new(Mutex::new(host_device(&dir.path().join("b"))));
    let endpoints =
        [Endpoint::Unix(dir.path().join("s.sock")), Endpoint::Tcp("127.0.0.1:0".into())];
    let server = serve(device, &endpoints, Limits::default()).unwrap();
    over(&mut c, "unix_socket", &server.endpoints()[0].clone());
    over(&mut c, "tcp_loopback", &server.endpoints()[1].clone());
    c.final_summary();
    drop(server);

    let Some(base) = median("memory") else {
        println!("no estimates found (run with `cargo bench`, not `--test`)");
        return;
    };
    println!("\n| Sign request | median (us) | / in-memory device | signatures/s |");
    println!("|---|---:|---:|---:|");
    for (id, what) in [
        ("memory", "device, state in memory"),
        ("state_dir", "device, state directory (fsync per signature)"),
        ("unix_socket", "server over a unix socket, state directory"),
        ("tcp_loopback", "server over TCP loopback, state directory"),
    ] {
        if let Some(t) = median(id) {
            println!("| {what} | {:.1} | {:.2}x | {:.0} |", t / 1e3, t / base, 1e9 / t);
        }
    }
}
