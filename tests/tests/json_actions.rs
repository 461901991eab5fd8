//! The JSON form of every action kind round-trips: an action written as a
//! wallet would send it (`tee_client::actions::to_json`) decodes
//! (`from_json`) to the same action and the same digest, for generated
//! actions of every kind but the pre-hashed EIP-712 one (whose typed data
//! is gone); and bytes a user could send that are not canonical are
//! refused, never read as another action.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use proptest::prelude::*;
use tee_client::actions::{from_json, to_json};
use tee_core::ActionKind;
use tee_tests::arb_action;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_kind_round_trips(action in arb_action()) {
        let Some(json) = to_json(&action) else {
            prop_assert_eq!(action.kind(), ActionKind::Eip712Prehashed);
            return Ok(());
        };
        // A registry call to an arbitrary address is a registry because
        // the caller names it (a policy's contract).
        let named: Vec<_> = match action.registry_call() {
            Some(_) => action.contract().into_iter().copied().collect(),
            None => Vec::new(),
        };
        let back = from_json(&json.to_string(), &named).unwrap();
        prop_assert_eq!(back.action.view().digest(), action.digest());
        prop_assert_eq!(back.action.view(), action);
    }

    /// Any mutation of a registry call's calldata either decodes to a call
    /// whose canonical calldata is exactly the mutated bytes, or is refused.
    #[test]
    fn mutated_calldata_is_canonical_or_refused(
        action in proptest::sample::select(ActionKind::ALL.to_vec())
            .prop_filter("registry calls", |k| k.registry().is_some())
            .prop_flat_map(tee_tests::arb_action_of),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let registry = *action.contract().unwrap();
        let mut json = to_json(&action).unwrap();
        let data = json["data"].as_str().unwrap().trim_start_matches("0x").to_owned();
        let mut bytes = hex::decode(data).unwrap();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        json["data"] = format!("0x{}", hex::encode(&bytes)).into();
        if let Ok(r) = from_json(&json.to_string(), &[registry]) {
            let back = r.action.view();
            let Some(got) = back.registry_call() else {
                return Err(TestCaseError::fail("a registry call decoded as something else"));
            };
            prop_assert_eq!(back.envelope().map(|e| e.max_fee_per_gas()), action.envelope().map(|e| e.max_fee_per_gas()));
            prop_assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&action));
            let mut buf = vec![0u8; got.calldata_len()];
            prop_assert_eq!(got.calldata(&mut buf).unwrap().to_vec(), bytes);
        }
    }
}
