//! Spend caps on the real server, as agents racing for the same budget would
//! try them: many clients on one capped slot at once (each taking its
//! sequence from the device), and power lost at a sync of the journal while
//! they pay. The values of the signatures released never add up to more
//! than the cap, not by one wei (or one token unit: each test runs again
//! with ERC-20 transfers under a token's cap), and the restarted signer's
//! window holds every one of them: no crash gives a reservation back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;

use tee_client::{Client, ClientError};
use tee_core::action::{TokenCall, TokenTx, TxBody};
use tee_core::protocol::{
    AdminAuth, DeviceError, GenerateKey, KindSet, Policy, SetPolicy, Sign, SpendCap, TokenRule,
};
use tee_core::{Action, ActionKind, Address, U256};
use tee_store::store::{Fault, FileStore, StateKey};
use tee_testkit::sample;
use tee_tests::crash::{images, open, race};
use tee_tests::replica::{Replica, app, replica_under};
use tee_tests::signer::pg_database;
use tee_transport::Stream;

const CAP: u64 = 1_000_000;

/// What the clients pay in: wei (generic transfers under `spend_cap`), or
/// USDC (ERC-20 transfers under the token's cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    Wei,
    Usdc,
}

impl Budget {
    /// The window's asset.
    fn asset(self) -> Option<Address> {
        (self == Budget::Usdc).then_some(sample::USDC)
    }

    /// A payment of `amount` with nonce `nonce`.
    fn payment(self, amount: u64, nonce: u64) -> Action<'static> {
        match self {
            Budget::Wei => sample::transfer(U256::from_u64(amount), nonce),
            Budget::Usdc => {
                let mut a = sample::with_nonce(sample::action(ActionKind::TokenTransfer), nonce);
                if let Action::Transaction(t) = &mut a
                    && let TxBody::Token(TokenTx {
                        call: TokenCall::Transfer { amount: a, .. },
                        ..
                    }) = &mut t.body
                {
                    *a = U256::from_u64(amount);
                }
                a
            }
        }
    }
}

fn capped(budget: Budget) -> Policy {
    let cap = SpendCap { max: U256::from_u64(CAP), window_secs: 86_400 };
    match budget {
        Budget::Wei => Policy {
            kinds: KindSet::NONE.with(ActionKind::GenericTx),
            max_value: U256([0xff; 32]),
            spend_cap: Some(cap),
            ..tee_testkit::typed_policy()
        },
        Budget::Usdc => Policy {
            kinds: KindSet::NONE.with(ActionKind::TokenTransfer),
            tokens: tee_core::heapless::Vec::from_slice(&[TokenRule {
                token: sample::USDC,
                max_amount: U256([0xff; 32]),
                cap: Some(cap),
            }])
            .unwrap(),
            ..tee_testkit::typed_policy()
        },
    }
}

/// The spend window the state directory `state` holds for slot 0.
fn spent(state: &Path, budget: Budget) -> U256 {
    let mut store =
        FileStore::open(state, StateKey::File, Some(tee_testkit::config().admin)).unwrap();
    store.load_spend(0, budget.asset().as_ref()).unwrap().map_or(U256::ZERO, |w| w.spent)
}

/// `clients` clients pay into slot 0 at once, each `wei` at a time, taking
/// the next sequence from the device, until the cap refuses them or the
/// power fails (`fault`); returns the values released and how much of the
/// journal was durable when the power failed (all of it, without a fault).
fn pay(dir: &Path, clients: u64, fault: Option<Fault>, budget: Budget) -> (Vec<u64>, usize) {
    let (mut p, group) = open(&dir.join("state"));
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: capped(budget), auth: AdminAuth::UNSIGNED }).unwrap();
    if let Some(f) = fault {
        let at = group.syncs();
        group.inject(match f {
            Fault::BeforeSync(n) => Fault::BeforeSync(at + n),
            Fault::AfterSync(n) => Fault::AfterSync(at + n),
        });
    }
    let (paid, durable) =
        race(dir, p.device, &group, clients, move |client, c| payments(budget, client, c));
    (paid.into_iter().flatten().collect(), durable)
}

