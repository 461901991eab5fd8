//! One signer process serving one device over a unix socket, TCP and a
//! serial line (a pty) at once, with dstack simulated behind its HTTP API:
//! every transport answers, clients interleave, a client that floods garbage,
//! stalls mid-frame or vanishes costs nobody else anything, the connection
//! cap holds, and a restart from the state directory keeps keys, policies
//! and high-water marks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::{Read, Write};

use serialport::SerialPort;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tee_client::{Client, ClientError};
use tee_core::protocol::*;
use tee_core::{ActionKind, SigningKey};
use tee_host::backend::{HOST_SLOTS, HostDevice, open_device};
use tee_host::server::{Limits, ServerHandle, serve};
use tee_sim::SimDstack;
use tee_sim::SimServer;
use tee_testkit::ADMIN_SECRET;
use tee_testkit::sample;
use tee_tests::alloy_digest;
use tee_tests::signer::config;
use tee_transport::{Endpoint, Stream, connect};

const TIMEOUT: Duration = Duration::from_secs(10);

fn sim_dstack(dir: &std::path::Path) -> SimServer {
    let sim = SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap();
    SimServer::start(sim, &Endpoint::Unix(dir.join("dstack.sock"))).unwrap()
}

fn client(e: &Endpoint) -> Client<Box<dyn Stream>> {
    Client::new(connect(e, TIMEOUT).unwrap())
}

