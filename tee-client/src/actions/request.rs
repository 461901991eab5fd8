//! The JSON forms ([`super`]) into an [`Action`].

use alloy_dyn_abi::TypedData;
use serde_json::{Map, Value};
use tee_core::action::{
    Action, AgentWalletSet, Calldata, Eip712Prehashed, Envelope, GenericTx, LegacyGenericTx,
    LegacyRegistryTx, LegacyTxParams, PersonalMessage, Registry, RegistryCall, RegistryTx,
    TxParams, bytes,
};
use tee_core::{Address, U256};

use super::calldata::{self, CalldataError};
use super::registries;

/// Why JSON is not an action the signer takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonActionError {
    /// Not JSON, or not an object of a known form.
    #[error("{0}")]
    Form(String),
    /// A field the form does not have.
    #[error("unknown field {0:?}")]
    UnknownField(String),
    /// A field the form needs.
    #[error("missing field {0:?}")]
    Missing(&'static str),
    /// A field's value is not what it must be.
    #[error("field {field:?}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A form the signer does not take yet.
    #[error("{0}")]
    Unsupported(&'static str),
    /// Registry calldata that is not the call it looks like.
    #[error("field \"data\": {0}")]
    Calldata(#[from] CalldataError),
}

/// What the JSON asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The action.
    pub action: Action,
    /// The signer the request names (`from`, or `personal_sign`'s address):
    /// the caller checks it is the slot's.
    pub from: Option<Address>,
}

fn field(field: &'static str, reason: impl std::fmt::Display) -> JsonActionError {
    JsonActionError::Field { field, reason: reason.to_string() }
}

/// A JSON-RPC quantity: a number, `0x`-hex or decimal string, at most 256 bits.
fn quantity(name: &'static str, v: &Value) -> Result<U256, JsonActionError> {
    let u = match v {
        Value::Number(n) => n.as_u64().map(U256::from_u64).ok_or_else(|| {
            field(name, "not a non-negative integer (numbers above 2^53: give a string)")
        })?,
        Value::String(s) => {
            let parsed: Result<U256, _> = serde_json::from_value(Value::String(s.clone()));
            parsed.map_err(|e| field(name, e))?
        }
        _ => return Err(field(name, "not a number or a string")),
    };
    Ok(u)
}

fn small<T: TryFrom<u128>>(name: &'static str, v: &Value) -> Result<T, JsonActionError> {
    let u = quantity(name, v)?;
    let (high, low) = u.0.split_at(16);
    if high.iter().any(|b| *b != 0) {
        return Err(field(name, "too large"));
    }
    let low: [u8; 16] = low.try_into().map_err(|_| field(name, "too large"))?;
    T::try_from(u128::from_be_bytes(low)).map_err(|_| field(name, "too large"))
}

fn hex_bytes(name: &'static str, v: &Value) -> Result<Vec<u8>, JsonActionError> {
    let s = v.as_str().ok_or_else(|| field(name, "not a string"))?;
    let digits = s.strip_prefix("0x").ok_or_else(|| field(name, "not 0x-hex"))?;
    hex::decode(digits).map_err(|e| field(name, e))
}

fn address(name: &'static str, v: &Value) -> Result<Address, JsonActionError> {
    serde_json::from_value(v.clone()).map_err(|e| field(name, e))
}

/// Decodes a JSON action. `registries` are contracts the caller knows to be
/// ERC-8004 registries besides the deployed ones (a policy's contracts):
/// a transaction to one is decoded as a registry call of whichever registry
/// its function belongs to.
pub fn from_json(json: &str, registries: &[Address]) -> Result<Request, JsonActionError> {
    let v: Value = serde_json::from_str(json).map_err(|e| JsonActionError::Form(e.to_string()))?;
    let Value::Object(o) = v else {
        return Err(JsonActionError::Form("an action is a JSON object".into()));
    };
    if o.contains_key("method") {
        return envelope(&o, registries);
    }
    if o.contains_key("types") || o.contains_key("primaryType") {
        return typed_data(Value::Object(o), None);
    }
    transaction(&o, registries)
}

/// `eth_signTypedData_v4`'s typed data: the identity registry's
/// `AgentWalletSet` in its domain becomes the typed action (and must hash as
/// the registry's type does); any other is hashed here into the pre-hashed
/// (blind) action, its domain separator and struct hash.
fn typed_data(v: Value, from: Option<Address>) -> Result<Request, JsonActionError> {
    let td: TypedData =
        serde_json::from_value(v).map_err(|e| JsonActionError::Form(format!("typed data: {e}")))?;
    let signing_hash = td.eip712_signing_hash().map_err(|e| field("message", e))?;
    let is_registry = td.domain.name.as_deref() == Some(tee_core::eip712::IDENTITY_REGISTRY_NAME);
    let action = if td.primary_type == "AgentWalletSet" && is_registry {
        let d = &td.domain;
        let chain_id = d.chain_id.ok_or(JsonActionError::Missing("domain.chainId"))?;
        let chain_id = u64::try_from(chain_id).map_err(|_| field("domain.chainId", "too large"))?;
        let registry =
            d.verifying_contract.ok_or(JsonActionError::Missing("domain.verifyingContract"))?;
        let m = &td.message;
        let get = |name: &'static str| m.get(name).ok_or(JsonActionError::Missing(name));
        Action::AgentWalletSet(AgentWalletSet {
            chain_id,
            identity_registry: Address(registry.0.0),
            agent_id: quantity("agentId", get("agentId")?)?,
            new_wallet: address("newWallet", get("newWallet")?)?,
            owner: address("owner", get("owner")?)?,
            deadline: small("deadline", get("deadline")?)?,
        })
    } else {
        let struct_hash = td.hash_struct().map_err(|e| field("message", e))?;
        Action::Eip712Prehashed(Eip712Prehashed {
            domain_separator: tee_core::B256(td.domain.separator().0),
            struct_hash: tee_core::B256(struct_hash.0),
        })
    };
    // What the device will sign is what the typed data hashes to; an
    // AgentWalletSet of another shape (types, domain) is not the registry's.
    if action.digest().0 != signing_hash.0 {
        return Err(field("types", "an AgentWalletSet that is not the identity registry's type"));
    }
    Ok(Request { action, from })
}

fn envelope(o: &Map<String, Value>, registries: &[Address]) -> Result<Request, JsonActionError> {
    if let Some(k) = o.keys().find(|k| !["method", "params", "jsonrpc", "id"].contains(&k.as_str()))
    {
        return Err(JsonActionError::UnknownField(k.clone()));
    }
    let method =
        o.get("method").and_then(Value::as_str).ok_or(JsonActionError::Missing("method"))?;
    let params =
        o.get("params").and_then(Value::as_array).ok_or(JsonActionError::Missing("params"))?;
    match method {
        "eth_signTransaction" | "eth_sendTransaction" => match params.as_slice() {
            [Value::Object(tx)] => transaction(tx, registries),
            _ => Err(field("params", "one transaction object")),
        },
        "personal_sign" => {
            let (message, from) = match params.as_slice() {
                [m] => (m, None),
                [m, a] => (m, Some(address("params", a)?)),
                _ => return Err(field("params", "[message] or [message, address]")),
            };
            let text =
                message.as_str().ok_or_else(|| field("params", "the message is a string"))?;
            // dstack and wallets pass 0x-hex data; anything else is the text.
            let raw = match text.strip_prefix("0x").map(hex::decode) {
                Some(Ok(b)) => b,
                _ => text.as_bytes().to_vec(),
            };
            let message = bytes(&raw).map_err(|_| {
                field(
                    "params",
                    format!(
                        "the message is longer than {} bytes",
                        tee_core::limits::MAX_MESSAGE_LEN
                    ),
                )
            })?;
            Ok(Request { action: Action::PersonalMessage(PersonalMessage { message }), from })
        }
        "eth_signTypedData_v4" => match params.as_slice() {
            [a, data] => typed_data(data.clone(), Some(address("params", a)?)),
            _ => Err(field("params", "[address, typedData]")),
        },
        other => Err(field("method", format!("{other:?} is not a signing method this takes"))),
    }
}

const TX_FIELDS: [&str; 13] = [
    "from",
    "to",
    "data",
    "input",
    "value",
    "nonce",
    "gas",
    "chainId",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "type",
    "accessList",
    "gasPrice",
];

fn transaction(o: &Map<String, Value>, registries: &[Address]) -> Result<Request, JsonActionError> {
    if let Some(k) = o.keys().find(|k| !TX_FIELDS.contains(&k.as_str())) {
        return Err(JsonActionError::UnknownField(k.clone()));
    }
    let get = |name: &'static str| o.get(name).filter(|v| !v.is_null());
    let need = |name: &'static str| get(name).ok_or(JsonActionError::Missing(name));
    let fees = Fees::of(&get)?;
    if let Some(list) = get("accessList")
        && !list.as_array().is_some_and(Vec::is_empty)
    {
        return Err(field("accessList", "only an empty access list is taken"));
    }
    let from = get("from").map(|v| address("from", v)).transpose()?;
    let to = address("to", need("to")?)?;
    let data = match (get("data"), get("input")) {
        (Some(d), Some(i)) if d != i => {
            return Err(field("input", "both data and input, and they differ"));
        }
        (Some(d), _) => hex_bytes("data", d)?,
        (None, Some(i)) => hex_bytes("input", i)?,
        (None, None) => Vec::new(),
    };
    let value = get("value").map(|v| quantity("value", v)).transpose()?.unwrap_or(U256::ZERO);
    let request = TxRequest {
        fees,
        chain_id: small("chainId", need("chainId")?)?,
        nonce: small("nonce", need("nonce")?)?,
        gas_limit: small("gas", need("gas")?)?,
        to,
        value,
        data,
    };
    Ok(Request { action: request.into_action(registries)?, from })
}

/// A transaction request's fields, as a wallet or a library (alloy's
/// `SignableTransaction`) holds them: what becomes a transaction action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRequest {
    /// The type and its fees.
    pub fees: Fees,
    /// `chainId` (required: EIP-155 for legacy transactions).
    pub chain_id: u64,
    /// `nonce`.
    pub nonce: u64,
    /// `gas`.
    pub gas_limit: u64,
    /// `to` (contract creation is not taken).
    pub to: Address,
    /// `value`.
    pub value: U256,
    /// `data` / `input`.
    pub data: Vec<u8>,
}