/// Client `client` pays into slot 0 on `c` until the cap refuses it (or the
/// power fails), taking the next sequence from the signer's answers: the
/// values released.
fn payments(budget: Budget, client: u64, c: &mut Client<Box<dyn Stream>>) -> Vec<u64> {
    // Amounts that do not divide the cap evenly: the last payments meet it
    // part-way.
    let wei = 7_919 + client * 13;
    let mut paid = Vec::new();
    let mut sequence = 1;
    // More tries than the cap could ever take from one client, with room
    // for the sequences other clients take first: a signer that kept no
    // window fails here, not hangs.
    for _ in 0..=(CAP / wei) * 64 {
        let action = budget.payment(wei, client << 32 | sequence);
        match c.call(&Sign { slot: 0, sequence, action }) {
            Ok(r) => {
                paid.push(wei);
                sequence = r.sequence + 1;
            }
            Err(ClientError::Device(DeviceError::Replay { high_water })) => {
                sequence = high_water + 1;
            }
            Err(ClientError::Device(DeviceError::OverCap(c))) => {
                assert!(c.remaining() < u128::from(wei), "refused with room left");
                return paid;
            }
            // The power is off: nothing more comes out.
            Err(ClientError::Device(DeviceError::Storage)) => return paid,
            Err(e) => panic!("client {client}: {e}"),
        }
    }
    panic!("client {client}: paid past the cap without a refusal");
}

#[test]
fn sixty_four_clients_never_pass_the_cap_by_one_wei_or_one_token_unit() {
    for budget in [Budget::Wei, Budget::Usdc] {
        let dir = tempfile::tempdir().unwrap();
        let (released, _) = pay(dir.path(), 64, None, budget);
        let total: u64 = released.iter().sum();
        assert!(total <= CAP, "{budget:?}: released {total}, the cap is {CAP}");
        // Every client stopped at the cap: what is left is less than the
        // smallest payment.
        assert!(CAP - total < 7_919, "{budget:?}: stopped {} short of the cap", CAP - total);
        assert_eq!(spent(&dir.path().join("state"), budget), U256::from_u64(total));
    }
}

#[test]
fn a_power_loss_at_any_sync_gives_no_reservation_back() {
    let wei = [1u64, 2, 3, 5, 8, 13, 21].map(|n| (n, Budget::Wei));
    let usdc = [1u64, 3, 8, 21].map(|n| (n, Budget::Usdc));
    for (n, budget) in wei.into_iter().chain(usdc) {
        for fault in [Fault::BeforeSync(n), Fault::AfterSync(n)] {
            let dir = tempfile::tempdir().unwrap();
            let (released, durable) = pay(dir.path(), 8, Some(fault), budget);
            let total: u64 = released.iter().sum();
            assert!(total <= CAP, "{fault:?}: released {total} wei");
            // The disk at the crash: the durable part, then none, half or
            // all of what was written after it.
            for (tail, image) in images(dir.path(), &dir.path().join("state"), durable) {
                let reserved = spent(&image, budget);
                assert!(
                    reserved >= U256::from_u64(total),
                    "{fault:?}, tail {tail}: released {total} wei, the window holds {reserved}"
                );
                assert!(reserved <= U256::from_u64(CAP), "{fault:?}: {reserved}");
            }
        }
    }
}

/// Two replicas of one app, sharing their marks in PostgreSQL, share the
/// key's spend window there: 64 clients, half on each replica, pay from the
/// one key at once, and the signatures both release add up to no more than
/// the cap, not by one wei; the database's window holds exactly what they
/// released.
#[test]
fn sixty_four_clients_on_two_replicas_never_pass_the_cap_by_one_wei_or_one_token_unit() {
    for budget in [Budget::Wei, Budget::Usdc] {
        two_replicas(budget);
    }
}

fn two_replicas(budget: Budget) {
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let url = pg_database(&format!("caps_replicas_{budget:?}").to_lowercase());
    let replicas: Vec<Replica> = (0..2)
        .map(|r| replica_under(dir.path(), &format!("r{r}"), &dstack, Some(&url), capped(budget)))
        .collect();
    let threads: Vec<_> = (0..64u64)
        .map(|client| {
            let mut c = replicas[usize::try_from(client % 2).unwrap()].client();
            std::thread::spawn(move || payments(budget, client, &mut c))
        })
        .collect();
    let released: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let total: u64 = released.iter().sum();
    assert!(total <= CAP, "{budget:?}: released {total}, the cap is {CAP}");
    assert!(CAP - total < 7_919, "{budget:?}: stopped {} short of the cap", CAP - total);
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let windows = db.query("SELECT space, spent::text FROM tee_signer_spend", &[]).unwrap();
    assert_eq!(windows.len(), 1, "{budget:?}: one window");
    let (space, spent): (String, String) = (windows[0].get(0), windows[0].get(1));
    assert_eq!(spent, total.to_string(), "{budget:?}: the shared window against what was released");
    assert_eq!(
        space.contains("/0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"),
        budget == Budget::Usdc
    );
}
