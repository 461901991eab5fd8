//! The signer on dstack 0.6's `/v1` guest-agent API: against an agent that
//! serves `/v1` alone (so nothing can fall back to v0), its keys are the v1
//! derivation's, their chains verify with the v1 claim, its attestations
//! come from `/v1/Attest` and pass every check under the simulator's root.
//! State keeps the API it was made under: v0 state stays v0 on an agent
//! that offers both, and v1 state is refused, with the reason, by an agent
//! without v1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use tee_client::provider::PhalaDstackProvider;
use tee_core::primitives::FixedBytes;
use tee_core::protocol::{AdminAuth, DeriveKey, DeviceInfo, GetPublicKey, authorize};
use tee_core::{ActionKind, Address, B256, SigningKey};
use tee_host::backend::open_device;
use tee_host::dstack::{Api, Dstack};
use tee_host::server::{Limits, serve};
use tee_sim::v1::KeyAlgorithm;
use tee_sim::{SimDstack, SimServer, Surfaces};
use tee_store::store::{DSTACK_API_FILE, JOURNAL};
use tee_testkit::{ADMIN_SECRET, sample};
use tee_tests::signer::config;
use tee_transport::Endpoint;
use tee_verify::{Bound, Expected, Policy, Verifier, verify_key_chain};

const KMS_ROOT: [u8; 32] = [0x11; 32];
const APP_ID: [u8; 20] = [0x22; 20];
const COMPOSE: [u8; 32] = [0x33; 32];

fn sim() -> SimDstack {
    SimDstack::new(&KMS_ROOT, APP_ID, COMPOSE).unwrap()
}

fn agent(dir: &Path, name: &str, surfaces: Surfaces) -> SimServer {
    SimServer::start_with(sim(), &Endpoint::Unix(dir.join(name)), surfaces).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn the_client_tells_the_apis_apart() {
    let dir = tempfile::tempdir().unwrap();
    for (surfaces, want) in
        [(Surfaces::V0_ONLY, Api::V0), (Surfaces::default(), Api::V1), (Surfaces::V1_ONLY, Api::V1)]
    {
        let a = agent(dir.path(), "d.sock", surfaces);
        let d = Dstack::new(Some(a.endpoint())).unwrap();
        assert_eq!(d.detect_api().unwrap(), want, "{surfaces:?}");
        // Over TCP too.
        let t =
            SimServer::start_with(sim(), &Endpoint::Tcp("127.0.0.1:0".into()), surfaces).unwrap();
        assert_eq!(Dstack::new(Some(t.endpoint())).unwrap().detect_api().unwrap(), want);
    }
    // Nothing listening: an error, not a guess.
    let d = Dstack::new(Some("/nonexistent/dstack.sock")).unwrap();
    assert!(d.detect_api().is_err());
}

/// The v1 client's keys, chains and quotes, checked against the v1
/// derivation and the verifier.
#[test]
fn v1_keys_chains_and_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let a = agent(dir.path(), "d.sock", Surfaces::V1_ONLY);
    let d = Dstack::new(Some(a.endpoint())).unwrap().with_api(Api::V1);
    let reference = sim();
    let (secret, chain) = d.get_key("agent/1", "ignored under v1").unwrap();
    let want = reference.get_key_v1("agent/1", KeyAlgorithm::Secp256k1).unwrap();
    assert_eq!(*secret, *want.secret);
    let (v0, _) = reference.get_key("agent/1", "erc8004-signer").unwrap();
    assert_ne!(*secret, *v0, "a path's v1 key is not its v0 key");
    assert_eq!(chain.domain.as_deref(), Some("agent/1"));
    assert!(chain.purpose.is_empty());
    let address = SigningKey::from_bytes(&secret).unwrap().address();
    let app = verify_key_chain(&chain, &address, Some(&APP_ID), &reference.kms_root());
    assert!(app.is_ok(), "{app:?}");
    // The same link read as a v0 claim, or for another domain, fails.
    let mut as_v0 = chain.clone();
    as_v0.domain = None;
    as_v0.purpose = "agent/1".into();
    assert!(verify_key_chain(&as_v0, &address, Some(&APP_ID), &reference.kms_root()).is_err());
    let mut other = chain.clone();
    other.domain = Some("agent/2".into());
    assert!(verify_key_chain(&other, &address, Some(&APP_ID), &reference.kms_root()).is_err());
    let mut both = chain.clone();
    both.purpose = "x".into();
    assert!(verify_key_chain(&both, &address, Some(&APP_ID), &reference.kms_root()).is_err());

    let rd = [0x5a; 64];
    let q = d.get_quote(&rd).unwrap();
    let parsed = tee_core::quote::Quote::parse(&q.quote).unwrap();
    assert_eq!(parsed.report.report_data, &rd);
    let rtmr3 = tee_verify::eventlog::replay(&q.event_log, 3).unwrap();
    assert_eq!(&rtmr3, parsed.report.rtmr[3]);

    let info = d.info().unwrap();
    assert_eq!(info.app_id, hex::encode(APP_ID));
    assert_eq!(info.compose_hash, hex::encode(COMPOSE));
    assert_eq!(info.measurements[4].1, hex::encode(rtmr3));
}

