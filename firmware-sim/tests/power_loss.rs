//! Power loss at every write step: a script of admin and signing requests
//! runs against the MCU backend on simulated NOR flash, once per byte step of
//! every program and erase the crash-free run performs, the power cut at that
//! step. After the cut the board reboots from what the flash holds; an
//! attacker first asks for another action at the interrupted sequence, then
//! the client retries. Checked throughout:
//! - the device comes back after every cut;
//! - durable counters never move backwards;
//! - no two different signatures exist for one (slot, sequence), and every
//!   released signature verifies for the key in its slot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use firmware_sim::backend::McuBackend;
use firmware_sim::entropy::ChaChaEntropy;
use firmware_sim::flash::SimFlash;
use tee_core::device::{CounterId, CounterStore, Device};
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, Signature};
use tee_testkit::Pair;
use tee_testkit::sample;

/// Small pages, so the script compacts several times.
type Flash = SimFlash<Vec<u8>, 1024, 4>;
type Backend = McuBackend<Flash, ChaChaEntropy>;

#[derive(Clone, Copy, Debug)]
enum Op {
    Generate(u8),
    Permit(u8),
    Sign(u8, u64, ActionKind, u64),
}

fn script() -> Vec<Op> {
    use ActionKind as K;
    use Op::*;
    let mut s = vec![Generate(0), Permit(0), Generate(1), Permit(1)];
    for i in 1..=12u64 {
        s.push(Sign((i % 2) as u8, i, K::SetAgentUri, i));
        if i % 4 == 0 {
            s.push(Sign((i % 2) as u8, i, K::SetAgentUri, i)); // exact retry
            s.push(Sign((i % 2) as u8, i, K::GiveFeedback, i)); // replay refused
        }
    }
    s.push(Generate(0)); // rotation keeps the mark
    s.push(Permit(0));
    s.push(Sign(0, 12, K::SetAgentUri, 12)); // not a retry for the new key
    s.push(Sign(0, 13, K::RevokeFeedback, 13));
    s
}

fn action(kind: ActionKind, nonce: u64) -> Action<'static> {
    sample::with_nonce(sample::action(kind), nonce)
}

/// Boots from `flash`. A boot that the power cut itself interrupts (say,
/// while formatting blank flash) is retried once power is back.
fn boot(mut flash: Flash, reboots: &mut u32) -> Pair<Backend> {
    loop {
        let seed = [*reboots as u8; 32];
        match McuBackend::open(flash, ChaChaEntropy::from_seed(seed)) {
            Ok(backend) => {
                let device =
                    Device::open(backend, tee_testkit::config()).expect("the device comes back");
                return Pair::new(device);
            }
            Err((e, mut back, _)) => {
                assert!(back.is_dead(), "the store failed to open without a power cut: {e:?}");
                back.restart();
                *reboots += 1;
                flash = back;
            }
        }
    }
}

#[derive(Default)]
struct Seen {
    signatures: BTreeMap<(u8, u64), Signature>,
    counters: BTreeMap<u8, u64>,
    /// (digest, signature, address) triples already recovered, shared by all
    /// runs: most runs release the same signatures, recovery is slow.
    verified: BTreeSet<([u8; 32], [u8; 65], [u8; 20])>,
}

impl Seen {
    fn signed(&mut self, p: &mut Pair<Backend>, slot: u8, r: &SignResponse) {
        if let Some(prev) = self.signatures.insert((slot, r.sequence), r.signature) {
            assert_eq!(prev, r.signature, "two signatures for slot {slot} sequence {}", r.sequence);
        }
        let address = p.call(&GetPublicKey { slot }).unwrap().address;
        let key = (r.digest.0, r.signature.to_bytes(), address.0);
        if !self.verified.contains(&key) {
            assert_eq!(r.signature.recover_address(&r.digest).unwrap(), address);
            self.verified.insert(key);
        }
    }

    /// A fresh run's view, keeping the shared verification cache.
    fn next_run(&mut self) -> Seen {
        Seen { verified: std::mem::take(&mut self.verified), ..Seen::default() }
    }

    fn counters(&mut self, p: &mut Pair<Backend>) {
        for slot in 0..NUM_SLOTS as u8 {
            let now = p
                .device
                .backend_mut()
                .load_counter(CounterId::Slot(slot))
                .unwrap()
                .map(|h| h.value);
            if let Some(before) = self.counters.get(&slot) {
                let now = now.expect("a durable counter vanished");
                assert!(now >= *before, "slot {slot} counter went back from {before} to {now}");
            }
            if let Some(v) = now {
                self.counters.insert(slot, v);
            }
        }
    }
}

/// Runs the script; cuts power after `cut` byte steps if given. Returns the
/// steps the run used and the number of reboots.
fn run(cut: Option<u64>, seen: &mut Seen) -> (u64, u32) {
    let mut flash = SimFlash::new(vec![0xff; 4096]);
    if let Some(n) = cut {
        flash.cut_power_after(n);
    }
    let mut reboots = 0;
    let mut p = boot(flash, &mut reboots);
    for op in script() {
        loop {
            match op {
                Op::Generate(slot) => {
                    let _ =
                        p.admin(GenerateKey { slot, replace: false, auth: AdminAuth::UNSIGNED });
                }
                Op::Permit(slot) => {
                    let _ = p.admin(SetPolicy {
                        slot,
                        policy: tee_testkit::typed_policy(),
                        auth: AdminAuth::UNSIGNED,
                    });
                }
                Op::Sign(slot, sequence, kind, nonce) => {
                    if let Ok(r) = p.call(&Sign { slot, sequence, action: action(kind, nonce) }) {
                        seen.signed(&mut p, slot, &r);
                    }
                }
            }
            let dead = p.device.backend().store().flash().is_dead();
            if !dead {
                seen.counters(&mut p);
                break;
            }
            // Power failed: reboot from the flash as the cut left it.
            reboots += 1;
            let counter = p.admin_counter;
            let (mut flash, _) = p.device.into_backend().into_parts();
            flash.restart();
            p = boot(flash, &mut reboots);
            p.admin_counter = counter + 1;
            seen.counters(&mut p);
            if let Op::Sign(slot, sequence, kind, nonce) = op {
                // The attacker tries another action at the same sequence first.
                if let Ok(r) = p.call(&Sign { slot, sequence, action: action(kind, nonce + 1000) })
                {
                    seen.signed(&mut p, slot, &r);
                }
            }
        }
    }
    (p.device.backend().store().flash().steps(), reboots)
}

#[test]
fn every_byte_step_of_every_write() {
    let mut clean = Seen::default();
    let (steps, reboots) = run(None, &mut clean);
    assert_eq!(reboots, 0);
    assert_eq!(clean.signatures.len(), 13, "the crash-free run signs what the script expects");
    let mut points = 0u64;
    let mut seen = clean.next_run();
    for cut in 0..steps {
        let (_, reboots) = run(Some(cut), &mut seen);
        assert_eq!(reboots, 1, "the power fails exactly once, at step {cut}");
        points += 1;
        seen = seen.next_run();
    }
    println!("power-loss points covered: {points} (every byte step of every program and erase)");
    assert_eq!(points, steps);
}
