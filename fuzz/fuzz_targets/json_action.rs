//! JSON actions as wallets send them (`tee_client::actions::from_json`):
//! any bytes give an action or a typed error, never a panic; an action that
//! decodes has one canonical encoding, and the JSON `to_json` writes for it
//! decodes back to the same action (for a registry the caller names too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_client::actions::{from_json, to_json};
use tee_core::Action;
use tee_core::Address;
use tee_core::limits::MAX_ACTION_LEN;

/// A contract the caller names as a registry besides the deployed ones.
const NAMED: Address = Address([0x80; 20]);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(request) = from_json(text, &[NAMED]) else {
        return;
    };
    // The owned action holds its canonical encoding: it decodes, and
    // re-encodes to the same bytes.
    let action = request.action.view();
    let mut buf = vec![0u8; MAX_ACTION_LEN.max(request.action.bytes().len())];
    let encoded = action.encode(&mut buf).expect("a decoded action encodes");
    assert_eq!(encoded, request.action.bytes());
    assert_eq!(Action::decode(encoded).expect("and decodes"), action);
    // The pre-hashed EIP-712 action has no JSON of its own to write.
    if let Some(json) = to_json(&action) {
        let again = from_json(&json.to_string(), &[NAMED]).expect("to_json's JSON decodes");
        assert_eq!(again.action, request.action, "{json}");
    }
});
