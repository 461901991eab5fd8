//! The JSON requests wallets send, decoded (and refused) field by field.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
use serde_json::json;
use tee_core::ActionKind;
use tee_core::action::RegistryCall;

use super::*;
use crate::actions::to_json;

const IDENTITY: &str = "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432";

fn call_data(call: &RegistryCall<'_>) -> String {
    let mut buf = vec![0u8; call.calldata_len()];
    format!("0x{}", hex::encode(call.calldata(&mut buf).unwrap()))
}

fn tx(to: &str, data: &str) -> Value {
    json!({
        "to": to, "data": data, "nonce": 1, "gas": "0x5208", "chainId": 8453,
        "maxFeePerGas": "0x3b9aca00", "maxPriorityFeePerGas": "0x1",
    })
}

fn sample_call(kind: ActionKind) -> RegistryCall<'static> {
    let action = tee_testkit::sample::action(kind);
    action.registry_call().cloned().unwrap_or_else(|| panic!("{kind:?} is not a registry call"))
}

#[test]
fn transactions_to_registries_are_typed_and_others_generic() {
    let call = sample_call(ActionKind::SetAgentUri);
    let r = from_json(&tx(IDENTITY, &call_data(&call)).to_string(), &[]).unwrap();
    let a = r.action.view();
    let (Some(c), Some(Envelope::Eip1559(p))) = (a.registry_call(), a.envelope()) else {
        panic!("{:?}", r.action)
    };
    assert_eq!((c.clone(), p.nonce, p.gas_limit), (call.clone(), 1, 21_000));
    // The same request to an unknown contract: generic (blind).
    let other = "0x1111111111111111111111111111111111111111";
    let r = from_json(&tx(other, &call_data(&call)).to_string(), &[]).unwrap();
    assert_eq!(r.action.view().kind(), ActionKind::GenericTx);
    // ... unless the caller names it a registry (a policy's contract):
    // the selector tells which registry's function it is.
    let named = Address([0x11; 20]);
    let feedback = sample_call(ActionKind::GiveFeedback);
    let r = from_json(&tx(other, &call_data(&feedback)).to_string(), &[named]).unwrap();
    assert_eq!(r.action.view().kind(), ActionKind::GiveFeedback);
    // The enveloped form says the same.
    let env = json!({"method": "eth_signTransaction", "params": [tx(IDENTITY, &call_data(&call))]});
    assert_eq!(
        from_json(&env.to_string(), &[]).unwrap().action.view().kind(),
        ActionKind::SetAgentUri
    );
}

#[test]
fn mistakes_are_named() {
    let call = sample_call(ActionKind::SetAgentUri);
    let good = tx(IDENTITY, &call_data(&call));
    let with = |k: &str, v: Value| {
        let mut t = good.clone();
        t[k] = v;
        from_json(&t.to_string(), &[])
    };
    assert_eq!(with("gass", json!(1)), Err(JsonActionError::UnknownField("gass".into())));
    let mut no_nonce = good.clone();
    no_nonce.as_object_mut().unwrap().remove("nonce");
    assert_eq!(from_json(&no_nonce.to_string(), &[]), Err(JsonActionError::Missing("nonce")));
    // Fees of both types, or of the other type than `type` says.
    assert!(matches!(
        with("gasPrice", json!("0x1")),
        Err(JsonActionError::Field { field: "gasPrice", .. })
    ));
    assert!(matches!(
        with("type", json!("0x0")),
        Err(JsonActionError::Field { field: "maxFeePerGas", .. })
    ));
    assert!(matches!(
        with("type", json!("0x1")),
        Err(JsonActionError::Field { field: "type", .. })
    ));
    assert!(matches!(
        with("accessList", json!([{"address": IDENTITY, "storageKeys": []}])),
        Err(JsonActionError::Field { field: "accessList", .. })
    ));
    assert!(matches!(
        with("value", json!("0x1")),
        Err(JsonActionError::Field { field: "value", .. })
    ));
    assert!(matches!(with("nonce", json!(-1)), Err(JsonActionError::Field { field: "nonce", .. })));
    assert!(matches!(
        with("nonce", json!("0x10000000000000000")),
        Err(JsonActionError::Field { field: "nonce", .. })
    ));
    // Above 2^53 as a decimal string is fine.
    let big = with("maxFeePerGas", json!("18446744073709551617")).unwrap();
    let Some(Envelope::Eip1559(p)) = big.action.view().envelope().copied() else { panic!() };
    assert_eq!(p.max_fee_per_gas, 18_446_744_073_709_551_617);
    // Registry calldata with a byte more is not reinterpreted.
    let longer = format!("{}00", call_data(&call));
    assert!(matches!(with("data", json!(longer)), Err(JsonActionError::Calldata(_))));
    assert!(matches!(with("data", json!("0xdeadbeef")), Err(JsonActionError::Calldata(_))));
    // data and input must agree.
    assert!(matches!(
        with("input", json!("0x00")),
        Err(JsonActionError::Field { field: "input", .. })
    ));
    let typed = json!({"types": {}, "primaryType": "X", "domain": {}, "message": {}});
    assert!(from_json(&typed.to_string(), &[]).is_err());
    assert!(matches!(from_json("[1]", &[]), Err(JsonActionError::Form(_))));
    assert!(matches!(from_json("{", &[]), Err(JsonActionError::Form(_))));
}

