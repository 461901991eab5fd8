//! `ImportMark` through real frames: marks carried from another state
//! directory or host (`tee-signer marks import`), as a hostile client
//! sharing the socket would try them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tee_core::protocol::*;
use tee_core::{ActionKind, Address, B256, SigningKey};
use tee_testkit::DEVICE_ID;
use tee_testkit::sample;

mod common;
use common::*;

/// Only the device's own statement (or the admin) raises a mark, only for
/// the slot's own key, only upwards, and a raised mark holds across a
/// restart.
#[test]
fn import_mark_only_raises_a_keys_mark_on_authority() {
    let (mut p, key) = ready(permissive());
    let identity = SigningKey::from_bytes(&[0x1d; 32]).unwrap();
    p.device.set_identity(SigningKey::from_bytes(&[0x1d; 32]).unwrap());
    let a = sample::action(ActionKind::SetAgentUri);
    sign(&mut p, 4, a.clone()).unwrap();
    let stated = p.call(&AdminState { slot: 0, nonce: B256([1; 32]) }).unwrap();
    assert_eq!(stated.statement.sequence, 4);
    assert!(stated.statement.has_mark());
    // The mark is signed: a statement with another one is not the device's.
    let s = stated.statement;
    for statement in
        [AdminStatement { sequence: 7, ..s }, AdminStatement { commitment: B256([5; 32]), ..s }]
    {
        assert!(!AdminStateResponse { statement, ..stated.clone() }.is_signed(&DEVICE_ID));
    }
    let signed = |s: &AdminStatement, by: &SigningKey, device: &B256| {
        let typed = tee_core::Action::Eip712Prehashed(tee_core::action::Eip712Prehashed {
            domain_separator: admin_domain_separator(device),
            struct_hash: s.struct_hash(),
        });
        by.sign(&typed).unwrap().signature
    };
    let import = |statement: AdminStatement, signature| ImportMark {
        slot: 0,
        statement,
        signature,
        auth: AdminAuth::UNSIGNED,
    };
    let higher = AdminStatement { sequence: 50, commitment: B256([0xc0; 32]), ..stated.statement };
    // Forged by a stranger, or the identity's for another device: the
    // admin's word is needed, and absent.
    let stranger = SigningKey::from_bytes(&[0x99; 32]).unwrap();
    for sig in [signed(&higher, &stranger, &DEVICE_ID), signed(&higher, &identity, &B256([7; 32]))]
    {
        assert_eq!(p.call(&import(higher, sig)), Err(DeviceError::Unauthorized));
    }
    // The device's own statement of another key: not this slot's mark.
    let other = AdminStatement { key: Address([9; 20]), ..higher };
    assert_eq!(
        p.call(&import(other, signed(&other, &identity, &DEVICE_ID))),
        Err(DeviceError::OtherKey)
    );
    // Nor for an empty slot.
    let empty = ImportMark { slot: 1, ..import(higher, signed(&higher, &identity, &DEVICE_ID)) };
    assert_eq!(p.call(&empty), Err(DeviceError::OtherKey));
    assert_eq!(sign(&mut p, 5, a.clone()).map(|_| ()), Ok(()));
    // Its own statement: raised, no admin counter spent.
    let counter =
        p.call(&AdminState { slot: 0, nonce: B256([2; 32]) }).unwrap().statement.last_counter;
    let r = p.call(&import(higher, signed(&higher, &identity, &DEVICE_ID))).unwrap();
    assert_eq!(r, MarkImported { slot: 0, sequence: Some(50), raised: true });
    let after = p.call(&AdminState { slot: 0, nonce: B256([3; 32]) }).unwrap().statement;
    assert_eq!(
        (after.sequence, after.commitment, after.last_counter),
        (50, B256([0xc0; 32]), counter)
    );
    assert_eq!(sign(&mut p, 50, a.clone()), Err(DeviceError::Replay { high_water: 50 }));
    // A lower one (the old statement, replayed): nothing moves back.
    let r = p.call(&import(stated.statement, stated.signature)).unwrap();
    assert_eq!(r, MarkImported { slot: 0, sequence: Some(50), raised: false });
    // The admin raises a stranger's statement (another device's export).
    let moved = AdminStatement { sequence: 80, ..higher };
    let mut cmd = import(moved, signed(&moved, &stranger, &DEVICE_ID));
    let admin = SigningKey::from_bytes(&tee_testkit::ADMIN_SECRET).unwrap();
    authorize(&mut cmd, &admin, &DEVICE_ID, counter + 1).unwrap();
    assert_eq!(p.call(&cmd).unwrap().sequence, Some(80));
    assert_eq!(p.call(&cmd), Err(DeviceError::AdminReplay { last: counter + 1 }));
    // The raised mark survives a restart.
    let mut p = open(p.device.into_backend());
    assert_eq!(sign(&mut p, 80, a.clone()), Err(DeviceError::Replay { high_water: 80 }));
    assert!(sign(&mut p, 81, a).is_ok());
    let _ = key;
}
