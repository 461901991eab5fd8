//! Spend caps on the real server, as agents racing for the same budget would
//! try them: many clients on one capped slot at once (each taking its
//! sequence from the device), and power lost at a sync of the journal while
//! they pay. The values of the signatures released never add up to more
//! than the cap, not by one wei, and the restarted signer's window holds
//! every one of them: no crash gives a reservation back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tee_client::{Client, ClientError};
use tee_core::action::TxBody;
use tee_core::protocol::{
    AdminAuth, Allow, BackendKind, DeviceError, GenerateKey, KindSet, Policy, SetPolicy, Sign,
    SpendCap,
};
use tee_core::{Action, ActionKind, U256};
use tee_host::backend::{HOST_SLOTS, HostBackend, HostDevice};
use tee_host::server::{Limits, serve};
use tee_store::store::{Fault, FileStore, GroupCommit, JOURNAL, KEY_FILE, StateKey};
use tee_testkit::{Pair, sample};
use tee_transport::{Endpoint, connect};

const CAP: u64 = 1_000_000;

/// A transfer of `wei` with nonce `nonce`.
fn pay(wei: u64, nonce: u64) -> Action<'static> {
    let Action::Transaction(mut t) =
        sample::with_nonce(sample::action(ActionKind::GenericTx), nonce)
    else {
        unreachable!()
    };
    let TxBody::Generic(g) = &mut t.body else { unreachable!() };
    g.value = U256::from_u64(wei);
    Action::Transaction(t)
}

fn capped() -> Policy {
    Policy {
        kinds: KindSet::NONE.with(ActionKind::GenericTx),
        chains: Allow::Any,
        contracts: Allow::Any,
        agents: Allow::Any,
        max_value: U256([0xff; 32]),
        max_gas_limit: u64::MAX,
        max_fee_per_gas: u128::MAX,
        max_deadline_ahead_secs: 300,
        rate_limit: None,
        eip712_domains: Allow::default(),
        spend_cap: Some(SpendCap { max: U256::from_u64(CAP), window_secs: 86_400 }),
    }
}

fn open(state: &Path) -> (Pair<HostBackend, HOST_SLOTS>, Arc<GroupCommit>) {
    let store = FileStore::open(state, StateKey::File, Some(tee_testkit::config().admin)).unwrap();
    let group = store.group();
    let backend = HostBackend::new(store, None, BackendKind::Simulated);
    (Pair::with(HostDevice::open(backend, tee_testkit::config()).unwrap()), group)
}

/// The spend window the state directory `state` holds for slot 0.
fn spent(state: &Path) -> U256 {
    let mut store =
        FileStore::open(state, StateKey::File, Some(tee_testkit::config().admin)).unwrap();
    store.load_spend(0).unwrap().map_or(U256::ZERO, |w| w.spent)
}

/// `clients` clients pay into slot 0 at once, each `wei` at a time, taking
/// the next sequence from the device, until the cap refuses them or the
/// power fails (`fault`); returns the values released and how much of the
/// journal was durable when the power failed (all of it, without a fault).
fn race(dir: &Path, clients: u64, fault: Option<Fault>) -> (Vec<u64>, usize) {
    let (mut p, group) = open(&dir.join("state"));
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: capped(), auth: AdminAuth::UNSIGNED }).unwrap();
    if let Some(f) = fault {
        let at = group.syncs();
        group.inject(match f {
            Fault::BeforeSync(n) => Fault::BeforeSync(at + n),
            Fault::AfterSync(n) => Fault::AfterSync(at + n),
        });
    }
    let socket = Endpoint::Unix(dir.join("signer.sock"));
    let limits = Limits { max_connections: 256, max_per_peer: 256, ..Limits::default() };
    let server = serve(Arc::new(Mutex::new(p.device)), &[socket], limits).unwrap();
    let endpoint = server.endpoints()[0].clone();
    let released = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (endpoint, released) = (endpoint.clone(), released.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(connect(&endpoint, Duration::from_secs(30)).unwrap());
                // Amounts that do not divide the cap evenly: the last
                // payments meet it part-way.
                let wei = 7_919 + client * 13;
                let mut sequence = 1;
                // More payments than the cap could ever take from one
                // client: a signer that kept no window fails here, not hangs.
                for _ in 0..=CAP / wei + 64 {
                    let sign =
                        Sign { slot: 0, sequence, action: pay(wei, client << 32 | sequence) };
                    match c.call(&sign) {
                        Ok(r) => {
                            released.lock().unwrap().push(wei);
                            sequence = r.sequence + 1;
                        }
                        Err(ClientError::Device(DeviceError::Replay { high_water })) => {
                            sequence = high_water + 1;
                        }
                        Err(ClientError::Device(DeviceError::OverCap(c))) => {
                            assert!(c.remaining() < u128::from(wei), "refused with room left");
                            return;
                        }
                        // The power is off: nothing more comes out.
                        Err(ClientError::Device(DeviceError::Storage)) => return,
                        Err(e) => panic!("client {client}: {e}"),
                    }
                }
                panic!("client {client}: paid past the cap without a refusal");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(server);
    let r = released.lock().unwrap().clone();
    (r, usize::try_from(group.crash_image_len()).unwrap())
}

#[test]
fn sixty_four_clients_never_pass_the_cap_by_one_wei() {
    let dir = tempfile::tempdir().unwrap();
    let (released, _) = race(dir.path(), 64, None);
    let total: u64 = released.iter().sum();
    assert!(total <= CAP, "released {total} wei, the cap is {CAP}");
    // Every client stopped at the cap: what is left is less than the
    // smallest payment.
    assert!(CAP - total < 7_919, "stopped {} wei short of the cap", CAP - total);
    assert_eq!(spent(&dir.path().join("state")), U256::from_u64(total));
}

#[test]
fn a_power_loss_at_any_sync_gives_no_reservation_back() {
    for n in [1u64, 2, 3, 5, 8, 13, 21] {
        for fault in [Fault::BeforeSync(n), Fault::AfterSync(n)] {
            let dir = tempfile::tempdir().unwrap();
            let (released, durable) = race(dir.path(), 8, Some(fault));
            let total: u64 = released.iter().sum();
            assert!(total <= CAP, "{fault:?}: released {total} wei");
            // The disk at the crash: the durable part, then none, half or
            // all of what was written after it.
            let state = dir.path().join("state");
            let journal = std::fs::read(state.join(JOURNAL)).unwrap();
            for (i, tail) in
                [0, (journal.len() - durable) / 2, journal.len() - durable].into_iter().enumerate()
            {
                let image = dir.path().join(format!("image-{i}"));
                tee_store::store::create_private_dir(&image).unwrap();
                std::fs::copy(state.join(KEY_FILE), image.join(KEY_FILE)).unwrap();
                std::fs::write(image.join(JOURNAL), &journal[..durable + tail]).unwrap();
                let reserved = spent(&image);
                assert!(
                    reserved >= U256::from_u64(total),
                    "{fault:?}, tail {tail}: released {total} wei, the window holds {reserved}"
                );
                assert!(reserved <= U256::from_u64(CAP), "{fault:?}: {reserved}");
            }
        }
    }
}
