//! A signer on a simulated dstack app, served over a unix socket, as an
//! agent SDK meets it; and the verifier a validator of that app runs.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tee_core::primitives::FixedBytes;
use tee_core::protocol::BackendKind;
use tee_core::{B256, SigningKey};
use tee_host::backend::{SignerConfig, open_device};
use tee_host::server::{Limits, ServerHandle, serve};
use tee_sim::{SimDstack, SimServer, sample_collateral};
use tee_testkit::ADMIN_SECRET;
use tee_transport::Endpoint;
use tee_verify::{Policy, Verifier};

/// The simulated KMS root's secret.
pub const KMS_ROOT: [u8; 32] = [0x11; 32];
/// The simulated app id.
pub const APP_ID: [u8; 20] = [0x22; 20];
/// The simulated app's compose hash.
pub const COMPOSE: [u8; 32] = [0x33; 32];

/// The running signer and the simulated dstack behind it; both stop when
/// dropped.
#[derive(Debug)]
pub struct Setup {
    _dir: tempfile::TempDir,
    _dstack: SimServer,
    /// The signer's server.
    pub server: ServerHandle,
    /// The simulated KMS root's address.
    pub kms_root: tee_core::Address,
}

/// Starts a simulated dstack and a signer (admin: `ADMIN_SECRET`'s address)
/// on it.
#[allow(clippy::unwrap_used, reason = "test set-up")]
pub fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimDstack::new(&KMS_ROOT, APP_ID, COMPOSE).unwrap();
    let kms_root = sim.kms_root();
    let dstack = SimServer::start(sim, &Endpoint::Unix(dir.path().join("dstack.sock"))).unwrap();
    let device = open_device(&config(&dir.path().join("state"), &dstack, None)).unwrap();
    let server = serve(
        Arc::new(Mutex::new(*device)),
        &[Endpoint::Unix(dir.path().join("signer.sock"))],
        Limits::default(),
    )
    .unwrap();
    Setup { _dir: dir, _dstack: dstack, server, kms_root }
}

/// What a validator of this agent accepts: the app, its compose file, the
/// KMS root; and the sample collateral, so DCAP runs (and fails: simulated).
#[allow(clippy::unwrap_used, reason = "test set-up")]
pub fn verifier(kms_root: tee_core::Address) -> Verifier {
    Verifier {
        policy: Policy {
            compose_hash: Some(vec![B256(COMPOSE)]),
            app_id: Some(vec![FixedBytes(APP_ID)]),
            kms_root: Some(kms_root),
            ..Policy::default()
        },
        collateral: Some(sample_collateral().unwrap()),
        pccs: None,
        simulated_root: Some(tee_sim::root()),
    }
}

/// A simulated signer's configuration: its state in `state`, dstack at
/// `dstack`, `ADMIN_SECRET`'s address as the admin, marks shared at `marks`
/// (or its own only).
#[allow(clippy::unwrap_used, reason = "test set-up")]
pub fn config(state: &std::path::Path, dstack: &SimServer, marks: Option<&str>) -> SignerConfig {
    SignerConfig {
        state: state.to_owned(),
        dstack: Some(dstack.endpoint().to_owned()),
        kind: BackendKind::Simulated,
        admin: Some(SigningKey::from_bytes(&ADMIN_SECRET).unwrap().address()),
        marks: marks.map(str::to_owned),
        accept_async_standbys: false,
    }
}

/// Puts dstack's key for `agent/1` in slot 0 of `p`, allowed to sign the
/// typed kinds.
pub fn derive_typed(
    p: &mut tee_testkit::Pair<tee_host::backend::HostBackend, { tee_host::backend::HOST_SLOTS }>,
) {
    use tee_core::protocol::{AdminAuth, DeriveKey, SetPolicy};
    let path = tee_core::heapless::String::from_str("agent/1").unwrap_or_default();
    admin(p, DeriveKey { slot: 0, path, replace: false, auth: AdminAuth::UNSIGNED });
    let policy = tee_testkit::typed_policy();
    admin(p, SetPolicy { slot: 0, policy, auth: AdminAuth::UNSIGNED });
}

/// Authorizes `cmd` for the device in `p` with `ADMIN_SECRET`, at the next
/// admin counter (read from its `AdminState`), and runs it.
#[allow(clippy::unwrap_used, reason = "test set-up")]
pub fn admin<C: tee_core::protocol::AdminCommand>(
    p: &mut tee_testkit::Pair<tee_host::backend::HostBackend, { tee_host::backend::HOST_SLOTS }>,
    mut cmd: C,
) -> C::Response<'static>
where
    C::Response<'static>: serde::de::DeserializeOwned + serde::Serialize,
{
    use tee_core::protocol::{AdminState, DEVICE_SLOT, DeviceInfo, authorize};
    let key = SigningKey::from_bytes(&ADMIN_SECRET).unwrap();
    let device_id = p.call(&DeviceInfo).unwrap().device_id;
    let nonce = B256([0x5a; 32]);
    let state = p.call(&AdminState { slot: DEVICE_SLOT, nonce }).unwrap();
    let counter = state.statement.last_counter + 1;
    authorize(&mut cmd, &key, &device_id, counter).unwrap();
    p.call(&cmd).unwrap()
}

/// A database on the test PostgreSQL server (`.ci/run` starts one and sets
/// TEE_SIGNER_TEST_PG; by hand: `source .ci/postgres`): its URL, with a
/// schema of the caller's own, created empty.
#[allow(clippy::expect_used, clippy::unwrap_used, reason = "test set-up")]
pub fn pg_database(schema: &str) -> String {
    let url = std::env::var("TEE_SIGNER_TEST_PG").expect(
        "TEE_SIGNER_TEST_PG is not set: these tests need a PostgreSQL server \
         (bash .ci/run starts one; by hand: source .ci/postgres)",
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        .unwrap();
    format!("{url} options='-c search_path={schema}'")
}