impl TxRequest {
    /// The action: sent to an ERC-8004 registry (deployed on the chain,
    /// or one of `registries`), the typed registry call, its calldata
    /// decoded strictly; otherwise the generic (blind) transaction.
    pub fn into_action(self, registries: &[Address]) -> Result<Action, JsonActionError> {
        let TxRequest { fees, chain_id, nonce, gas_limit, to, value, data } = self;
        let candidates: Vec<Registry> = match registries::deployed(chain_id, &to) {
            Some(r) => vec![r],
            None if registries.contains(&to) => {
                vec![Registry::Identity, Registry::Reputation, Registry::Validation]
            }
            None => Vec::new(),
        };
        if let Some((first, rest)) = candidates.split_first() {
            if value != U256::ZERO {
                return Err(field("value", "registry functions are not payable: it must be 0"));
            }
            // The deployed registry's functions; for a named contract, the
            // registry whose function the selector is.
            let mut result = calldata::decode(*first, &data);
            for r in rest {
                if matches!(result, Err(CalldataError::UnknownFunction { .. })) {
                    result = calldata::decode(*r, &data);
                }
            }
            return Ok(fees.registry_tx(chain_id, nonce, gas_limit, to, result?));
        }
        let data = bytes(&data).map_err(|_| {
            field(
                "data",
                format!(
                    "longer than {} bytes, the most a generic transaction carries",
                    tee_core::limits::MAX_CALLDATA_LEN
                ),
            )
        })?;
        Ok(fees.generic_tx(chain_id, nonce, gas_limit, to, value, data))
    }
}

