//! The server with a device whose quotes a test holds: a slow quote holds
//! nobody else up; stopping an idle server wakes its listeners; a client's
//! session reconnects to a restarted server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tee_client::Client;
use tee_core::device::{Backend, BackendError, Device};
use tee_core::protocol::{AdminAuth, Attest, DeviceInfo, GenerateKey, NUM_SLOTS};
use tee_host::dstack::QuoteEvidence;
use tee_host::server::{Limits, Quoter, Served, serve};
use tee_testkit::{MemBackend, Pair};
use tee_transport::{Endpoint, connect};

/// The test backend: its quotes come from a quoter the test holds.
struct Slow(MemBackend, Quoter);

impl tee_core::device::Rng for Slow {
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), BackendError> {
        self.0.fill_bytes(buf)
    }
}
impl tee_core::device::Clock for Slow {
    fn now(&mut self) -> Option<u64> {
        self.0.now()
    }
}
impl tee_core::device::KeyStore for Slow {
    fn load_slot(&mut self, slot: u8, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        self.0.load_slot(slot, buf)
    }
    fn store_slot(&mut self, slot: u8, record: &[u8]) -> Result<(), BackendError> {
        self.0.store_slot(slot, record)
    }
    fn derive_key(&mut self, path: &str) -> Result<zeroize::Zeroizing<[u8; 32]>, BackendError> {
        self.0.derive_key(path)
    }
}
impl tee_core::device::CounterStore for Slow {
    fn load_counter(
        &mut self,
        id: tee_core::device::CounterId,
    ) -> Result<Option<tee_core::device::HighWater>, BackendError> {
        self.0.load_counter(id)
    }
    fn commit_counter(
        &mut self,
        id: tee_core::device::CounterId,
        value: &tee_core::device::HighWater,
    ) -> Result<(), BackendError> {
        self.0.commit_counter(id, value)
    }
}
impl tee_core::device::QuoteSource for Slow {
    fn quote(&mut self, _: &[u8; 64]) -> Result<&[u8], BackendError> {
        panic!("the server must not quote under the device lock")
    }
}
impl Backend for Slow {
    fn kind(&self) -> tee_core::protocol::BackendKind {
        self.0.kind()
    }
    fn capabilities(&self) -> u32 {
        self.0.capabilities()
    }
}
impl tee_core::device::AuditStore for Slow {}
impl Served for Slow {
    fn quoter(&self) -> Option<Quoter> {
        Some(self.1.clone())
    }
}

/// While dstack takes its time over one client's quote, the device
/// answers everyone else: its lock is not held across the quote.
/// Stopping a server no client is connected to returns: its listeners
/// sleep in `poll` with no timeout, so only the alarm can wake them
/// (before it, a sleep loop woke every 50 ms and took new connections
/// only then). The deadline is a guard against a hang, not a timing.
#[test]
fn stopping_an_idle_server_wakes_every_listener() {
    let quoter: Quoter = Arc::new(|_: &[u8; 64]| Err(BackendError::Unsupported));
    let backend = Slow(MemBackend::new(1), quoter);
    let device =
        Arc::new(Mutex::new(Device::<_, NUM_SLOTS>::open(backend, tee_testkit::config()).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let endpoints =
        [Endpoint::Unix(dir.path().join("s.sock")), Endpoint::Tcp("127.0.0.1:0".into())];
    let server = serve(device, &endpoints, Limits::default()).unwrap();
    // A first connection is answered, then the server idles.
    let mut c = Client::new(connect(&server.endpoints()[1], Duration::from_secs(10)).unwrap());
    c.call(&DeviceInfo).unwrap();
    drop(c);
    let (stopped, done) = mpsc::channel();
    std::thread::spawn(move || {
        server.stop();
        stopped.send(()).unwrap();
    });
    done.recv_timeout(Duration::from_secs(60)).expect("stop returns");
}

/// A client's kept connection that the server dropped (here: the
/// server stopped and another took its socket) is opened again once,
/// and the call answered on the new one.
#[test]
fn a_session_reconnects_once_to_a_restarted_server() {
    use tee_client::session::{Session, Stats};
    let open = || {
        let quoter: Quoter = Arc::new(|_: &[u8; 64]| Err(BackendError::Unsupported));
        let backend = Slow(MemBackend::new(1), quoter);
        Arc::new(Mutex::new(Device::<_, NUM_SLOTS>::open(backend, tee_testkit::config()).unwrap()))
    };
    let dir = tempfile::tempdir().unwrap();
    let e = Endpoint::Unix(dir.path().join("s.sock"));
    let server = serve(open(), std::slice::from_ref(&e), Limits::default()).unwrap();
    let mut session = Session::new(e.clone(), Duration::from_secs(10));
    session.call(&DeviceInfo).unwrap();
    server.stop();
    let server = serve(open(), std::slice::from_ref(&e), Limits::default()).unwrap();
    session.call(&DeviceInfo).unwrap();
    assert_eq!(session.stats(), Stats { connections: 2, round_trips: 3 });
    // The new connection is kept.
    session.call(&DeviceInfo).unwrap();
    assert_eq!(session.stats(), Stats { connections: 2, round_trips: 4 });
    drop(server);
}

#[test]
fn a_slow_quote_holds_nobody_else_up() {
    let (release, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let (started, quoting) = mpsc::channel::<()>();
    let started = Mutex::new(started);
    let quoter: Quoter = Arc::new(move |rd: &[u8; 64]| {
        started.lock().unwrap().send(()).unwrap();
        wait.lock().unwrap().recv().unwrap();
        Ok(QuoteEvidence { quote: rd.to_vec(), event_log: Vec::new() })
    });
    let mut pair = Pair::new(Device::open(MemBackend::new(1), tee_testkit::config()).unwrap());
    pair.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    let backend = Slow(pair.device.into_backend(), quoter);
    let device =
        Arc::new(Mutex::new(Device::<_, NUM_SLOTS>::open(backend, tee_testkit::config()).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let e = Endpoint::Unix(dir.path().join("s.sock"));
    let server = serve(device, std::slice::from_ref(&e), Limits::default()).unwrap();
    let timeout = Duration::from_secs(10);
    let attesting = {
        let e = e.clone();
        std::thread::spawn(move || {
            let mut c = Client::new(connect(&e, timeout).unwrap());
            let r = c.call(&Attest { slot: 0, challenge: tee_core::B256([3; 32]) }).unwrap();
            r.quote.to_vec()
        })
    };
    quoting.recv_timeout(timeout).unwrap();
    // The quote is under way: another client is served meanwhile.
    let mut other = Client::new(connect(&e, timeout).unwrap());
    assert_eq!(other.call(&DeviceInfo).unwrap().slots, 8);
    release.send(()).unwrap();
    let quote = attesting.join().unwrap();
    assert_eq!(quote.len(), 64, "the quote made outside is the one answered");
    server.stop();
}
