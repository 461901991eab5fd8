//! Admin commands through real frames: who may run them (the admin key,
//! for this device, for this command and body), the admin counter's
//! anti-replay across restarts, a `SetPolicy` authorized before its policy
//! is read, the signed admin state, and keys replaced only when said.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tee_core::binding::{self, Purpose};
use tee_core::client::decode_response;
use tee_core::device::CounterId;
use tee_core::frame::{self, Header};
use tee_core::primitives::keccak256;
use tee_core::protocol::*;
use tee_core::{Address, B256, SigningKey, codec};
use tee_testkit::{DEVICE_ID, MemBackend};

mod common;
use common::*;

#[test]
fn admin_authorization() {
    let mut p = open(MemBackend::new(1));
    let stranger = SigningKey::from_bytes(&[0x99; 32]).unwrap();

    // Signed by someone else.
    let mut cmd = GenerateKey { slot: 0, replace: true, auth: AdminAuth::UNSIGNED };
    authorize(&mut cmd, &stranger, &DEVICE_ID, 1).unwrap();
    assert_eq!(p.call(&cmd), Err(DeviceError::Unauthorized));

    // Signed by the admin for another device.
    let admin = SigningKey::from_bytes(&tee_testkit::ADMIN_SECRET).unwrap();
    authorize(&mut cmd, &admin, &B256([0xee; 32]), 1).unwrap();
    assert_eq!(p.call(&cmd), Err(DeviceError::Unauthorized));

    // Properly signed, then the payload altered (another slot).
    authorize(&mut cmd, &admin, &DEVICE_ID, 1).unwrap();
    let mut moved = cmd.clone();
    moved.slot = 1;
    assert_eq!(p.call(&moved), Err(DeviceError::Unauthorized));
    // Signed for another command code with the same body prefix.
    let mut derive =
        DeriveKey { slot: 0, path: Default::default(), replace: false, auth: AdminAuth::UNSIGNED };
    authorize(&mut derive, &admin, &DEVICE_ID, 1).unwrap();
    let forged = GenerateKey { slot: 0, replace: true, auth: derive.auth };
    assert_eq!(p.call(&forged), Err(DeviceError::Unauthorized));

    // The genuine request works once; replaying it is refused.
    assert!(p.call(&cmd).is_ok());
    assert_eq!(p.call(&cmd), Err(DeviceError::AdminReplay { last: 1 }));
    // A lower counter too, and a jump: only the next one is taken (a
    // counter at u64::MAX would lock the admin out for good).
    for counter in [0, 3, 7, u64::MAX - 1, u64::MAX] {
        authorize(&mut cmd, &admin, &DEVICE_ID, counter).unwrap();
        assert_eq!(p.call(&cmd), Err(DeviceError::AdminReplay { last: 1 }), "{counter}");
    }
    authorize(&mut cmd, &admin, &DEVICE_ID, 2).unwrap();
    assert!(p.call(&cmd).is_ok());
    // The counter survives a restart.
    let mut p = open(p.device.into_backend());
    assert_eq!(p.call(&cmd), Err(DeviceError::AdminReplay { last: 2 }));
    assert_eq!(p.device.backend().counter(CounterId::Admin).unwrap().value, 2);
    // A request-only client cannot widen its own policy.
    let mut widen = SetPolicy { slot: 0, policy: permissive(), auth: AdminAuth::UNSIGNED };
    authorize(&mut widen, &stranger, &DEVICE_ID, 100).unwrap();
    assert_eq!(p.call(&widen), Err(DeviceError::Unauthorized));
    assert_eq!(p.call(&GetPolicy { slot: 0 }).unwrap(), Policy::default());
}