/// The whole signer on an agent without v0: generate a key, sign, and a
/// validator that trusts the simulator's root verifies every check.
#[test]
fn the_signer_runs_on_a_v1_only_guest_agent() {
    let dir = tempfile::tempdir().unwrap();
    let a = agent(dir.path(), "dstack.sock", Surfaces::V1_ONLY);
    let device = open_device(&config(&dir.path().join("state"), &a, None)).unwrap();
    assert_eq!(device.backend().dstack().unwrap().api(), Api::V1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state").join(DSTACK_API_FILE)).unwrap(),
        "v1\n"
    );
    let server = serve(
        Arc::new(Mutex::new(*device)),
        &[Endpoint::Unix(dir.path().join("signer.sock"))],
        Limits::default(),
    )
    .unwrap();
    let reference = sim();
    let verifier = Verifier {
        policy: Policy {
            compose_hash: Some(vec![B256(COMPOSE)]),
            app_id: Some(vec![FixedBytes(APP_ID)]),
            kms_root: Some(reference.kms_root()),
            trust_simulator_root: true,
            ..Policy::default()
        },
        collateral: None,
        pccs: None,
        simulated_root: Some(tee_sim::root()),
    };
    let endpoint = server.endpoints()[0].clone();
    let admin = PhalaDstackProvider::new(endpoint.clone(), verifier.clone())
        .with_admin(SigningKey::from_bytes(&ADMIN_SECRET).unwrap());
    let key = admin.generate_key(0, "erc8004/agent-42", &tee_testkit::typed_policy()).unwrap();
    let want = reference.get_key_v1("erc8004/agent-42", KeyAlgorithm::Secp256k1).unwrap();
    assert_eq!(key.address.0, SigningKey::from_bytes(&want.secret).unwrap().address().0);
    let chain = key.attestation.key_chain.as_ref().unwrap();
    assert_eq!(chain.domain.as_deref(), Some("erc8004/agent-42"));
    let Bound::Challenge(c) = key.attestation.bound else { panic!("bound to a challenge") };
    let report = verifier.verify(
        &key.attestation.evidence(),
        &Address(key.address.0),
        &Expected::Challenge(B256(c.0)),
        now(),
    );
    assert!(report.verified() && report.simulated_root, "{report}");

    let agent = PhalaDstackProvider::new(endpoint, verifier.clone());
    let signed = agent.sign(&key, &sample::action(ActionKind::SetAgentUri)).unwrap();
    let report = agent.verify_attestation(&signed, Some(now()));
    assert!(report.verified() && report.simulated_root, "{report}");
}

/// A path is another key under the other API, so state never changes API:
/// v0 state keeps v0 on an agent that offers v1, and v1 state on an agent
/// without v1 is refused with the reason.
#[test]
fn state_keeps_the_api_it_was_made_under() {
    let dir = tempfile::tempdir().unwrap();
    let old = agent(dir.path(), "old.sock", Surfaces::V0_ONLY);
    let path = "agent/1";
    let address = {
        let device = open_device(&config(&dir.path().join("state"), &old, None)).unwrap();
        let mut p = tee_testkit::Pair::with(device);
        let mut derive = DeriveKey {
            slot: 0,
            path: tee_core::heapless::String::try_from(path).unwrap(),
            replace: false,
            auth: AdminAuth::UNSIGNED,
        };
        let device_id = p.call(&DeviceInfo).unwrap().device_id;
        let key = SigningKey::from_bytes(&ADMIN_SECRET).unwrap();
        authorize(&mut derive, &key, &device_id, 1).unwrap();
        p.call(&derive).unwrap().address
    };
    let v0 = SigningKey::from_bytes(&sim().get_key(path, "erc8004-signer").unwrap().0).unwrap();
    assert_eq!(address, v0.address());
    drop(old);

    // State from before the record (no dstack-api file) is v0's too.
    std::fs::remove_file(dir.path().join("state").join(DSTACK_API_FILE)).unwrap();
    let both = agent(dir.path(), "new.sock", Surfaces::default());
    let device = open_device(&config(&dir.path().join("state"), &both, None)).unwrap();
    assert_eq!(device.backend().dstack().unwrap().api(), Api::V0);
    let mut p = tee_testkit::Pair::with(device);
    let info = p.call(&GetPublicKey { slot: 0 }).unwrap();
    assert_eq!(info.address, v0.address(), "the slot's key did not change");
    drop(p);

    // v1 state, then an agent without v1.
    let dir = tempfile::tempdir().unwrap();
    let new = agent(dir.path(), "new.sock", Surfaces::default());
    drop(open_device(&config(&dir.path().join("state"), &new, None)).unwrap());
    assert!(dir.path().join("state").join(JOURNAL).exists());
    drop(new);
    let old = agent(dir.path(), "old.sock", Surfaces::V0_ONLY);
    let e = open_device(&config(&dir.path().join("state"), &old, None)).unwrap_err().to_string();
    assert!(e.contains("v1"), "{e}");
    // Editing the record to v0 only gives a state key that does not open it.
    std::fs::write(dir.path().join("state").join(DSTACK_API_FILE), "v0\n").unwrap();
    assert!(open_device(&config(&dir.path().join("state"), &old, None)).is_err());
}