#[test]
fn one_device_over_unix_tcp_and_serial_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = sim_dstack(dir.path());
    let device = open_device(&config(&dir.path().join("state"), &dstack, None)).unwrap();
    let info = device.backend().dstack().map(|d| d.endpoint().to_owned());
    assert_eq!(info.as_deref(), Some(dstack.endpoint()));
    let device = Arc::new(Mutex::new(*device));

    let (master, slave) = serialport::TTYPort::pair().unwrap();
    let slave_path = slave.name().unwrap();
    let endpoints = [
        Endpoint::Unix(dir.path().join("signer.sock")),
        Endpoint::Tcp("127.0.0.1:0".into()),
        Endpoint::Serial { path: slave_path.into(), baud: 115_200 },
    ];
    let server = serve(device.clone(), &endpoints, Limits::default()).unwrap();
    let bound = server.endpoints().to_vec();
    assert!(matches!(&bound[1], Endpoint::Tcp(a) if !a.ends_with(":0")));
    // The socket is the signer's user's alone; nothing was left beside it.
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir.path().join("signer.sock")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let staged = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".tee-signer")
            })
            .count();
        assert_eq!(staged, 0);
    }

    let mut unix = client(&bound[0]);
    let mut tcp = client(&bound[1]);
    let mut master = master;
    master.set_timeout(TIMEOUT).unwrap();
    let mut serial = Client::new(Box::new(master) as Box<dyn Stream>);

    let admin = SigningKey::from_bytes(&ADMIN_SECRET).unwrap();
    let info = unix.call(&DeviceInfo).unwrap();
    assert_eq!(info.backend, BackendKind::Simulated);
    assert_eq!(
        info.capabilities,
        capability::ATTEST | capability::DERIVE | capability::GENERATE | capability::CLOCK
    );
    assert_eq!(tcp.call(&DeviceInfo).unwrap(), info);
    assert_eq!(serial.call(&DeviceInfo).unwrap(), info);

    // The admin derives a dstack key over TCP and sets its policy over serial.
    let path = heapless_path("erc8004/agent-1");
    let key = tcp
        .admin(
            DeriveKey { slot: 0, path, replace: false, auth: AdminAuth::UNSIGNED },
            &admin,
            &info.device_id,
            1,
        )
        .unwrap();
    serial
        .admin(
            SetPolicy { slot: 0, policy: tee_testkit::typed_policy(), auth: AdminAuth::UNSIGNED },
            &admin,
            &info.device_id,
            2,
        )
        .unwrap();
    // The replayed admin counter is refused on another transport.
    let r = unix.admin(
        GenerateKey { slot: 1, replace: false, auth: AdminAuth::UNSIGNED },
        &admin,
        &info.device_id,
        2,
    );
    assert!(matches!(r, Err(ClientError::Device(DeviceError::AdminReplay { last: 2 }))), "{r:?}");

    // Signing interleaved over all three; the sequences are one slot's.
    let clients: [&mut Client<Box<dyn Stream>>; 3] = [&mut unix, &mut tcp, &mut serial];
    let kinds = [ActionKind::Register, ActionKind::SetAgentUri, ActionKind::GiveFeedback];
    for (i, c) in clients.into_iter().enumerate() {
        let action = sample::action(kinds[i]);
        let r = c.call(&Sign { slot: 0, sequence: i as u64 + 1, action: action.clone() }).unwrap();
        assert_eq!(r.digest.0, alloy_digest(&action).0);
        assert_eq!(r.signature.recover_address(&r.digest).unwrap(), key.address);
    }
    let r = unix.call(&Sign { slot: 0, sequence: 2, action: sample::action(ActionKind::Register) });
    assert!(matches!(r, Err(ClientError::Device(DeviceError::Replay { high_water: 3 }))), "{r:?}");

    // A client that floods garbage, one that stops mid-frame, one that
    // connects and leaves: the others are served throughout.
    let mut flood = connect(&bound[1], TIMEOUT).unwrap();
    let garbage: Vec<u8> =
        (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
    flood.write_all(&garbage).unwrap();
    let mut stalled = connect(&bound[0], TIMEOUT).unwrap();
    let mut frame = vec![0u8; MAX_REQUEST_WIRE];
    let partial = tee_core::client::encode_request(
        99,
        &Sign { slot: 0, sequence: 50, action: sample::action(ActionKind::Register) },
        &mut frame,
    )
    .unwrap()
    .to_vec();
    stalled.write_all(&partial[..partial.len() / 2]).unwrap();
    drop(connect(&bound[0], TIMEOUT).unwrap());
    for (seq, c) in [(4, &mut unix), (5, &mut tcp), (6, &mut serial)] {
        let r = c.call(&Sign {
            slot: 0,
            sequence: seq,
            action: sample::action(ActionKind::RevokeFeedback),
        });
        assert_eq!(r.unwrap().sequence, seq);
    }
    // The flood got typed frame errors back, not a hang-up.
    let mut back = [0u8; 256];
    let n = flood.read(&mut back).unwrap();
    assert!(n > 0);
    // The stalled half frame was never handled: sequence 50 is free.
    drop(stalled);
    assert_eq!(unix.call(&GetPublicKey { slot: 0 }).unwrap().high_water, Some(6));

    // Attestation through dstack's GetQuote.
    let challenge = tee_core::B256([5; 32]);
    let r = tcp.call(&Attest { slot: 0, challenge }).unwrap();
    assert_eq!(r.address, key.address);
    let quote = tee_core::quote::Quote::parse(r.quote).unwrap();
    assert_eq!(quote.report.report_data, &r.report_data.0);

    drop((unix, tcp, serial, flood));
    server.stop();

    // Restart from the state directory: same key (derived again), same
    // policy, same high-water mark; a second signer on it is refused.
    let device2 = open_device(&config(&dir.path().join("state"), &dstack, None));
    assert!(device2.is_err(), "the first signer still holds the state");
    drop(Arc::try_unwrap(device).unwrap());
    let device = shared(dir.path(), &dstack);
    let server =
        serve(device, &[Endpoint::Unix(dir.path().join("signer.sock"))], Limits::default())
            .unwrap();
    let mut c = client(&server.endpoints()[0]);
    let again = c.call(&GetPublicKey { slot: 0 }).unwrap();
    assert_eq!((again.address, again.high_water), (key.address, Some(6)));
    assert_eq!(c.call(&GetPolicy { slot: 0 }).unwrap(), tee_testkit::typed_policy());
    let r = c.call(&Sign { slot: 0, sequence: 6, action: sample::action(ActionKind::Register) });
    assert!(matches!(r, Err(ClientError::Device(DeviceError::Replay { high_water: 6 }))), "{r:?}");
}

#[test]
fn connections_over_the_cap_are_closed_and_idle_ones_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_connections: 2,
        idle_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (_dstack, _server, e) = tcp_signer(dir.path(), limits);
    let [mut a, mut b] = take_every_place(&e);
    // Idle connections are closed after the timeout (the read sees the
    // close well before its own 10 s timeout), freeing their places.
    for idle in [&mut a, &mut b] {
        let mut byte = [0u8; 1];
        let r = idle.stream().read(&mut byte);
        assert!(
            matches!(r, Ok(0))
                || matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{r:?}"
        );
    }
    let mut d = client(&e);
    d.call(&DeviceInfo).unwrap();
}

/// A signer on `dir` served on a TCP port of its own under `limits`: its
/// simulated dstack, its server and its endpoint.
fn tcp_signer(dir: &std::path::Path, limits: Limits) -> (SimServer, ServerHandle, Endpoint) {
    let dstack = sim_dstack(dir);
    let server = serve(shared(dir, &dstack), &[Endpoint::Tcp("127.0.0.1:0".into())], limits);
    let server = server.unwrap();
    let e = server.endpoints()[0].clone();
    (dstack, server, e)
}