/// A transaction request's type and fees: EIP-1559 (`type` 2, or absent
/// with `maxFeePerGas`) or legacy (`type` 0, or absent with `gasPrice`),
/// never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fees {
    /// EIP-1559 (type 2).
    Eip1559 {
        /// `maxFeePerGas`.
        max_fee_per_gas: u128,
        /// `maxPriorityFeePerGas`.
        max_priority_fee_per_gas: u128,
    },
    /// Legacy (type 0, EIP-155).
    Legacy {
        /// `gasPrice`.
        gas_price: u128,
    },
}

impl Fees {
    fn of<'v>(get: &impl Fn(&'static str) -> Option<&'v Value>) -> Result<Self, JsonActionError> {
        let need = |name: &'static str| get(name).ok_or(JsonActionError::Missing(name));
        let eip1559_fee =
            ["maxFeePerGas", "maxPriorityFeePerGas"].into_iter().find(|f| get(f).is_some());
        let ty: Option<u64> = get("type").map(|t| small("type", t)).transpose()?;
        let legacy = match (ty, get("gasPrice"), eip1559_fee) {
            (Some(2), None, _) | (None, None, Some(_)) => false,
            (Some(0), Some(_), None) | (None, Some(_), None) => true,
            (None, None, None) => return Err(JsonActionError::Missing("maxFeePerGas")),
            (Some(0), _, Some(f)) => {
                return Err(field(
                    f,
                    "a legacy (type 0) transaction has gasPrice, not EIP-1559 fees",
                ));
            }
            (Some(0), None, None) => return Err(JsonActionError::Missing("gasPrice")),
            (Some(2), Some(_), _) => {
                return Err(field(
                    "gasPrice",
                    "an EIP-1559 (type 2) transaction has maxFeePerGas and maxPriorityFeePerGas, not gasPrice",
                ));
            }
            (None, Some(_), Some(_)) => {
                return Err(field(
                    "gasPrice",
                    "both gasPrice and EIP-1559 fees: give a type, or one of them",
                ));
            }
            (Some(t), _, _) => {
                return Err(field("type", format!("{t}: legacy (0) and EIP-1559 (2) are taken")));
            }
        };
        Ok(if legacy {
            Fees::Legacy { gas_price: small("gasPrice", need("gasPrice")?)? }
        } else {
            Fees::Eip1559 {
                max_fee_per_gas: small("maxFeePerGas", need("maxFeePerGas")?)?,
                max_priority_fee_per_gas: small(
                    "maxPriorityFeePerGas",
                    need("maxPriorityFeePerGas")?,
                )?,
            }
        })
    }

    fn registry_tx(
        self,
        chain_id: u64,
        nonce: u64,
        gas_limit: u64,
        registry: Address,
        call: RegistryCall,
    ) -> Action {
        match self {
            Fees::Eip1559 { max_fee_per_gas, max_priority_fee_per_gas } => {
                Action::RegistryTx(RegistryTx {
                    tx: TxParams {
                        chain_id,
                        nonce,
                        max_priority_fee_per_gas,
                        max_fee_per_gas,
                        gas_limit,
                    },
                    registry,
                    call,
                })
            }
            Fees::Legacy { gas_price } => Action::LegacyRegistryTx(LegacyRegistryTx {
                tx: LegacyTxParams { chain_id, nonce, gas_price, gas_limit },
                registry,
                call,
            }),
        }
    }

    fn generic_tx(
        self,
        chain_id: u64,
        nonce: u64,
        gas_limit: u64,
        to: Address,
        value: U256,
        data: Calldata,
    ) -> Action {
        match self {
            Fees::Eip1559 { max_fee_per_gas, max_priority_fee_per_gas } => {
                Action::GenericTx(GenericTx {
                    tx: TxParams {
                        chain_id,
                        nonce,
                        max_priority_fee_per_gas,
                        max_fee_per_gas,
                        gas_limit,
                    },
                    to,
                    value,
                    data,
                })
            }
            Fees::Legacy { gas_price } => Action::LegacyGenericTx(LegacyGenericTx {
                tx: LegacyTxParams { chain_id, nonce, gas_price, gas_limit },
                to,
                value,
                data,
            }),
        }
    }
}

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
pub fn to_json(action: &Action) -> Option<Value> {
    let tx = |envelope: Envelope<'_>, to: &Address, value: &U256, data: &[u8]| {
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
    let registry_tx = |envelope, registry, call: &RegistryCall| {
        let mut buf = vec![0u8; call.calldata_len()];
        let data = call.calldata(&mut buf).ok()?;
        Some(tx(envelope, registry, &U256::ZERO, data))
    };
    Some(match action {
        Action::RegistryTx(t) => registry_tx(Envelope::Eip1559(&t.tx), &t.registry, &t.call)?,
        Action::LegacyRegistryTx(t) => registry_tx(Envelope::Legacy(&t.tx), &t.registry, &t.call)?,
        Action::GenericTx(g) => tx(Envelope::Eip1559(&g.tx), &g.to, &g.value, &g.data),
        Action::LegacyGenericTx(g) => tx(Envelope::Legacy(&g.tx), &g.to, &g.value, &g.data),
        Action::PersonalMessage(m) => serde_json::json!({
            "method": "personal_sign",
            "params": [format!("0x{}", hex::encode(&m.message))],
        }),
        Action::AgentWalletSet(w) => serde_json::json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "AgentWalletSet": [
                    {"name": "agentId", "type": "uint256"},
                    {"name": "newWallet", "type": "address"},
                    {"name": "owner", "type": "address"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "AgentWalletSet",
            "domain": {
                "name": tee_core::eip712::IDENTITY_REGISTRY_NAME,
                "version": tee_core::eip712::IDENTITY_REGISTRY_VERSION,
                "chainId": number(w.chain_id),
                "verifyingContract": w.identity_registry.to_string(),
            },
            "message": {
                "agentId": w.agent_id.to_string(),
                "newWallet": w.new_wallet.to_string(),
                "owner": w.owner.to_string(),
                "deadline": number(w.deadline),
            },
        }),
        Action::Eip712Prehashed(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use serde_json::json;
    use tee_core::ActionKind;
    use tee_core::action::RegistryCall;

    use super::*;

    const IDENTITY: &str = "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432";

    fn call_data(call: &RegistryCall) -> String {
        let mut buf = vec![0u8; call.calldata_len()];
        format!("0x{}", hex::encode(call.calldata(&mut buf).unwrap()))
    }

    fn tx(to: &str, data: &str) -> Value {
        json!({
            "to": to, "data": data, "nonce": 1, "gas": "0x5208", "chainId": 8453,
            "maxFeePerGas": "0x3b9aca00", "maxPriorityFeePerGas": "0x1",
        })
    }

    fn sample_call(kind: ActionKind) -> RegistryCall {
        match tee_testkit::sample::action(kind) {
            Action::RegistryTx(t) => t.call,
            _ => panic!("{kind:?} is not a registry call"),
        }
    }

    #[test]
    fn transactions_to_registries_are_typed_and_others_generic() {
        let call = sample_call(ActionKind::SetAgentUri);
        let r = from_json(&tx(IDENTITY, &call_data(&call)).to_string(), &[]).unwrap();
        let Action::RegistryTx(t) = &r.action else { panic!("{:?}", r.action) };
        assert_eq!((t.call.clone(), t.tx.nonce, t.tx.gas_limit), (call.clone(), 1, 21_000));
        // The same request to an unknown contract: generic (blind).
        let other = "0x1111111111111111111111111111111111111111";
        let r = from_json(&tx(other, &call_data(&call)).to_string(), &[]).unwrap();
        assert_eq!(r.action.kind(), ActionKind::GenericTx);
        // ... unless the caller names it a registry (a policy's contract):
        // the selector tells which registry's function it is.
        let named = Address([0x11; 20]);
        let feedback = sample_call(ActionKind::GiveFeedback);
        let r = from_json(&tx(other, &call_data(&feedback)).to_string(), &[named]).unwrap();
        assert_eq!(r.action.kind(), ActionKind::GiveFeedback);
        // The enveloped form says the same.
        let env =
            json!({"method": "eth_signTransaction", "params": [tx(IDENTITY, &call_data(&call))]});
        assert_eq!(
            from_json(&env.to_string(), &[]).unwrap().action.kind(),
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
        assert!(matches!(
            with("nonce", json!(-1)),
            Err(JsonActionError::Field { field: "nonce", .. })
        ));
        assert!(matches!(
            with("nonce", json!("0x10000000000000000")),
            Err(JsonActionError::Field { field: "nonce", .. })
        ));
        // Above 2^53 as a decimal string is fine.
        let big = with("maxFeePerGas", json!("18446744073709551617")).unwrap();
        let Action::RegistryTx(t) = big.action else { panic!() };
        assert_eq!(t.tx.max_fee_per_gas, 18_446_744_073_709_551_617);
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
        let Action::LegacyRegistryTx(t) = &r.action else { panic!("{:?}", r.action) };
        assert_eq!((&t.call, t.tx.gas_price, t.tx.chain_id), (&call, 1_000_000_000, 8453));
        assert_eq!(legacy(json!({"type": "0x0"})).unwrap(), r);
        assert_eq!(legacy(json!({"type": 0, "accessList": []})).unwrap(), r);
        // The round trip, and to an unknown contract it is generic.
        assert_eq!(from_json(&to_json(&r.action).unwrap().to_string(), &[]).unwrap(), r);
        let generic = legacy(json!({"to": "0x1111111111111111111111111111111111111111"})).unwrap();
        assert!(matches!(generic.action, Action::LegacyGenericTx(_)));
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
        let Action::AgentWalletSet(w) = &r.action else { panic!("{:?}", r.action) };
        assert_eq!((w.chain_id, w.deadline, w.agent_id), (8453, 1_795_811_955, U256::from_u64(42)));
        let td: TypedData = serde_json::from_value(wallet_set("1", "address")).unwrap();
        assert_eq!(r.action.digest().0, td.eip712_signing_hash().unwrap().0);
        // eth_signTypedData_v4 params: [address, typed data as a string].
        let env = json!({"method": "eth_signTypedData_v4",
                         "params": ["0x2222222222222222222222222222222222222222", wallet_set("1", "address").to_string()]});
        let r2 = from_json(&env.to_string(), &[]).unwrap();
        assert_eq!((r2.action, r2.from), (r.action, Some(Address([0x22; 20]))));
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
        assert_eq!(r.action.kind(), ActionKind::Eip712Prehashed);
        let td: TypedData = serde_json::from_value(permit).unwrap();
        assert_eq!(r.action.digest().0, td.eip712_signing_hash().unwrap().0);
    }

    #[test]
    fn personal_sign_takes_text_or_hex() {
        let m =
            |p: Value| from_json(&json!({"method": "personal_sign", "params": p}).to_string(), &[]);
        let text = m(json!(["hello"])).unwrap();
        let hex = m(json!(["0x68656c6c6f", "0x1111111111111111111111111111111111111111"])).unwrap();
        assert_eq!(text.action, hex.action);
        assert_eq!(hex.from, Some(Address([0x11; 20])));
        assert!(m(json!([])).is_err());
        assert!(m(json!(["x".repeat(tee_core::limits::MAX_MESSAGE_LEN + 1)])).is_err());
        let e = from_json(&json!({"method": "eth_sign", "params": []}).to_string(), &[]);
        assert!(matches!(e, Err(JsonActionError::Field { field: "method", .. })));
    }
}
