//! The host as an attacker: it holds the disk of a signer in a CVM, stops
//! and starts it at will. Each edit of the state is refused with a clear
//! reason at the next start, never read as an empty slot, a lower mark or
//! another admin; no second signature comes out at a used sequence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;

use tee_core::protocol::*;
use tee_core::{Action, ActionKind, SigningKey};
use tee_host::backend::{
    HOST_SLOTS, HostBackend, HostDevice, OpenError, SignerConfig, open_device,
};
use tee_sim::{SimDstack, SimServer};
use tee_store::store::{JOURNAL, StoreError};
use tee_testkit::{ADMIN_SECRET, Pair, sample};
use tee_tests::signer::{admin, derive_typed};
use tee_transport::Endpoint;

fn sim(dir: &Path, app: u8) -> SimServer {
    let sim = SimDstack::new(&[0x11; 32], [app; 20], [0x33; 32]).unwrap();
    SimServer::start(sim, &Endpoint::Unix(dir.join(format!("dstack-{app}.sock")))).unwrap()
}

fn config(dir: &Path, dstack: &SimServer, admin: bool) -> SignerConfig {
    SignerConfig {
        state: dir.join("state"),
        dstack: Some(dstack.endpoint().to_owned()),
        kind: BackendKind::Simulated,
        admin: admin.then(|| SigningKey::from_bytes(&ADMIN_SECRET).unwrap().address()),
        marks: None,
        accept_async_standbys: false,
    }
}

/// A signer whose slot 0 holds a derived key allowed to sign typed kinds,
/// having signed sequences 1 to 5.
fn signed_to_five(dir: &Path, dstack: &SimServer) -> Pair<HostBackend, HOST_SLOTS> {
    let device = open_device(&config(dir, dstack, true)).unwrap();
    let mut p = Pair::with(device);
    derive_typed(&mut p);
    for s in 1..=5 {
        p.call(&Sign { slot: 0, sequence: s, action: action(s) }).unwrap();
    }
    p
}

fn action(nonce: u64) -> Action<'static> {
    sample::with_nonce(sample::action(ActionKind::SetAgentUri), nonce)
}

fn reopen(dir: &Path, dstack: &SimServer, admin: bool) -> Result<Box<HostDevice>, OpenError> {
    open_device(&config(dir, dstack, admin))
}

fn journal(dir: &Path) -> std::path::PathBuf {
    dir.join("state").join(JOURNAL)
}

#[test]
fn a_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = sim(dir.path(), 1);
    let p = signed_to_five(dir.path(), &dstack);
    let before = p.device.backend().dstack().map(|_| ());
    drop(p);
    let mut p = Pair::with(reopen(dir.path(), &dstack, false).unwrap());
    assert_eq!(before, Some(()));
    assert_eq!(p.call(&GetPublicKey { slot: 0 }).unwrap().high_water, Some(5));
    // The exact retry still answers; another action at 5 does not.
    p.call(&Sign { slot: 0, sequence: 5, action: action(5) }).unwrap();
    let r = p.call(&Sign { slot: 0, sequence: 5, action: action(99) });
    assert_eq!(r, Err(DeviceError::Replay { high_water: 5 }));
    // And the audit chain went on across the restart.
    let log = p.call(&GetAuditLog { from: 0 }).unwrap();
    assert_eq!(log.oldest_kept, 0);
    assert!(log.next_index > 10, "{log:?}");
}

