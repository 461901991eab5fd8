//! Replicas of one simulated dstack app as `serve` runs them (each its own
//! state directory, its device behind a server on a socket of its own, the
//! marks shared where a database is given), and the actions they sign: for
//! the shared-marks and failover tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test set-up")]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tee_client::{Client, ClientError};
use tee_core::protocol::{AdminAuth, Command, DeviceError, Policy, SetPolicy, Sign, SignResponse};
use tee_core::{Action, ActionKind};
use tee_host::backend::{HostDevice, OpenError, SignerConfig, open_device};
use tee_host::server::{Limits, ServerHandle, serve};
use tee_sim::{SimDstack, SimServer};
use tee_testkit::{Pair, sample};
use tee_transport::{Endpoint, Stream, connect};

use crate::signer::{admin, config, derive_typed};

/// A replica: its device behind a server on a socket of its own (where
/// marks are shared, the server claims a signature's mark in the database
/// outside the device's lock: the only place a claim is made), and a
/// client of that socket.
pub struct Replica {
    /// The device the server serves.
    pub device: Arc<Mutex<HostDevice>>,
    /// The server's socket.
    pub endpoint: Endpoint,
    client: Client<Box<dyn Stream>>,
    server: Option<ServerHandle>,
}

impl Drop for Replica {
    /// A clean stop, finished when this returns: the server stopped, its
    /// connections' threads gone, the device (its journal and rollback
    /// anchor) dropped.
    fn drop(&mut self) {
        drop(self.server.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.device) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl Replica {
    /// `cmd` on this replica's client; a device error is returned, anything
    /// else (the socket) fails the test.
    pub fn call<C: Command>(&mut self, cmd: &C) -> Result<C::Response<'_>, DeviceError> {
        self.client.call(cmd).map_err(|e| match e {
            ClientError::Device(e) => e,
            other => panic!("the replica's socket: {other:?}"),
        })
    }

    /// Another client of this replica's socket.
    #[must_use]
    pub fn client(&self) -> Client<Box<dyn Stream>> {
        Client::new(connect(&self.endpoint, Duration::from_secs(30)).unwrap())
    }
}

/// Replica `name` of the app served by `dstack`, its own state directory,
/// with the marks at `marks` (or its own only); slot 0 holds the app's key
/// at `agent/1`, allowed to sign typed registry calls.
#[must_use]
pub fn replica(dir: &Path, name: &str, dstack: &SimServer, marks: Option<&str>) -> Replica {
    replica_with(dir, name, &config(&dir.join(name), dstack, marks))
}

/// [`replica`] opened with `config` (its state directory is the config's).
#[must_use]
pub fn replica_with(dir: &Path, name: &str, config: &SignerConfig) -> Replica {
    let mut p = Pair::with(open_device(config).unwrap());
    derive_typed(&mut p);
    served(dir, name, p.device)
}

/// [`replica`] with slot 0 under `policy` (set by the admin, as an
/// operator sets it on every replica).
#[must_use]
pub fn replica_under(
    dir: &Path,
    name: &str,
    dstack: &SimServer,
    marks: Option<&str>,
    policy: Policy,
) -> Replica {
    let mut p = Pair::with(open_device(&config(&dir.join(name), dstack, marks)).unwrap());
    derive_typed(&mut p);
    admin(&mut p, SetPolicy { slot: 0, policy, auth: AdminAuth::UNSIGNED });
    served(dir, name, p.device)
}

/// Replica `name` started again on the state directory of `config` as it
/// is (its slots as they were left): what opening it said.
pub fn reopen(dir: &Path, name: &str, config: &SignerConfig) -> Result<Replica, OpenError> {
    Ok(served(dir, name, open_device(config)?))
}

fn served(dir: &Path, name: &str, device: Box<HostDevice>) -> Replica {
    let device = Arc::new(Mutex::new(*device));
    let endpoint = Endpoint::Unix(dir.join(format!("{name}.sock")));
    // As many clients of one test as it runs (one peer: the test).
    let limits = Limits { max_connections: 128, max_per_peer: 64, ..Limits::default() };
    let server = serve(device.clone(), std::slice::from_ref(&endpoint), limits).unwrap();
    let client = Client::new(connect(&endpoint, Duration::from_secs(30)).unwrap());
    Replica { device, endpoint, client, server: Some(server) }
}

/// The app's simulated dstack, on a socket in `dir`.
#[must_use]
pub fn app(dir: &Path) -> SimServer {
    let sim = SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap();
    SimServer::start(sim, &Endpoint::Unix(dir.join("dstack.sock"))).unwrap()
}

/// A distinct action per (replica, sequence).
#[must_use]
pub fn action(replica: u8, sequence: u64) -> Action<'static> {
    sample::with_nonce(sample::action(ActionKind::SetAgentUri), u64::from(replica) << 32 | sequence)
}

/// Replica `r`'s action at `sequence`, signed by `p` in slot 0.
pub fn sign(p: &mut Replica, r: u8, sequence: u64) -> Result<SignResponse, DeviceError> {
    p.call(&Sign { slot: 0, sequence, action: action(r, sequence) })
}
