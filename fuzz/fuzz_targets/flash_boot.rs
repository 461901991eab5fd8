//! The firmware's boot from whatever its flash holds. The flash is a
//! known-good image (keys in three slots, policies, counters, several page
//! compactions behind it) with bytes overwritten or a page erased, or
//! arbitrary contents. Booting either stops with a typed error or yields a
//! device; a device that booted keeps its promises from then on:
//! - it answers every slot's `GetPublicKey`;
//! - a signature it releases at (slot, sequence) is durable: the store
//!   opens again, the slot's counter is at least that sequence, and another
//!   action at that sequence is refused as a replay.
//!
//! Input: `mode ‖ rest`. Mode 0: the good image, then `rest` read as
//! patches `offset (u16 LE) ‖ byte`. Mode 1: `rest` is the image (the
//! remainder erased). Mode 2: the good image with page `rest[0] % 4`
//! erased, then patches from `rest[1..]`.
#![no_main]

use std::sync::LazyLock;

use firmware_sim::backend::McuBackend;
use firmware_sim::entropy::ChaChaEntropy;
use firmware_sim::flash::SimFlash;
use libfuzzer_sys::fuzz_target;
use tee_core::device::{CounterId, CounterStore, Device};
use tee_core::protocol::*;
use tee_core::{Action, ActionKind};
use tee_testkit::Pair;
use tee_testkit::sample;

const PAGE: usize = 1024;
const PAGES: usize = 4;
type Flash = SimFlash<Vec<u8>, PAGE, PAGES>;
type Backend = McuBackend<Flash, ChaChaEntropy>;

fn action(nonce: u64) -> Action<'static> {
    sample::with_nonce(sample::action(ActionKind::SetAgentUri), nonce)
}

fn open(flash: Flash) -> Option<Pair<Backend>> {
    let backend = McuBackend::open(flash, ChaChaEntropy::from_seed([3; 32])).ok()?;
    Device::open(backend, tee_testkit::config()).ok().map(Pair::new)
}

/// Slots 0 to 2 with keys, 0 and 1 allowed to sign, 20 signatures: the
/// 1 KiB pages compact several times on the way.
static GOOD_IMAGE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut p = open(SimFlash::new(vec![0xff; PAGE * PAGES])).expect("blank flash boots");
    for slot in 0..3 {
        p.admin(GenerateKey { slot, replace: false, auth: AdminAuth::UNSIGNED }).expect("key");
    }
    for slot in 0..2 {
        p.admin(SetPolicy { slot, policy: tee_testkit::typed_policy(), auth: AdminAuth::UNSIGNED })
            .expect("policy");
    }
    for sequence in 1..=20u64 {
        let slot = (sequence % 2) as u8;
        p.call(&Sign { slot, sequence, action: action(sequence) }).expect("signs");
    }
    p.device.into_backend().into_parts().0.contents().to_vec()
});

fn patch(image: &mut [u8], patches: &[u8]) {
    for p in patches.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([p[0], p[1]])) % image.len();
        image[at] = p[2];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut image = GOOD_IMAGE.clone();
    match mode % 3 {
        0 => patch(&mut image, rest),
        1 => {
            image.fill(0xff);
            let n = rest.len().min(image.len());
            image[..n].copy_from_slice(&rest[..n]);
        }
        _ => {
            let page = usize::from(rest.first().copied().unwrap_or(0)) % PAGES;
            image[page * PAGE..(page + 1) * PAGE].fill(0xff);
            patch(&mut image, rest.get(1..).unwrap_or(&[]));
        }
    }

    let Some(mut p) = open(SimFlash::new(image)) else { return };
    let mut released = Vec::new();
    for slot in 0..NUM_SLOTS as u8 {
        let key = match p.call(&GetPublicKey { slot }) {
            Ok(key) => key,
            Err(DeviceError::SlotEmpty) => continue,
            Err(e) => panic!("slot {slot} of a booted device: {e:?}"),
        };
        let Some(sequence) = key.high_water.unwrap_or(0).checked_add(1) else { continue };
        if let Ok(r) = p.call(&Sign { slot, sequence, action: action(sequence) }) {
            assert_eq!(r.sequence, sequence);
            released.push((slot, sequence));
        }
    }
    if released.is_empty() {
        return;
    }

    // Reboot: what was released is durable.
    let (flash, _) = p.device.into_backend().into_parts();
    let mut p = open(flash).expect("a store that booted and committed boots again");
    for (slot, sequence) in released {
        let mark = p.device.backend_mut().load_counter(CounterId::Slot(slot)).expect("counter");
        assert!(mark.is_some_and(|m| m.value >= sequence), "slot {slot}: {sequence} not durable");
        let again = p.call(&Sign { slot, sequence, action: action(sequence + 1) });
        assert!(
            matches!(again, Err(DeviceError::Replay { .. })),
            "slot {slot}: a second action at {sequence} was not refused: {again:?}"
        );
    }
});