/// Before, deleting one counter file and restarting let a different action
/// be signed at a used sequence. The state is one journal now: taking
/// anything out of it is refused, and deleting all of it leaves no key to
/// sign with.
#[test]
fn deleting_or_editing_the_state_never_lowers_a_mark() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = sim(dir.path(), 1);
    drop(signed_to_five(dir.path(), &dstack));
    let good = std::fs::read(journal(dir.path())).unwrap();

    // Any byte changed more than one write from the end: refused. Nearer
    // the end an edit reads as the last write torn by a crash, which is a
    // cut tail at worst: the whole-state rollback no signer can see
    // without a counter outside the host (docs/security.md). Never does a
    // changed record open.
    let tail = good.len().saturating_sub(tee_store::store::MAX_APPEND);
    for at in (0..good.len()).step_by(41) {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        std::fs::write(journal(dir.path()), &bad).unwrap();
        match reopen(dir.path(), &dstack, false) {
            Err(OpenError::Store(StoreError::Journal { .. })) => {}
            Ok(d) if at >= tail => {
                // The journal up to the edit: every mark after it is cut
                // (all five when the edit is in the policy's record, which
                // lies within one write's length of the end), as a host
                // truncating the file cuts them.
                let hw = Pair::with(d).call(&GetPublicKey { slot: 0 }).unwrap().high_water;
                assert!(matches!(hw, None | Some(1..=5)), "byte {at}: {hw:?}");
            }
            Ok(_) => panic!("byte {at}: an edit opened"),
            Err(e) => panic!("byte {at}: {e}"),
        }
    }
    // The error says what happened.
    let mut bad = good.clone();
    bad[130] ^= 1;
    std::fs::write(journal(dir.path()), &bad).unwrap();
    let e = reopen(dir.path(), &dstack, false).unwrap_err().to_string();
    assert!(e.contains("edited") || e.contains("not what was written"), "{e}");

    // The journal deleted: without the admin it does not start; with it,
    // it is a new device with empty slots: no key signs at 5 again.
    std::fs::remove_file(journal(dir.path())).unwrap();
    let e = reopen(dir.path(), &dstack, false).unwrap_err().to_string();
    assert!(e.contains("give the admin address"), "{e}");
    let mut p = Pair::with(reopen(dir.path(), &dstack, true).unwrap());
    let r = p.call(&Sign { slot: 0, sequence: 5, action: action(99) });
    assert_eq!(r, Err(DeviceError::SlotEmpty));
}

/// The admin and the slot records are in the authenticated journal: the
/// host cannot swap the admin, nor put back an older policy.
#[test]
fn the_admin_and_older_records_cannot_be_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = sim(dir.path(), 1);
    let mut p = signed_to_five(dir.path(), &dstack);
    let with_policy = std::fs::read(journal(dir.path())).unwrap();
    // The admin tightens the policy: deny-all.
    admin(&mut p, SetPolicy { slot: 0, policy: Policy::default(), auth: AdminAuth::UNSIGNED });
    drop(p);
    let tightened = std::fs::read(journal(dir.path())).unwrap();
    // The older journal's records spliced into the newer one (the loose
    // policy's records after the tightening): their MACs do not chain.
    // Before the last write, that is an edit; at the end, a torn tail,
    // dropped: either way the loose policy does not come back.
    let old_tail = &with_policy[with_policy.len() - 300..];
    let mut inside = tightened.clone();
    let at = tightened.len() - 100;
    inside.splice(at..at, old_tail.iter().copied());
    std::fs::write(journal(dir.path()), &inside).unwrap();
    assert!(matches!(
        reopen(dir.path(), &dstack, false),
        Err(OpenError::Store(StoreError::Journal { .. }))
    ));
    let mut appended = tightened.clone();
    appended.extend_from_slice(old_tail);
    std::fs::write(journal(dir.path()), &appended).unwrap();
    let mut p = Pair::with(reopen(dir.path(), &dstack, false).unwrap());
    let r = p.call(&Sign { slot: 0, sequence: 6, action: action(6) });
    assert_eq!(r, Err(DeviceError::Denied(PolicyViolation::KindNotAllowed)));
    drop(p);
    std::fs::write(journal(dir.path()), &tightened).unwrap();
    let mut p = Pair::with(reopen(dir.path(), &dstack, false).unwrap());
    let r = p.call(&Sign { slot: 0, sequence: 6, action: action(6) });
    assert_eq!(r, Err(DeviceError::Denied(PolicyViolation::KindNotAllowed)));
    drop(p);
    // Another admin given at a restart is refused (it is fixed at
    // provisioning), and none can be written in without the state key.
    let mut other = config(dir.path(), &dstack, true);
    other.admin = Some(tee_core::Address([0x66; 20]));
    let e = open_device(&other).unwrap_err().to_string();
    assert!(e.contains("fixed at provisioning"), "{e}");
}

/// The journal is keyed to the app: the same directory under another app's
/// dstack (another key) does not open.
#[test]
fn another_apps_state_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let ours = sim(dir.path(), 1);
    drop(signed_to_five(dir.path(), &ours));
    let theirs = sim(dir.path(), 2);
    let e = reopen(dir.path(), &theirs, true).unwrap_err().to_string();
    assert!(e.contains("does not open under this state key"), "{e}");
}

/// State written by the earlier per-file format (records with a CRC, no
/// MAC) is refused, never trusted.
#[test]
fn unauthenticated_old_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = sim(dir.path(), 1);
    let state = dir.path().join("state");
    tee_store::store::create_private_dir(&state).unwrap();
    std::fs::write(state.join("device.json"), b"{}").unwrap();
    let e = reopen(dir.path(), &dstack, true).unwrap_err().to_string();
    assert!(e.contains("older version"), "{e}");
}