/// Two clients that each got an answer at `e`, where two is every place a
/// peer gets: a third is closed at once.
fn take_every_place(e: &Endpoint) -> [Client<Box<dyn Stream>>; 2] {
    let mut held = [client(e), client(e)];
    for c in &mut held {
        c.call(&DeviceInfo).unwrap();
    }
    let r = client(e).call(&DeviceInfo);
    assert!(matches!(r, Err(ClientError::Closed | ClientError::Io(_))), "{r:?}");
    held
}

/// The signer on `dir`'s state directory, to serve.
fn shared(dir: &std::path::Path, dstack: &SimServer) -> Arc<Mutex<HostDevice>> {
    Arc::new(Mutex::new(*open_device(&config(&dir.join("state"), dstack, None)).unwrap()))
}

fn heapless_path(p: &str) -> tee_core::heapless::String<MAX_PATH_LEN> {
    tee_core::heapless::String::try_from(p).unwrap()
}

/// Clients that trickle a byte at a time keep nobody's place: a frame must
/// arrive whole within the frame timeout of its first byte, however often
/// bytes come. Before, every byte reset an idle timer, and N tricklers held
/// all N places forever.
#[test]
fn trickling_clients_are_closed_and_an_honest_one_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_connections: 3,
        max_per_peer: 3,
        idle_timeout: Duration::from_secs(30),
        frame_timeout: Duration::from_millis(400),
        ..Limits::default()
    };
    let (_dstack, _server, e) = tcp_signer(dir.path(), limits);
    let addr = match &e {
        Endpoint::Tcp(a) => a.clone(),
        _ => unreachable!(),
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tricklers: Vec<_> = (0..3)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                // Never a delimiter: one frame that never ends.
                let mut sent = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if s.write_all(&[0x5a]).is_err() {
                        break;
                    }
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                sent
            })
        })
        .collect();
    // The places free up once the tricklers' frames time out.
    std::thread::sleep(Duration::from_millis(1200));
    let mut honest = client(&e);
    assert_eq!(usize::from(honest.call(&DeviceInfo).unwrap().slots), HOST_SLOTS);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tricklers {
        t.join().unwrap();
    }
}

/// One peer cannot take every place: connections are counted per unix
/// user (SO_PEERCRED), TCP address or vsock context.
#[test]
fn one_peer_holds_at_most_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = sim_dstack(dir.path());
    let device = shared(dir.path(), &dstack);
    let limits = Limits { max_connections: 64, max_per_peer: 2, ..Limits::default() };
    let socket = Endpoint::Unix(dir.path().join("signer.sock"));
    let server = serve(device, std::slice::from_ref(&socket), limits).unwrap();
    let e = server.endpoints()[0].clone();
    let [a, _b] = take_every_place(&e);
    // A place given back is a place for the same peer again.
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    client(&e).call(&DeviceInfo).unwrap();
}

/// The agent and the admin may run as one user (two containers as root):
/// the per-peer limit cannot tell them apart, and an agent holding every
/// place it may on the signer's socket locked the admin out. The admin's
/// own listener (`serve --admin-listen`) counts its connections apart: the
/// admin still sets a policy.
#[test]
fn an_agent_holding_every_place_never_locks_the_admin_out() {
    use tee_client::admin::Trust;
    use tee_host::server::serve_pools;
    let dir = tempfile::tempdir().unwrap();
    let dstack = sim_dstack(dir.path());
    let limits = Limits { max_connections: 4, max_per_peer: 2, ..Limits::default() };
    let agent = Endpoint::Unix(dir.path().join("signer.sock"));
    let admin = Endpoint::Unix(dir.path().join("admin.sock"));
    let server = serve_pools(
        shared(dir.path(), &dstack),
        std::slice::from_ref(&agent),
        std::slice::from_ref(&admin),
        limits,
    )
    .unwrap();
    // The agent takes every place it may; one more is closed at once.
    let mut held = take_every_place(&agent);
    // The admin, on its own listener, provisions and sets a policy.
    let mut c = client(&admin);
    let device_id = c.call(&DeviceInfo).unwrap().device_id;
    let mut trust = Trust { device_id, identity: None };
    let key = SigningKey::from_bytes(&ADMIN_SECRET).unwrap();
    c.admin_confirmed(
        GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED },
        &key,
        &mut trust,
    )
    .unwrap();
    let set = SetPolicy { slot: 0, policy: tee_testkit::typed_policy(), auth: AdminAuth::UNSIGNED };
    c.admin_confirmed(set, &key, &mut trust).unwrap();
    assert_eq!(held[0].call(&GetPolicy { slot: 0 }).unwrap(), tee_testkit::typed_policy());
    drop(server);
}