/// A legacy request (`gasPrice`, `type` 0 or absent) is the legacy
/// action of the same call, with EIP-155's signing hash; its fields are
/// checked as strictly.
#[test]
fn legacy_transactions() {
    let call = sample_call(ActionKind::SetAgentUri);
    let legacy = |extra: Value| {
        let mut t = json!({
            "to": IDENTITY, "data": call_data(&call), "nonce": 1, "gas": "0x5208",
            "chainId": 8453, "gasPrice": "0x3b9aca00",
        });
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        from_json(&t.to_string(), &[])
    };
    let r = legacy(json!({})).unwrap();
    let a = r.action.view();
    let (Some(c), Some(Envelope::Legacy(p))) = (a.registry_call(), a.envelope()) else {
        panic!("{:?}", r.action)
    };
    assert_eq!((c, p.gas_price, p.chain_id), (&call, 1_000_000_000, 8453));
    assert_eq!(legacy(json!({"type": "0x0"})).unwrap(), r);
    assert_eq!(legacy(json!({"type": 0, "accessList": []})).unwrap(), r);
    // The round trip, and to an unknown contract it is generic.
    assert_eq!(from_json(&to_json(&r.action.view()).unwrap().to_string(), &[]).unwrap(), r);
    let generic = legacy(json!({"to": "0x1111111111111111111111111111111111111111"})).unwrap();
    let generic = generic.action.view();
    assert_eq!(generic.kind(), ActionKind::GenericTx);
    assert!(matches!(generic.envelope(), Some(Envelope::Legacy(_))));
    // Legacy fields under type 2, EIP-1559 fees beside gasPrice, no
    // gasPrice under type 0, no chain id (EIP-155 needs one).
    assert!(matches!(
        legacy(json!({"type": "0x2"})),
        Err(JsonActionError::Field { field: "gasPrice", .. })
    ));
    assert!(matches!(
        legacy(json!({"maxPriorityFeePerGas": "0x1"})),
        Err(JsonActionError::Field { field: "gasPrice", .. })
    ));
    assert_eq!(
        legacy(json!({"type": "0x0", "gasPrice": null})),
        Err(JsonActionError::Missing("gasPrice"))
    );
    assert_eq!(legacy(json!({"chainId": null})), Err(JsonActionError::Missing("chainId")));
    assert!(matches!(
        legacy(json!({"gasPrice": "0x100000000000000000000000000000000"})),
        Err(JsonActionError::Field { field: "gasPrice", .. })
    ));
}

fn wallet_set(version: &str, owner_type: &str) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "AgentWalletSet": [
                {"name": "agentId", "type": "uint256"}, {"name": "newWallet", "type": "address"},
                {"name": "owner", "type": owner_type}, {"name": "deadline", "type": "uint256"}
            ]
        },
        "primaryType": "AgentWalletSet",
        "domain": {"name": "ERC8004IdentityRegistry", "version": version, "chainId": 8453,
                   "verifyingContract": IDENTITY},
        "message": {"agentId": 42, "newWallet": "0x1111111111111111111111111111111111111111",
                    "owner": "0x2222222222222222222222222222222222222222", "deadline": "1795811955"}
    })
}

