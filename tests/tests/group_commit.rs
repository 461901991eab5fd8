//! Crash safety of the group commit: the real server on a state directory,
//! several clients signing at once over several slots (two of them racing
//! another client for the same slot's sequences with other actions), and
//! power lost at a sync of the journal, before it reached the disk or after
//! but before anyone was told; the disk then holds what was durable plus
//! none, half or all of what was written after. On every such image, the
//! restarted signer has: no two different signatures released for one
//! (slot, sequence); every released signature's mark (never a lower one);
//! every released sequence refused for another action, and answered with
//! the same signature for the same one at the mark.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tee_client::ClientError;
use tee_core::protocol::{AdminAuth, DeviceError, GenerateKey, GetPublicKey, SetPolicy, Sign};
use tee_core::{Action, ActionKind, B256};
use tee_store::store::Fault;
use tee_testkit::sample;
use tee_tests::crash::{images, open, race};

const SLOTS: u8 = 4;

fn action(client: u64, sequence: u64) -> Action<'static> {
    sample::with_nonce(sample::action(ActionKind::SetAgentUri), client * 1_000 + sequence)
}

/// (slot, sequence) -> (action's client, digest, signature bytes)
type Released = BTreeMap<(u8, u64), Vec<(u64, B256, [u8; 65])>>;

/// Runs clients until the fault stops the signer; returns what was
/// released and how much of the journal was durable at the crash.
fn sign_until_the_crash(dir: &Path, fault_at: u64, after: bool) -> (Released, usize) {
    let state = dir.join("state");
    let (mut p, group) = open(&state);
    for slot in 0..SLOTS {
        p.admin(GenerateKey { slot, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
        let policy = tee_testkit::typed_policy();
        p.admin(SetPolicy { slot, policy, auth: AdminAuth::UNSIGNED }).unwrap();
    }
    let n = group.syncs() + fault_at;
    group.inject(if after { Fault::AfterSync(n) } else { Fault::BeforeSync(n) });
    let released = Arc::new(Mutex::new(Released::new()));
    let log = released.clone();
    // Clients 0-3 on their own slots; 4 and 5 race 0 and 1 for theirs.
    let (_, durable) = race(dir, p.device, &group, 6, move |client, c| {
        let slot = (client % u64::from(SLOTS)) as u8;
        let mut sequence = 1;
        while sequence <= 40 {
            let sign = Sign { slot, sequence, action: action(client, sequence) };
            match c.call(&sign) {
                Ok(r) => {
                    let entry = (client, r.digest, r.signature.to_bytes());
                    log.lock().unwrap().entry((slot, sequence)).or_default().push(entry);
                    sequence += 1;
                }
                Err(ClientError::Device(DeviceError::Replay { high_water })) => {
                    sequence = high_water + 1;
                }
                // The power is off: nothing more comes out.
                Err(ClientError::Device(DeviceError::Storage)) => return,
                Err(e) => panic!("client {client}: {e}"),
            }
        }
    });
    let r = released.lock().unwrap().clone();
    (r, durable)
}

#[test]
fn a_crash_at_any_step_of_a_group_commit_loses_no_released_mark() {
    for fault_at in [1u64, 2, 3, 5, 9, 17] {
        for after in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (released, durable) = sign_until_the_crash(dir.path(), fault_at, after);
            assert!(!released.is_empty() || fault_at == 1, "something was signed first");
            // The disk at the crash: the durable part, then a prefix of the rest.
            for (tail, image) in images(dir.path(), &dir.path().join("state"), durable) {
                check(&image, &released, fault_at, after, tail);
            }
        }
    }
}

fn check(image: &Path, released: &Released, fault_at: u64, after: bool, tail: usize) {
    let at = format!("fault at sync +{fault_at} (after: {after}), tail {tail}");
    let (mut p, _) = open(image);
    for ((slot, sequence), sigs) in released {
        // Never two different signatures for one (slot, sequence).
        assert!(sigs.windows(2).all(|w| w[0].1 == w[1].1 && w[0].2 == w[1].2), "{at}: {sigs:?}");
        let (client, digest, signature) = sigs[0];
        let mark = p.call(&GetPublicKey { slot: *slot }).unwrap().high_water;
        assert!(
            mark >= Some(*sequence),
            "{at}: slot {slot} mark {mark:?} below released {sequence}"
        );
        // Another action at a released sequence: refused.
        let other = Sign { slot: *slot, sequence: *sequence, action: action(99, *sequence) };
        assert!(
            matches!(p.call(&other), Err(DeviceError::Replay { .. })),
            "{at}: slot {slot} seq {sequence}"
        );
        // The same action: the same signature at the mark, refused below it.
        let same = Sign { slot: *slot, sequence: *sequence, action: action(client, *sequence) };
        match p.call(&same) {
            Ok(r) => {
                assert_eq!(mark, Some(*sequence), "{at}");
                assert_eq!((r.digest, r.signature.to_bytes()), (digest, signature), "{at}");
            }
            Err(DeviceError::Replay { .. }) => assert!(mark > Some(*sequence), "{at}"),
            Err(e) => panic!("{at}: {e:?}"),
        }
    }
}
