//! Actions written as wallets send them ([`to_json`]): the inverse of
//! [`from_json`](super::from_json), which the round-trip tests hold it to.

use serde_json::{Map, Value};
use tee_core::action::{Action, AuthorizationKind, Envelope, RegistryCall, TxBody};
use tee_core::eip712;
use tee_core::{Address, U256};

/// A JSON-RPC quantity: `0x`-hex, as wallets write them.
fn hex_quantity(v: u128) -> Value {
    Value::String(format!("{v:#x}"))
}

/// A number for people: a JSON number up to 2^53, a decimal string above.
fn number(v: u64) -> Value {
    if v <= 1 << 53 { Value::from(v) } else { Value::String(v.to_string()) }
}

/// An action in the form a wallet would send it: the inverse of
/// [`from_json`] (a transaction to a registry decodes back to its call when
/// the registry is deployed there or named). `None` for the pre-hashed
/// EIP-712 action, whose typed data is gone.
#[must_use]
pub fn to_json(action: &Action<'_>) -> Option<Value> {
    let tx = |envelope: &Envelope, to: &Address, value: &U256, data: &[u8]| {
        let mut o = Map::new();
        let fees = match envelope {
            Envelope::Eip1559(t) => [
                ("type", "0x2".into()),
                ("maxFeePerGas", hex_quantity(t.max_fee_per_gas)),
                ("maxPriorityFeePerGas", hex_quantity(t.max_priority_fee_per_gas)),
            ]
            .to_vec(),
            Envelope::Legacy(t) => {
                [("type", "0x0".into()), ("gasPrice", hex_quantity(t.gas_price))].to_vec()
            }
        };
        for (k, v) in fees.into_iter().chain([
            ("chainId", hex_quantity(u128::from(envelope.chain_id()))),
            ("nonce", hex_quantity(u128::from(envelope.nonce()))),
            ("gas", hex_quantity(u128::from(envelope.gas_limit()))),
            ("to", to.to_string().into()),
            ("value", value.to_string().into()),
            ("data", format!("0x{}", hex::encode(data)).into()),
        ]) {
            o.insert(k.to_owned(), v);
        }
        Value::Object(o)
    };
    let registry_tx = |envelope, registry, call: &RegistryCall<'_>| {
        let mut buf = vec![0u8; call.calldata_len()];
        let data = call.calldata(&mut buf).ok()?;
        Some(tx(envelope, registry, &U256::ZERO, data))
    };
    Some(match action {
        Action::Transaction(t) => match &t.body {
            TxBody::Registry(r) => registry_tx(&t.envelope, &r.registry, &r.call)?,
            TxBody::Generic(g) => tx(&t.envelope, &g.to, &g.value, g.data),
            TxBody::Token(k) => {
                let mut buf = [0u8; 100];
                tx(&t.envelope, &k.token, &U256::ZERO, k.call.calldata(&mut buf).ok()?)
            }
        },
        Action::PersonalMessage(m) => serde_json::json!({
            "method": "personal_sign",
            "params": [format!("0x{}", hex::encode(m.message))],
        }),
        Action::AgentWalletSet(w) => typed_data(
            "AgentWalletSet",
            &[
                ("agentId", "uint256", w.agent_id.to_string().into()),
                ("newWallet", "address", w.new_wallet.to_string().into()),
                ("owner", "address", w.owner.to_string().into()),
                ("deadline", "uint256", number(w.deadline)),
            ],
            (eip712::IDENTITY_REGISTRY_NAME, eip712::IDENTITY_REGISTRY_VERSION),
            w.chain_id,
            &w.identity_registry,
        ),
        Action::TaskReceipt(r) => typed_data(
            "TaskReceipt",
            &[
                ("agentId", "uint256", r.agent_id.to_string().into()),
                ("taskHash", "bytes32", r.task_hash.to_string().into()),
                ("resultHash", "bytes32", r.result_hash.to_string().into()),
                ("completedAt", "uint256", number(r.completed_at)),
            ],
            (eip712::TASK_RECEIPT_NAME, eip712::TASK_RECEIPT_VERSION),
            r.chain_id,
            &r.identity_registry,
        ),
        Action::TokenAuthorization(a) => typed_data(
            match a.kind {
                AuthorizationKind::Transfer => "TransferWithAuthorization",
                AuthorizationKind::Receive => "ReceiveWithAuthorization",
            },
            &[
                ("from", "address", a.from.to_string().into()),
                ("to", "address", a.to.to_string().into()),
                ("value", "uint256", a.value.to_string().into()),
                ("validAfter", "uint256", number(a.valid_after)),
                ("validBefore", "uint256", number(a.valid_before)),
                ("nonce", "bytes32", a.nonce.to_string().into()),
            ],
            (a.name, a.version),
            a.chain_id,
            &a.token,
        ),
        Action::Eip712Prehashed(_) => return None,
    })
}

/// eth_signTypedData_v4 JSON of a typed action: its `primary` type's
/// fields (name, Solidity type, value) in order, in the domain (name,
/// version, chainId, verifyingContract).
fn typed_data(
    primary: &str,
    fields: &[(&str, &str, Value)],
    (name, version): (&str, &str),
    chain_id: u64,
    contract: &Address,
) -> Value {
    let types: Vec<Value> =
        fields.iter().map(|(n, t, _)| serde_json::json!({"name": n, "type": t})).collect();
    let message: Map<String, Value> =
        fields.iter().map(|(n, _, v)| ((*n).to_owned(), v.clone())).collect();
    serde_json::json!({
        "types": {"EIP712Domain": domain_types(), primary: types},
        "primaryType": primary,
        "domain": {
            "name": name,
            "version": version,
            "chainId": number(chain_id),
            "verifyingContract": contract.to_string(),
        },
        "message": message,
    })
}

/// The `EIP712Domain` type of the registries' domains (name, version,
/// chainId, verifyingContract).
fn domain_types() -> Value {
    serde_json::json!([
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ])
}
