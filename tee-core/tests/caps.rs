//! Spend caps as an agent that wants more would probe them: the value of
//! every transaction a slot signs is reserved in its window, with the mark,
//! before the signature leaves. Over the cap by one wei is refused with what
//! remains; a refusal reserves nothing; an exact retry reserves nothing
//! again; a restart, a clock set back or a power loss at any write step
//! never gives a window back; a store that cannot keep the window takes no
//! cap at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::{NOW, open, permissive, sign};
use tee_core::device::Device;
use tee_core::policy::SpendWindow;
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, U256};
use tee_testkit::{MemBackend, Pair, PowerLoss, sample};

const CAP: u64 = 1_000;
const WINDOW: u32 = 3_600;

fn capped() -> Policy {
    Policy {
        spend_cap: Some(SpendCap { max: U256::from_u64(CAP), window_secs: WINDOW }),
        ..permissive()
    }
}

/// A transfer of `wei`, its nonce `nonce`.
fn pay(wei: u64, nonce: u64) -> Action<'static> {
    sample::transfer(U256::from_u64(wei), nonce)
}

fn ready(backend: MemBackend) -> Pair<MemBackend> {
    let mut p = open(backend);
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: capped(), auth: AdminAuth::UNSIGNED }).unwrap();
    p
}

/// The refusal: `remaining` wei left in a window that ends at
/// `window_ends`, read at `device_time`.
fn over(remaining: u128, window_ends: u64, device_time: u64) -> DeviceError {
    let ends_in = u32::try_from(window_ends.saturating_sub(device_time)).unwrap();
    DeviceError::OverCap(CapRefusal::new(remaining, ends_in))
}

fn reopen(p: Pair<MemBackend>) -> Pair<MemBackend> {
    let counter = p.admin_counter;
    let mut backend = p.device.into_backend();
    backend.restart();
    let mut p = Pair::new(Device::open(backend, tee_testkit::config()).unwrap());
    p.admin_counter = counter;
    p
}

#[test]
fn the_cap_holds_to_the_wei_and_a_refusal_says_what_remains() {
    let mut p = ready(MemBackend::new(1));
    sign(&mut p, 1, pay(600, 1)).unwrap();
    sign(&mut p, 2, pay(400, 2)).unwrap();
    // Exactly at the cap; one wei more is refused, with what remains and
    // when the window ends.
    assert_eq!(sign(&mut p, 3, pay(1, 3)), Err(over(0, NOW + u64::from(WINDOW), NOW)));
    // Calls that carry no value are not the cap's business.
    sign(&mut p, 3, sample::action(ActionKind::SetAgentUri)).unwrap();
    // A refusal reserved nothing and burnt no sequence.
    let mut p = ready(MemBackend::new(2));
    sign(&mut p, 1, pay(700, 1)).unwrap();
    assert_eq!(sign(&mut p, 2, pay(301, 2)), Err(over(300, NOW + u64::from(WINDOW), NOW)));
    sign(&mut p, 2, pay(300, 2)).unwrap();
    // A sum that would pass 2^256 is refused, not wrapped.
    let huge = Policy {
        spend_cap: Some(SpendCap { max: U256([0xff; 32]), window_secs: WINDOW }),
        ..permissive()
    };
    let mut p = open(MemBackend::new(3));
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: huge, auth: AdminAuth::UNSIGNED }).unwrap();
    sign(&mut p, 1, sample::transfer(U256([0xff; 32]), 1)).unwrap();
    assert!(
        matches!(sign(&mut p, 2, pay(1, 2)), Err(DeviceError::OverCap(c)) if c.remaining() == 0)
    );
}

#[test]
fn an_exact_retry_reserves_nothing_again() {
    let mut p = ready(MemBackend::new(1));
    let first = sign(&mut p, 1, pay(900, 1)).unwrap();
    for _ in 0..5 {
        assert_eq!(sign(&mut p, 1, pay(900, 1)).unwrap(), first);
    }
    // 100 left, not 900 x 6 spent.
    sign(&mut p, 2, pay(100, 2)).unwrap();
    assert_eq!(sign(&mut p, 3, pay(1, 3)), Err(over(0, NOW + u64::from(WINDOW), NOW)));
}

#[test]
fn the_window_only_moves_forward() {
    let mut p = ready(MemBackend::new(1));
    sign(&mut p, 1, pay(1_000, 1)).unwrap();
    // The host sets the clock back: the window does not start again.
    p.device.backend_mut().now = Some(NOW - 10 * u64::from(WINDOW));
    assert_eq!(
        sign(&mut p, 2, pay(1, 2)),
        Err(over(0, NOW + u64::from(WINDOW), NOW - 10 * u64::from(WINDOW)))
    );
    // One second before the window ends: still full.
    let end = NOW + u64::from(WINDOW);
    p.device.backend_mut().now = Some(end - 1);
    assert!(sign(&mut p, 2, pay(1, 2)).is_err());
    // At its end the next window starts, at the first reservation.
    p.device.backend_mut().now = Some(end + 5);
    sign(&mut p, 2, pay(1_000, 2)).unwrap();
    assert_eq!(sign(&mut p, 3, pay(1, 3)), Err(over(0, end + 5 + u64::from(WINDOW), end + 5)));
    // Without a clock, nothing that carries value is signed.
    p.device.backend_mut().now = None;
    assert_eq!(sign(&mut p, 3, pay(1, 3)), Err(DeviceError::Denied(PolicyViolation::NoClock)));
    sign(&mut p, 3, sample::action(ActionKind::SetAgentUri)).unwrap();
}

