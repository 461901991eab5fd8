//! `Health` as an operator reads it (`tee-signer info`): the host service
//! answers from probes it makes at the time (dstack's `Info`, a statement
//! on the shared marks database, the journal's state), outside the device's
//! lock, so a signer whose database or dstack went away says so instead of
//! looking well while it refuses every signature; a device on its own has
//! nothing around it to report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tee_client::{Client, ClientError};
use tee_core::ActionKind;
use tee_core::device::Device;
use tee_core::protocol::{DeviceError, Health, HealthResponse, Probe, Replication, Sign};
use tee_host::backend::open_device;
use tee_host::server::{Limits, serve};
use tee_sim::{SimDstack, SimServer};
use tee_testkit::{MemBackend, Pair, sample};
use tee_tests::postgres::Cluster;
use tee_tests::signer::{config, derive_typed};
use tee_transport::{Endpoint, connect};

#[test]
fn health_says_what_signing_needs_as_it_goes_away_and_comes_back() {
    let pg = Cluster::start(false);
    let dir = tempfile::tempdir().unwrap();
    let sim = SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap();
    let dstack = SimServer::start(sim, &Endpoint::Unix(dir.path().join("dstack.sock"))).unwrap();
    let cfg = config(&dir.path().join("state"), &dstack, Some(&pg.socket_url()));
    let mut p = Pair::with(open_device(&cfg).unwrap());
    derive_typed(&mut p);
    let endpoint = Endpoint::Unix(dir.path().join("signer.sock"));
    let device = Arc::new(Mutex::new(*p.device));
    let _server = serve(device, std::slice::from_ref(&endpoint), Limits::default()).unwrap();
    let mut c = Client::new(connect(&endpoint, Duration::from_secs(30)).unwrap());
    let sign = |c: &mut Client<_>, sequence| {
        let action = sample::with_nonce(sample::action(ActionKind::SetAgentUri), sequence);
        c.call(&Sign { slot: 0, sequence, action }).map(|_| ())
    };
    let all_ok = HealthResponse {
        dstack: Probe::Ok,
        marks: Probe::Ok,
        storage: Probe::Ok,
        replication: Replication::NoStandby,
    };
    assert_eq!(c.call(&Health).unwrap(), all_ok);
    sign(&mut c, 1).unwrap();

    // The database goes: signing is refused, and Health says why.
    pg.stop();
    assert!(matches!(sign(&mut c, 2), Err(ClientError::Device(DeviceError::Storage))));
    let h = c.call(&Health).unwrap();
    assert_eq!((h.marks, h.dstack, h.storage), (Probe::Failed, Probe::Ok, Probe::Ok));
    assert_eq!(h.replication, Replication::NoStandby, "the last reading, while it is away");
    assert!(!h.healthy());
    // It comes back: both recover without a restart of the signer.
    pg.start_again();
    assert_eq!(c.call(&Health).unwrap(), all_ok);
    sign(&mut c, 3).unwrap();

    // dstack goes.
    drop(dstack);
    let h = c.call(&Health).unwrap();
    assert_eq!((h.dstack, h.marks), (Probe::Failed, Probe::Ok));
}

#[test]
fn a_device_alone_reports_no_health() {
    let mut p = Pair::new(Device::open(MemBackend::new(3), tee_testkit::config()).unwrap());
    assert_eq!(p.call(&Health), Err(DeviceError::Unsupported));
}