/// The registry's AgentWalletSet is the typed action, with the digest
/// the typed data hashes to; the same name in another shape is refused;
/// other typed data is the pre-hashed action, with alloy's digest.
#[test]
fn typed_data_as_wallets_send_it() {
    let r = from_json(&wallet_set("1", "address").to_string(), &[]).unwrap();
    let Action::AgentWalletSet(w) = &r.action.view() else { panic!("{:?}", r.action) };
    assert_eq!((w.chain_id, w.deadline, w.agent_id), (8453, 1_795_811_955, U256::from_u64(42)));
    let td: TypedData = serde_json::from_value(wallet_set("1", "address")).unwrap();
    assert_eq!(r.action.view().digest().0, td.eip712_signing_hash().unwrap().0);
    // eth_signTypedData_v4 params: [address, typed data as a string].
    let env = json!({"method": "eth_signTypedData_v4",
                     "params": ["0x2222222222222222222222222222222222222222", wallet_set("1", "address").to_string()]});
    let r2 = from_json(&env.to_string(), &[]).unwrap();
    assert_eq!((&r2.action, r2.from), (&r.action, Some(Address([0x22; 20]))));
    // Another version or field type under the registry's name: refused.
    assert!(matches!(
        from_json(&wallet_set("2", "address").to_string(), &[]),
        Err(JsonActionError::Field { field: "types", .. })
    ));
    assert!(from_json(&wallet_set("1", "uint160").to_string(), &[]).is_err());
    // Any other typed data: pre-hashed, blind.
    let mut permit = wallet_set("1", "address");
    permit["domain"]["name"] = "SomeToken".into();
    let r = from_json(&permit.to_string(), &[]).unwrap();
    assert_eq!(r.action.view().kind(), ActionKind::Eip712Prehashed);
    let td: TypedData = serde_json::from_value(permit).unwrap();
    assert_eq!(r.action.view().digest().0, td.eip712_signing_hash().unwrap().0);
}

/// An agent's TaskReceipt is its typed action, hashed as the typed data
/// hashes; a receipt of another shape under the name, or without its
/// domain's contract, is refused by name.
#[test]
fn task_receipts_are_typed() {
    let receipt = tee_testkit::sample::action(ActionKind::TaskReceipt);
    let json = to_json(&receipt).unwrap();
    let r = from_json(&json.to_string(), &[]).unwrap();
    assert_eq!(r.action.view(), receipt);
    let td: TypedData = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(r.action.view().digest().0, td.eip712_signing_hash().unwrap().0);
    let mut other = json.clone();
    other["types"]["TaskReceipt"][3]["type"] = "uint64".into();
    assert!(matches!(
        from_json(&other.to_string(), &[]),
        Err(JsonActionError::Field { field: "types", .. })
    ));
    let mut short = json.clone();
    short["message"]["taskHash"] = "0x1234".into();
    assert!(from_json(&short.to_string(), &[]).is_err());
    let mut no_contract = json;
    no_contract["domain"].as_object_mut().unwrap().remove("verifyingContract");
    no_contract["types"]["EIP712Domain"].as_array_mut().unwrap().pop();
    assert_eq!(
        from_json(&no_contract.to_string(), &[]),
        Err(JsonActionError::Missing("domain.verifyingContract"))
    );
}

