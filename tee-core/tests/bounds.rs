//! A device's action bounds are its own, at run time, and an agent cannot
//! get past them: an action over a microcontroller's bound is refused with
//! the field named and audited, and costs the slot nothing (its sequence
//! signs afterwards); the same action signs on a device with the host's
//! bounds; a `Sign` frame of the previous protocol version is refused
//! before its body is read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::permissive;
use tee_core::action::{ActionBounds, BoundField, OverBound, PersonalMessage, RegistryCall};
use tee_core::codec;
use tee_core::device::{Device, DeviceConfig};
use tee_core::frame::{self, Header};
use tee_core::limits::request_frame_len;
use tee_core::protocol::*;
use tee_core::{Action, ActionKind};
use tee_testkit::{MemBackend, Pair};

/// A device with `bounds`, a key in slot 0 under a permissive policy.
fn device(bounds: ActionBounds) -> Pair<MemBackend> {
    let config = DeviceConfig { bounds, ..tee_testkit::config() };
    let mut p = Pair::new(Device::open(MemBackend::new(3), config).unwrap());
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: permissive(), auth: AdminAuth::UNSIGNED }).unwrap();
    p
}

fn message(bytes: &[u8]) -> Action<'_> {
    Action::PersonalMessage(PersonalMessage { message: bytes })
}

#[test]
fn device_info_states_the_bounds_the_device_was_opened_with() {
    for bounds in [ActionBounds::MCU, ActionBounds::HOST] {
        let mut p = device(bounds);
        let info = p.call(&DeviceInfo).unwrap();
        assert_eq!(info.bounds, bounds);
        assert_eq!(info.max_request_frame as usize, request_frame_len(&bounds));
    }
}

#[test]
fn an_action_over_the_devices_bound_is_refused_audited_and_costs_the_slot_nothing() {
    let mut p = device(ActionBounds::MCU);
    let long = vec![0x41u8; ActionBounds::MCU.message as usize + 1];
    let r = p.call(&Sign { slot: 0, sequence: 5, action: message(&long) });
    let over = OverBound {
        field: BoundField::Message,
        len: ActionBounds::MCU.message + 1,
        max: ActionBounds::MCU.message,
    };
    assert_eq!(r.unwrap_err(), DeviceError::OverBound(over));
    // On the record, with the refusal's reason and the action's digest.
    let log = p.call(&GetAuditLog { from: 0 }).unwrap();
    let last = log.entries.last().unwrap();
    assert_eq!(last.outcome, Outcome::Refused(DeviceError::OverBound(over)));
    assert_eq!((last.slot, last.sequence), (0, 5));
    assert_eq!(last.digest, message(&long).digest());
    // The refusal took no mark: sequence 5 still signs, within the bound.
    let fits = vec![0x41u8; ActionBounds::MCU.message as usize];
    let signed = p.call(&Sign { slot: 0, sequence: 5, action: message(&fits) }).unwrap();
    assert_eq!(signed.sequence, 5);
    // The longer message signs on a device with the host's bounds.
    let mut host = device(ActionBounds::HOST);
    assert!(host.call(&Sign { slot: 0, sequence: 1, action: message(&long) }).is_ok());
}

#[test]
fn every_field_over_a_bound_is_named_on_the_device() {
    let b = ActionBounds::MCU;
    let mut p = device(b);
    let mut sequence = 0;
    let long = "u".repeat(b.uri as usize + 1);
    for &kind in ActionKind::ALL {
        let mut action: Action<'_> = tee_testkit::sample::action(kind);
        let field = match action.registry_call_mut() {
            Some(RegistryCall::SetAgentUri { new_uri, .. }) => {
                *new_uri = &long;
                BoundField::Uri
            }
            Some(RegistryCall::ValidationRequest { request_uri, .. }) => {
                *request_uri = &long;
                BoundField::Uri
            }
            _ => continue,
        };
        sequence += 1;
        let e = p.call(&Sign { slot: 0, sequence, action }).unwrap_err();
        assert!(
            matches!(e, DeviceError::OverBound(OverBound { field: f, .. }) if f == field),
            "{kind:?}: {e:?}"
        );
    }
    assert_eq!(sequence, 2, "both URI-carrying samples were tried");
}

#[test]
fn a_sign_frame_of_the_previous_version_is_refused_before_it_is_read() {
    let mut p = device(ActionBounds::HOST);
    let action = message(b"signed by a version-3 client");
    let mut buf = [0u8; 256];
    let body = codec::encode(&Sign { slot: 0, sequence: 1, action: action.clone() }, &mut buf);
    let old = Header { version: PROTOCOL_VERSION - 1, command: Sign::CODE, request_id: 9 };
    let mut out = [0u8; 512];
    let f = frame::encode_raw(&old, body.unwrap(), &mut out).unwrap().to_vec();
    let responses = p.send_raw(&f);
    let (h, body) = Header::split(&responses[0]).unwrap();
    let r = codec::decode::<Result<SignResponse, DeviceError>>(body).unwrap();
    assert_eq!(r.unwrap_err(), DeviceError::UnsupportedVersion { supported: PROTOCOL_VERSION });
    assert_eq!((h.version, h.request_id), (PROTOCOL_VERSION, 9));
    // Nothing was signed, and no mark was taken: sequence 1 signs now.
    assert!(p.call(&Sign { slot: 0, sequence: 1, action }).is_ok());
}
