//! The firmware on a Cortex-M4 under QEMU (`mps2-an386`), driven over its
//! emulated serial line by tee-client: device info, key generation,
//! signatures recovered by alloy to the device's address, a policy refusal,
//! replay refusals, and garbage on the line followed by a good request.
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` target (`.ci/run`
//! installs both); it builds the image itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tee_client::ClientError;
use tee_core::action::BoundField;
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, B256, SigningKey};
use tee_testkit::sample;
use tee_testkit::{ADMIN_SECRET, DEVICE_ID};
use tee_tests::alloy_digest;
use tee_tests::qemu::{Options, Qemu, image};

fn recover_with_alloy(r: &SignResponse) -> [u8; 20] {
    let sig = alloy_primitives::Signature::from_raw_array(&r.signature.to_bytes()).unwrap();
    sig.recover_address_from_prehash(&alloy_primitives::B256::from(r.digest.0)).unwrap().0.0
}

#[test]
fn firmware_over_the_emulated_uart() {
    let (_qemu, mut c) = Qemu::boot(&image(), Options::default());
    let admin = SigningKey::from_bytes(&ADMIN_SECRET).unwrap();

    let info = c.call(&DeviceInfo).unwrap();
    assert_eq!(info.backend, BackendKind::Mcu);
    assert_eq!(info.device_id, DEVICE_ID);
    assert_eq!(info.admin, admin.address());
    assert_eq!(info.capabilities, capability::GENERATE);
    // The microcontroller's own bounds, smaller than the host's.
    let mcu = info.bounds;
    assert_eq!(mcu, tee_core::action::ActionBounds::MCU);
    assert_eq!((mcu.uri, mcu.metadata_value, mcu.calldata, mcu.message), (256, 128, 512, 512));
    assert_eq!(info.max_request_frame as usize, tee_core::limits::MCU_REQUEST_FRAME);

    let key = c
        .admin(
            GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED },
            &admin,
            &DEVICE_ID,
            1,
        )
        .unwrap();
    assert_eq!(c.call(&GetPublicKey { slot: 0 }).unwrap(), key);

    // Deny by default: a fresh key signs nothing.
    let register = sample::action(ActionKind::Register);
    let r = c.call(&Sign { slot: 0, sequence: 1, action: register.clone() });
    assert!(
        matches!(r, Err(ClientError::Device(DeviceError::Denied(PolicyViolation::KindNotAllowed)))),
        "{r:?}"
    );

    c.admin(
        SetPolicy { slot: 0, policy: tee_testkit::typed_policy(), auth: AdminAuth::UNSIGNED },
        &admin,
        &DEVICE_ID,
        2,
    )
    .unwrap();
    let mut signed = Vec::new();
    for (sequence, kind) in
        [(1, ActionKind::Register), (2, ActionKind::SetAgentUri), (3, ActionKind::GiveFeedback)]
    {
        let action = sample::action(kind);
        let r = c.call(&Sign { slot: 0, sequence, action: action.clone() }).unwrap();
        assert_eq!(r.digest.0, alloy_digest(&action).0, "{kind}: the device's digest is alloy's");
        assert_eq!(
            recover_with_alloy(&r),
            key.address.0,
            "{kind}: alloy recovers the device's address"
        );
        signed.push((sequence, action, r));
    }

    // Replays: another action at a used sequence, a lower sequence.
    let r = c.call(&Sign { slot: 0, sequence: 3, action: register.clone() });
    assert!(matches!(r, Err(ClientError::Device(DeviceError::Replay { high_water: 3 }))), "{r:?}");
    let r = c.call(&Sign { slot: 0, sequence: 2, action: signed[1].1.clone() });
    assert!(matches!(r, Err(ClientError::Device(DeviceError::Replay { high_water: 3 }))), "{r:?}");
    // The exact retry of the last one: the same signature.
    let (seq, action, first) = &signed[2];
    assert_eq!(&c.call(&Sign { slot: 0, sequence: *seq, action: action.clone() }).unwrap(), first);

    // A policy refusal: a blind kind the policy does not name, and a
    // deadline rule on a board without a clock.
    let r = c.call(&Sign {
        slot: 0,
        sequence: 10,
        action: sample::action(ActionKind::PersonalMessage),
    });
    assert!(
        matches!(r, Err(ClientError::Device(DeviceError::Denied(PolicyViolation::KindNotAllowed)))),
        "{r:?}"
    );
    let Action::AgentWalletSet(mut w) = sample::action(ActionKind::AgentWalletSet) else {
        unreachable!()
    };
    w.new_wallet = key.address;
    let r = c.call(&Sign { slot: 0, sequence: 11, action: Action::AgentWalletSet(w) });
    assert!(
        matches!(r, Err(ClientError::Device(DeviceError::Denied(PolicyViolation::NoClock)))),
        "{r:?}"
    );

    // A legacy (EIP-155) transaction: the same call, alloy's digest.
    let legacy = sample::legacy(&sample::action(ActionKind::SetAgentUri)).unwrap();
    let r = c.call(&Sign { slot: 0, sequence: 13, action: legacy.clone() }).unwrap();
    assert_eq!(r.digest.0, alloy_digest(&legacy).0);
    assert_eq!(recover_with_alloy(&r), key.address.0);

    // A URI the host's bounds take and the device's do not: the client can
    // tell from DeviceInfo, and the device refuses it, typed.
    let uri = format!("data:,{}", "x".repeat(300));
    let mut long = sample::action(ActionKind::SetAgentUri);
    let Some(tee_core::action::RegistryCall::SetAgentUri { new_uri, .. }) =
        long.registry_call_mut()
    else {
        unreachable!()
    };
    *new_uri = &uri;
    let over = mcu.check(&long, long.encoded_len()).unwrap_err();
    assert_eq!((over.field, over.len, over.max), (BoundField::Uri, 306, 256));
    let r = c.call(&Sign { slot: 0, sequence: 14, action: long });
    assert!(matches!(r, Err(ClientError::Device(DeviceError::OverBound(o))) if o == over), "{r:?}");

    // Garbage on the line, then a good request.
    let garbage: Vec<u8> = (1..=200u8).map(|b| b.wrapping_mul(37) | 1).collect();
    c.send_raw(&garbage).unwrap();
    let r = c
        .call(&Sign { slot: 0, sequence: 15, action: sample::action(ActionKind::RevokeFeedback) })
        .unwrap();
    assert_eq!(recover_with_alloy(&r), key.address.0);

    // No attestation on a microcontroller; the audit trail is there.
    let attest = c.call(&Attest { slot: 0, challenge: B256::ZERO }).map(|_| ());
    assert!(matches!(attest, Err(ClientError::Device(DeviceError::Unsupported))), "{attest:?}");
    let log = c.call(&GetAuditLog { from: 0 }).unwrap();
    assert!(log.next_index >= 10);
}

/// The firmware stays within its budgets (90 KiB flash, 20 KiB RAM with
/// the stack's high-water mark after the heaviest requests: the largest
/// policy and the largest action of every kind), and answers every one of
/// those requests. A change that grows either fails here, not only in the
/// footprint table (`cargo run -p tee-tests --example firmware_footprint`).
#[test]
fn firmware_stays_within_its_budgets() {
    use tee_tests::footprint::{FLASH_BUDGET, RAM_BUDGET, measure};
    let f = measure();
    assert!(f.flash <= FLASH_BUDGET, "flash {} bytes, budget {FLASH_BUDGET}", f.flash);
    assert!(
        f.ram() <= RAM_BUDGET,
        "RAM {} bytes (static {}, stack {}), budget {RAM_BUDGET}",
        f.ram(),
        f.static_ram,
        f.stack_hwm
    );
    // Each answered by the device (signed, or refused by its policy as the
    // footprint table shows), none lost to a frame it could not take.
    for (kind, label, _, outcome) in &f.sign_costs {
        assert!(
            outcome == "signed" || outcome.starts_with("device refused: Denied"),
            "{} ({label}): {outcome}",
            kind.name()
        );
    }
}