/// An ERC-20 call without value is the typed token action, whatever the
/// token; with value, or calldata that is not exactly the call's canonical
/// encoding, it stays blind. An EIP-3009 authorization (x402's typed data)
/// is the typed action, hashed as the typed data hashes, and one of another
/// shape under its name is refused.
#[test]
fn token_calls_and_authorizations_are_typed() {
    let transfer = tee_testkit::sample::action(ActionKind::TokenTransfer);
    let json = to_json(&transfer).unwrap();
    let r = from_json(&json.to_string(), &[]).unwrap();
    assert_eq!(r.action.view(), transfer);
    let mut paid = json.clone();
    paid["value"] = "1".into();
    let r = from_json(&paid.to_string(), &[]).unwrap();
    assert_eq!(r.action.view().kind(), ActionKind::GenericTx);
    let mut longer = json.clone();
    longer["data"] = format!("{}00", json["data"].as_str().unwrap()).into();
    assert_eq!(
        from_json(&longer.to_string(), &[]).unwrap().action.view().kind(),
        ActionKind::GenericTx
    );
    // A dirty address word (high bytes set) is not the canonical encoding.
    let mut dirty = json.clone();
    let data = json["data"].as_str().unwrap();
    dirty["data"] = format!("{}ff{}", &data[..10], &data[12..]).into();
    assert_eq!(
        from_json(&dirty.to_string(), &[]).unwrap().action.view().kind(),
        ActionKind::GenericTx
    );

    let payment = tee_testkit::sample::action(ActionKind::TransferWithAuthorization);
    let json = to_json(&payment).unwrap();
    let r = from_json(&json.to_string(), &[]).unwrap();
    assert_eq!(r.action.view(), payment);
    let td: TypedData = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(r.action.view().digest().0, td.eip712_signing_hash().unwrap().0);
    let mut other = json.clone();
    other["types"]["TransferWithAuthorization"][2]["type"] = "uint128".into();
    assert!(matches!(
        from_json(&other.to_string(), &[]),
        Err(JsonActionError::Field { field: "types", .. })
    ));
    let mut far = json;
    far["message"]["validBefore"] = "18446744073709551616".into();
    assert!(matches!(
        from_json(&far.to_string(), &[]),
        Err(JsonActionError::Field { field: "validBefore", .. })
    ));
}

#[test]
fn personal_sign_takes_text_or_hex() {
    let m = |p: Value| from_json(&json!({"method": "personal_sign", "params": p}).to_string(), &[]);
    let text = m(json!(["hello"])).unwrap();
    let hex = m(json!(["0x68656c6c6f", "0x1111111111111111111111111111111111111111"])).unwrap();
    assert_eq!(text.action, hex.action);
    assert_eq!(hex.from, Some(Address([0x11; 20])));
    assert!(m(json!([])).is_err());
    let e = from_json(&json!({"method": "eth_sign", "params": []}).to_string(), &[]);
    assert!(matches!(e, Err(JsonActionError::Field { field: "method", .. })));
}

/// The same key twice: serde_json keeps the last, so `{"to": registry,
/// "to": other}` would sign a transaction to `other` while a reader (or
/// another parser) sees the registry. Refused, naming the key, at any depth
/// and inside typed data given as a string.
#[test]
fn duplicate_keys_are_refused_by_name() {
    let tx = r#"{"to": "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432",
        "to": "0x1111111111111111111111111111111111111111", "data": "0x", "value": "0x0",
        "nonce": "0x0", "gas": "0x5208", "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1",
        "chainId": "0x2105"}"#;
    let e = from_json(tx, &[]).unwrap_err();
    assert!(matches!(&e, JsonActionError::DuplicateKey(k) if k.contains("\"to\"")), "{e}");
    let nested =
        r#"{"method": "eth_signTransaction", "params": [{"nonce": "0x0", "nonce": "0x1"}]}"#;
    assert!(matches!(from_json(nested, &[]), Err(JsonActionError::DuplicateKey(_))));
    let td = wallet_set("1", "address").to_string().replacen(
        "\"agentId\":42",
        "\"agentId\":42,\"agentId\":43",
        1,
    );
    assert!(td.contains("\"agentId\":43"), "{td}");
    let env = json!({"method": "eth_signTypedData_v4",
                     "params": ["0x2222222222222222222222222222222222222222", td]});
    assert!(matches!(from_json(&env.to_string(), &[]), Err(JsonActionError::DuplicateKey(_))));
}

/// An address whose mixed case is not its EIP-55 checksum is refused as
/// such (a typo, or another address), naming the checksummed form; before,
/// it read "expected 0x and 40 hex digits".
#[test]
fn a_bad_checksum_is_named_as_one() {
    let tx = |to: &str| {
        json!({"to": to, "data": "0x", "value": "0x1", "nonce": "0x0", "gas": "0x5208",
               "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1", "chainId": "0x1"})
        .to_string()
    };
    let good = "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432";
    let bad = "0x8004a169FB4a3325136EB29fA0ceB6D2e539a432";
    let e = from_json(&tx(bad), &[]).unwrap_err().to_string();
    assert!(e.contains("EIP-55 checksum") && e.contains(good), "{e}");
    let e = from_json(&tx("0x1234"), &[]).unwrap_err().to_string();
    assert!(!e.contains("EIP-55"), "{e}");
}
