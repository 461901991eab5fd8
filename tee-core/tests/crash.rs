//! Crash consistency, exhaustively: a script of admin and sign requests runs
//! once per write step and power-loss mode, the power failing at that step
//! (the write lost, or durable but the call never returning). After each
//! crash the device restarts from durable state; an attacker first asks for
//! a different action at the interrupted sequence, then the client retries.
//!
//! Invariants, checked after every response:
//! - never two different signatures for one (slot, sequence);
//! - every released signature verifies for the key then in the slot;
//! - durable counters never move backwards;
//! - the device always comes back, and the script always completes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;

use tee_core::device::{CounterId, Device};
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, B256};
use tee_testkit::sample;
use tee_testkit::{MemBackend, Pair, PowerLoss};

#[derive(Clone, Debug)]
enum Op {
    Generate(u8),
    Permit(u8),
    Sign(u8, u64, ActionKind),
}

fn script() -> Vec<Op> {
    use ActionKind as K;
    use Op::*;
    vec![
        Generate(0),
        Permit(0),
        Generate(1),
        Permit(1),
        Sign(0, 1, K::SetAgentUri),
        Sign(0, 2, K::GiveFeedback),
        Sign(1, 1, K::SetAgentUri),
        Sign(0, 2, K::GiveFeedback),   // exact retry
        Sign(0, 2, K::RevokeFeedback), // different action, same sequence: refused
        Sign(0, 3, K::RevokeFeedback),
        Generate(0), // key rotation keeps the mark
        Permit(0),
        Sign(0, 3, K::RevokeFeedback), // not a retry for the new key: refused
        Sign(0, 4, K::SetAgentUri),
        Sign(1, 5, K::ValidationResponse),
    ]
}

/// What the world has seen: every signature released, per (slot, sequence).
#[derive(Default)]
struct Observed {
    signatures: BTreeMap<(u8, u64), (B256, tee_core::Signature)>,
    counters: BTreeMap<u8, u64>,
    crashes: u32,
}

impl Observed {
    fn record(&mut self, p: &Pair<MemBackend>, slot: u8, r: &SignResponse) {
        let mark = p.device.backend().counter(CounterId::Slot(slot)).map_or(0, |h| h.value);
        assert!(mark >= r.sequence, "a signature left before its mark was durable");
        if let Some((digest, sig)) = self.signatures.get(&(slot, r.sequence)) {
            assert_eq!(
                (digest, sig),
                (&r.digest, &r.signature),
                "two different signatures for slot {slot} sequence {}",
                r.sequence
            );
        }
        self.signatures.insert((slot, r.sequence), (r.digest, r.signature));
    }

    fn check_counters(&mut self, backend: &MemBackend) {
        for slot in 0..NUM_SLOTS as u8 {
            let now = backend.counter(CounterId::Slot(slot)).map(|h| h.value);
            let seen = self.counters.get(&slot).copied();
            if let Some(before) = seen {
                let now = now.expect("a durable counter vanished");
                assert!(now >= before, "slot {slot} counter went back from {before} to {now}");
            }
            if let Some(v) = now {
                self.counters.insert(slot, v);
            }
        }
    }
}

fn action(kind: ActionKind) -> Action<'static> {
    sample::action(kind)
}

/// A different action than `kind`'s sample, for the attacker.
fn conflicting(kind: ActionKind) -> Action<'static> {
    let a = action(kind);
    let nonce = a.envelope().map_or(0, |e| e.nonce());
    sample::with_nonce(a, nonce + 1000)
}

/// Runs the script with an optional power loss; returns the write steps used.
fn run(fault: Option<(u64, PowerLoss)>, seen: &mut Observed) -> u64 {
    let mut backend = MemBackend::new(3);
    backend.power_loss = fault;
    let mut p = Pair::new(Device::open(backend, tee_testkit::config()).unwrap());
    for op in script() {
        // Repeat the op until it goes through without a crash.
        loop {
            match &op {
                Op::Generate(slot) => {
                    // The script regenerates keys (and a crash may leave
                    // the first one in place): replacing is meant.
                    let _ = p.admin(GenerateKey {
                        slot: *slot,
                        replace: true,
                        auth: AdminAuth::UNSIGNED,
                    });
                }
                Op::Permit(slot) => {
                    let _ = p.admin(SetPolicy {
                        slot: *slot,
                        policy: tee_testkit::typed_policy(),
                        auth: AdminAuth::UNSIGNED,
                    });
                }
                Op::Sign(slot, sequence, kind) => {
                    let r =
                        p.call(&Sign { slot: *slot, sequence: *sequence, action: action(*kind) });
                    if let Ok(r) = &r {
                        seen.record(&p, *slot, r);
                        let address = p.call(&GetPublicKey { slot: *slot }).unwrap().address;
                        assert_eq!(r.signature.recover_address(&r.digest).unwrap(), address);
                    }
                }
            }
            seen.check_counters(p.device.backend());
            if !p.device.backend().dead {
                break;
            }
            // Power failed: restart from durable state.
            seen.crashes += 1;
            let counter = p.admin_counter;
            let mut backend = p.device.into_backend();
            backend.restart();
            let device =
                Device::open(backend, tee_testkit::config()).expect("the device comes back");
            p = Pair::new(device);
            p.admin_counter = counter;
            if let Op::Sign(slot, sequence, kind) = &op {
                let r =
                    p.call(&Sign { slot: *slot, sequence: *sequence, action: conflicting(*kind) });
                if let Ok(r) = &r {
                    seen.record(&p, *slot, r);
                }
            }
        }
    }
    p.device.backend().write_steps
}

#[test]
fn every_crash_point() {
    let mut clean = Observed::default();
    let steps = run(None, &mut clean);
    assert!(steps >= 15, "the script writes at every admin command and signature");
    // The crash-free run signs what the script expects.
    assert_eq!(clean.signatures.len(), 6);
    let mut points = 0;
    for at in 0..steps {
        for mode in [PowerLoss::BeforeWrite, PowerLoss::AfterWrite] {
            let mut seen = Observed::default();
            run(Some((at, mode)), &mut seen);
            assert_eq!(seen.crashes, 1, "power fails exactly once at step {at}");
            points += 1;
        }
    }
    println!("crash points covered: {points} ({steps} write steps x 2 power-loss modes)");
    assert_eq!(points, 2 * steps);
}