#[test]
fn a_restart_keeps_the_window_and_a_policy_change_does_not_reset_it() {
    let mut p = ready(MemBackend::new(1));
    sign(&mut p, 1, pay(800, 1)).unwrap();
    let mut p = reopen(p);
    assert_eq!(sign(&mut p, 2, pay(201, 2)), Err(over(200, NOW + u64::from(WINDOW), NOW)));
    // The admin sets the same policy again: the window stays.
    p.admin(SetPolicy { slot: 0, policy: capped(), auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(sign(&mut p, 2, pay(201, 2)), Err(over(200, NOW + u64::from(WINDOW), NOW)));
    sign(&mut p, 2, pay(200, 2)).unwrap();
}

#[test]
fn a_store_that_cannot_keep_the_window_takes_no_cap() {
    let mut backend = MemBackend::new(1);
    backend.reserves_spend = false;
    let mut p = open(backend);
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    let before = p.admin_counter;
    let r = p.admin(SetPolicy { slot: 0, policy: capped(), auth: AdminAuth::UNSIGNED });
    assert_eq!(r.map(|_| ()), Err(DeviceError::Unsupported));
    // Refused before authorization: the next admin command takes the same
    // counter again.
    p.admin_counter = before;
    p.admin(SetPolicy { slot: 0, policy: permissive(), auth: AdminAuth::UNSIGNED }).unwrap();
    sign(&mut p, 1, pay(5_000, 1)).unwrap();
}

/// Power fails at every write step of a run of payments (the write lost, or
/// durable but the call never returning); the device restarts and the
/// client goes on. However it fell, the values released never add up to
/// more than the cap, and the durable window holds every one of them.
#[test]
fn no_power_loss_gives_a_reservation_back() {
    let payments = [300u64, 250, 200, 150, 100, 90, 80];
    let run = |fault: Option<(u64, PowerLoss)>| {
        let p = ready(MemBackend::new(7));
        let setup = p.device.backend().write_steps;
        let mut backend = p.device.into_backend();
        backend.power_loss = fault.map(|(at, mode)| (setup + at, mode));
        let mut p = Pair::new(Device::open(backend, tee_testkit::config()).unwrap());
        let mut released = std::collections::BTreeMap::new();
        let mut crashes = 0;
        for (i, &wei) in payments.iter().enumerate() {
            let sequence = i as u64 + 1;
            loop {
                let r = sign(&mut p, sequence, pay(wei, sequence));
                if let Ok(r) = r {
                    released.insert(sequence, (wei, r.signature));
                }
                if !p.device.backend().dead {
                    break;
                }
                crashes += 1;
                p = reopen(p);
            }
        }
        let total: u64 = released.values().map(|(w, _)| w).sum();
        let window: Option<SpendWindow> = {
            let mut b = p.device.into_backend();
            b.restart();
            tee_core::device::CounterStore::load_spend(&mut b, 0, None).unwrap()
        };
        (total, window, crashes, released.len())
    };
    let (clean_total, clean_window, _, signed) = run(None);
    // 300 + 250 + 200 + 150 + 100 = 1000; 90 and 80 are over the cap.
    assert_eq!((clean_total, signed), (1_000, 5));
    assert_eq!(clean_window.unwrap().spent, U256::from_u64(1_000));
    let mut points = 0;
    for at in 0..16 {
        for mode in [PowerLoss::BeforeWrite, PowerLoss::AfterWrite] {
            let (total, window, crashes, _) = run(Some((at, mode)));
            let reserved = window.map_or(U256::ZERO, |w| w.spent);
            assert!(total <= CAP, "released {total} wei over the cap ({at}, {mode:?})");
            assert!(
                reserved >= U256::from_u64(total),
                "released {total} wei, the durable window holds {reserved} ({at}, {mode:?})"
            );
            points += usize::from(crashes > 0);
        }
    }
    assert!(points >= 10, "the power failed inside the run: {points}");
}

/// A payment the cap refuses is not a signature: it takes nothing from the
/// rate limit either.
#[test]
fn a_refusal_by_the_cap_counts_nothing_against_the_rate_limit() {
    let mut p = open(MemBackend::new(1));
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    let policy = Policy { rate_limit: Some(RateLimit { max: 2, window_secs: 60 }), ..capped() };
    p.admin(SetPolicy { slot: 0, policy, auth: AdminAuth::UNSIGNED }).unwrap();
    sign(&mut p, 1, pay(1_000, 1)).unwrap();
    for _ in 0..3 {
        assert!(matches!(sign(&mut p, 2, pay(1, 2)), Err(DeviceError::OverCap(_))));
    }
    sign(&mut p, 2, sample::action(ActionKind::SetAgentUri)).unwrap();
    let limited =
        DeviceError::DeniedAt { violation: PolicyViolation::RateLimited, device_time: NOW };
    assert_eq!(sign(&mut p, 3, sample::action(ActionKind::RevokeFeedback)), Err(limited));
}