mod erased {
    /// A command's canonical encoding, whatever its type.
    pub trait Encode {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Encode for T {
        fn bytes(&self) -> Vec<u8> {
            let mut buf = vec![0u8; 4096];
            let n = tee_core::codec::encode(self, &mut buf).unwrap().len();
            buf.truncate(n);
            buf
        }
    }
}

/// A `SetPolicy`'s signature is checked from the body's end before its
/// policy is decoded: the split is exact for every admin command, and a
/// policy altered under a genuine signature, a signature for another
/// policy or command, or a tail that is not an authorization never gets a
/// policy set or a counter spent.
#[test]
fn set_policy_is_authorized_before_its_policy_is_read() {
    let admin = SigningKey::from_bytes(&tee_testkit::ADMIN_SECRET).unwrap();
    let mut policies = vec![Policy::default(), permissive(), tee_testkit::typed_policy()];
    let mut p2 = permissive();
    p2.unlimited_approvals = true;
    p2.valid_until = u64::MAX;
    policies.push(p2);
    let encode = |cmd: &dyn erased::Encode| cmd.bytes();
    for (i, policy) in policies.iter().enumerate() {
        let mut cmd = SetPolicy { slot: 0, policy: policy.clone(), auth: AdminAuth::UNSIGNED };
        authorize(&mut cmd, &admin, &DEVICE_ID, 1 + i as u64 * 1000).unwrap();
        let body = encode(&cmd);
        let (prefix, auth) = split_auth(&body).expect("splits");
        assert_eq!(auth, cmd.auth, "policy {i}");
        assert_eq!(keccak256(prefix), admin_payload_hash(&body, &cmd), "policy {i}");
    }
    for path in ["", "m/44'/60'/0'/0/0", &"é".repeat(32)] {
        let path = tee_core::heapless::String::try_from(path).unwrap();
        for replace in [false, true] {
            let mut cmd =
                DeriveKey { slot: 3, path: path.clone(), replace, auth: AdminAuth::UNSIGNED };
            authorize(&mut cmd, &admin, &DEVICE_ID, u64::MAX).unwrap();
            let body = encode(&cmd);
            assert_eq!(split_auth(&body).map(|(_, a)| a), Some(cmd.auth));
        }
    }

    let (mut p, _) = ready(Policy::default());
    let counter = || 3;
    // A genuine signature over one policy, the body carrying another.
    let mut cmd =
        SetPolicy { slot: 0, policy: tee_testkit::typed_policy(), auth: AdminAuth::UNSIGNED };
    authorize(&mut cmd, &admin, &DEVICE_ID, counter()).unwrap();
    let swapped = SetPolicy { policy: permissive(), ..cmd.clone() };
    assert_eq!(p.call(&swapped), Err(DeviceError::Unauthorized));
    // The same signature for another command code.
    let mut derive =
        DeriveKey { slot: 0, path: Default::default(), replace: false, auth: AdminAuth::UNSIGNED };
    authorize(&mut derive, &admin, &DEVICE_ID, counter()).unwrap();
    assert_eq!(
        p.call(&SetPolicy { auth: derive.auth, ..cmd.clone() }),
        Err(DeviceError::Unauthorized)
    );
    // Tails that are not an authorization: cut, extended, garbage.
    let body = encode(&cmd);
    for bad in [
        &body[..body.len() - 1],
        &body[..10],
        &[body.as_slice(), &[0]].concat()[..],
        &[0xff; 80][..],
    ] {
        let header = Header { version: PROTOCOL_VERSION, command: SetPolicy::CODE, request_id: 9 };
        let mut out = [0u8; 4096];
        let f = frame::encode_raw(&header, bad, &mut out).unwrap().to_vec();
        let response = p.send_raw(&f).pop().unwrap();
        let (_, r) = Header::split(&response).unwrap();
        let r = codec::decode::<Result<PolicySet, DeviceError>>(r).unwrap();
        assert!(
            matches!(r, Err(DeviceError::Malformed(_)) | Err(DeviceError::Unauthorized)),
            "{r:?}"
        );
    }
    assert_eq!(p.call(&GetPolicy { slot: 0 }).unwrap(), Policy::default());
    // Nothing spent: the genuine command is taken at the next counter.
    assert!(p.call(&cmd).is_ok());
    assert_eq!(p.call(&GetPolicy { slot: 0 }).unwrap(), tee_testkit::typed_policy());
}

/// The device's admin state, signed by its identity key: what an admin tool
/// trusts through a middleman.
#[test]
fn admin_state_is_signed_by_the_identity() {
    let (mut p, _) = ready(permissive());
    let nonce = B256([0x4e; 32]);
    assert_eq!(p.call(&AdminState { slot: 0, nonce }), Err(DeviceError::Unsupported));
    let identity = SigningKey::from_bytes(&[0x1d; 32]).unwrap();
    p.device.set_identity(SigningKey::from_bytes(&[0x1d; 32]).unwrap());
    let r = p.call(&AdminState { slot: 0, nonce }).unwrap();
    assert_eq!(r.identity, identity.address());
    assert!(r.is_signed(&DEVICE_ID));
    let s = r.statement;
    assert_eq!(s.nonce, nonce);
    // Generate and set policy: counters 1 and 2.
    assert_eq!(s.last_counter, 2);
    let mut buf = [0u8; 1024];
    let policy = codec::encode(&permissive(), &mut buf).unwrap().to_vec();
    assert_eq!(s.policy_hash, tee_core::primitives::keccak256(&policy));
    assert_eq!(s.key, p.call(&GetPublicKey { slot: 0 }).unwrap().address);
    // Each field is signed: a statement changed in any one is not.
    let changed = [
        AdminStatement { nonce: B256([1; 32]), ..s },
        AdminStatement { last_counter: 3, ..s },
        AdminStatement { last_payload: B256([2; 32]), ..s },
        AdminStatement { slot: 1, ..s },
        AdminStatement { key: Address([3; 20]), ..s },
        AdminStatement { policy_hash: B256([4; 32]), ..s },
    ];
    for statement in changed {
        assert!(!AdminStateResponse { statement, ..r.clone() }.is_signed(&DEVICE_ID));
    }
    // Another device's statement is not this one's.
    assert!(!r.is_signed(&B256([0x77; 32])));
    // The device slot states the counter alone; an empty slot zeros.
    let d = p.call(&AdminState { slot: DEVICE_SLOT, nonce }).unwrap().statement;
    assert_eq!((d.last_counter, d.key, d.policy_hash), (2, Address::ZERO, B256::ZERO));
    let e = p.call(&AdminState { slot: 1, nonce }).unwrap().statement;
    assert_eq!((e.key, e.policy_hash), (Address::ZERO, B256::ZERO));
    assert_eq!(p.call(&AdminState { slot: 200, nonce }), Err(DeviceError::NoSuchSlot));
    // Attest at the device slot binds the identity, for purpose "device".
    let c = B256([0xcc; 32]);
    let payload = p.request(&Attest { slot: DEVICE_SLOT, challenge: c });
    let a = decode_response::<Attest>(&payload).unwrap().1.unwrap();
    assert_eq!(a.address, identity.address());
    assert_eq!(
        binding::check_binding(&a.report_data.0, &identity.address(), Purpose::Device, &c),
        Ok(())
    );
}

/// A key is never lost without the admin saying so: a key-creating command
/// on a slot that holds another key is refused (the key and its policy
/// stay) unless it says `replace`; deriving the same path again gives the
/// same key and needs nothing. Before, either command replaced the key and
/// reset the policy to deny-all without a word.
#[test]
fn a_key_is_replaced_only_when_the_admin_says_so() {
    let derive = |path: &str| DeriveKey {
        slot: 3,
        path: tee_core::heapless::String::try_from(path).unwrap(),
        replace: false,
        auth: AdminAuth::UNSIGNED,
    };
    let mut p = open(MemBackend::new(1));
    let first = p.admin(derive("agent/1")).unwrap();
    p.admin(SetPolicy { slot: 3, policy: permissive(), auth: AdminAuth::UNSIGNED }).unwrap();
    for refused in [
        p.admin(GenerateKey { slot: 3, replace: false, auth: AdminAuth::UNSIGNED }),
        p.admin(derive("agent/2")),
    ] {
        assert_eq!(refused, Err(DeviceError::SlotOccupied));
    }
    // Refused before authorization: neither counter was spent.
    p.admin_counter -= 2;
    let kept = p.call(&GetPublicKey { slot: 3 }).unwrap();
    assert_eq!(kept.address, first.address);
    assert_eq!(p.call(&GetPolicy { slot: 3 }).unwrap(), permissive());
    // The same path again: the same key.
    let again = p.admin(derive("agent/1")).unwrap();
    assert_eq!(again.address, first.address);
    // Said: replaced.
    let new = p.admin(GenerateKey { slot: 3, replace: true, auth: AdminAuth::UNSIGNED }).unwrap();
    assert_ne!(new.address, first.address);
}
