//! The JSON forms ([`super`]) into an [`Action`].

use alloy_dyn_abi::TypedData;
use serde_json::{Map, Value};
use tee_core::action::{
    Action, AgentWalletSet, AuthorizationKind, Eip712Prehashed, Envelope, GenericTx,
    LegacyTxParams, PersonalMessage, Registry, RegistryCall, RegistryTx, TaskReceipt,
    TokenAuthorization, TokenTx, Transaction, TxBody, TxParams,
};
use tee_core::{Address, U256};

use super::OwnedAction;
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
    /// An object that names a key twice (JSON parsers disagree on which
    /// one counts: `{"to": A, "to": B}` must not sign either).
    #[error("{0}: a JSON object names each key once")]
    DuplicateKey(String),
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
    pub action: OwnedAction,
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
    serde_json::from_value(v.clone()).map_err(|e| {
        // Forty hex digits whose mixed case is not the EIP-55 checksum (a
        // typo, or another address): say that, and what the checksum is.
        let lower = v.as_str().map(str::to_ascii_lowercase);
        match lower.as_deref().map(str::parse::<Address>) {
            Some(Ok(a)) => field(name, format!("its mixed case is not the EIP-55 checksum of {a}")),
            _ => field(name, e),
        }
    })
}

/// Decodes a JSON action. `registries` are contracts the caller knows to be
/// ERC-8004 registries besides the deployed ones (a policy's contracts):
/// a transaction to one is decoded as a registry call of whichever registry
/// its function belongs to.
pub fn from_json(json: &str, registries: &[Address]) -> Result<Request, JsonActionError> {
    no_duplicate_keys(json)?;
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

/// Refuses JSON in which an object names a key twice (serde_json keeps the
/// last; another parser, or a person reading it, may take the first).
pub fn no_duplicate_keys(json: &str) -> Result<(), JsonActionError> {
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Strict;
    impl<'de> de::Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            d.deserialize_any(Strict)
        }
    }
    impl<'de> Visitor<'de> for Strict {
        type Value = Strict;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(de::Error::custom(format!("duplicate key {key:?}")));
                }
                map.next_value::<Strict>()?;
            }
            Ok(Strict)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            while seq.next_element::<Strict>()?.is_some() {}
            Ok(Strict)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
            Ok(Strict)
        }
        fn visit_unit<E>(self) -> Result<Strict, E> {
            Ok(Strict)
        }
    }
    match serde_json::from_str::<Strict>(json) {
        Err(e) if e.to_string().starts_with("duplicate key") => {
            Err(JsonActionError::DuplicateKey(e.to_string()))
        }
        // Not JSON at all: the parser that follows says so.
        _ => Ok(()),
    }
}

/// `eth_signTypedData_v4`'s typed data: the identity registry's
/// `AgentWalletSet` in its domain, a `TaskReceipt`, and an EIP-3009
/// `TransferWithAuthorization` / `ReceiveWithAuthorization` in a token's
/// domain (name, version, chain, contract) become the typed actions (and
/// must hash as those types do); any other is hashed here into the
/// pre-hashed (blind) action, its domain separator and struct hash.
fn typed_data(v: Value, from: Option<Address>) -> Result<Request, JsonActionError> {
    // Typed data given as a string is JSON of its own.
    if let Value::String(text) = &v {
        no_duplicate_keys(text)?;
    }
    let td: TypedData =
        serde_json::from_value(v).map_err(|e| JsonActionError::Form(format!("typed data: {e}")))?;
    let signing_hash = td.eip712_signing_hash().map_err(|e| field("message", e))?;
    let domain_name = td.domain.name.as_deref();
    let is_registry = domain_name == Some(tee_core::eip712::IDENTITY_REGISTRY_NAME);
    let is_receipt = domain_name == Some(tee_core::eip712::TASK_RECEIPT_NAME);
    let authorization = match td.primary_type.as_str() {
        "TransferWithAuthorization" => Some(AuthorizationKind::Transfer),
        "ReceiveWithAuthorization" => Some(AuthorizationKind::Receive),
        _ => None,
    };
    let action = if let (Some(kind), Some(name), Some(version)) =
        (authorization, td.domain.name.as_deref(), td.domain.version.as_deref())
    {
        let (chain_id, token) = chain_and_contract(&td)?;
        let m = &td.message;
        let get = |name: &'static str| m.get(name).ok_or(JsonActionError::Missing(name));
        Action::TokenAuthorization(TokenAuthorization {
            kind,
            chain_id,
            token,
            name,
            version,
            from: address("from", get("from")?)?,
            to: address("to", get("to")?)?,
            value: quantity("value", get("value")?)?,
            valid_after: small("validAfter", get("validAfter")?)?,
            valid_before: small("validBefore", get("validBefore")?)?,
            nonce: bytes32("nonce", get("nonce")?)?,
        })
    } else if td.primary_type == "TaskReceipt" && is_receipt {
        let (chain_id, identity_registry) = chain_and_contract(&td)?;
        let m = &td.message;
        let get = |name: &'static str| m.get(name).ok_or(JsonActionError::Missing(name));
        Action::TaskReceipt(TaskReceipt {
            chain_id,
            identity_registry,
            agent_id: quantity("agentId", get("agentId")?)?,
            task_hash: bytes32("taskHash", get("taskHash")?)?,
            result_hash: bytes32("resultHash", get("resultHash")?)?,
            completed_at: small("completedAt", get("completedAt")?)?,
        })
    } else if td.primary_type == "AgentWalletSet" && is_registry {
        let (chain_id, identity_registry) = chain_and_contract(&td)?;
        let m = &td.message;
        let get = |name: &'static str| m.get(name).ok_or(JsonActionError::Missing(name));
        Action::AgentWalletSet(AgentWalletSet {
            chain_id,
            identity_registry,
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
    // AgentWalletSet or TaskReceipt of another shape (types, domain) is not
    // the one the signer knows.
    if action.digest().0 != signing_hash.0 {
        return Err(field(
            "types",
            format!("a {} that is not the type the signer knows", td.primary_type),
        ));
    }
    Ok(Request { action: OwnedAction::new(&action), from })
}

/// The domain's `chainId` and `verifyingContract`, both required.
fn chain_and_contract(td: &TypedData) -> Result<(u64, Address), JsonActionError> {
    let d = &td.domain;
    let chain_id = d.chain_id.ok_or(JsonActionError::Missing("domain.chainId"))?;
    let chain_id = u64::try_from(chain_id).map_err(|_| field("domain.chainId", "too large"))?;
    let contract =
        d.verifying_contract.ok_or(JsonActionError::Missing("domain.verifyingContract"))?;
    Ok((chain_id, Address(contract.0.0)))
}

/// A `bytes32`: `0x` and 64 hex digits.
fn bytes32(name: &'static str, v: &Value) -> Result<tee_core::B256, JsonActionError> {
    let bytes = hex_bytes(name, v)?;
    let array: [u8; 32] = bytes.try_into().map_err(|_| field(name, "not 32 bytes"))?;
    Ok(tee_core::B256(array))
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
            let action = Action::PersonalMessage(PersonalMessage { message: &raw });
            Ok(Request { action: OwnedAction::new(&action), from })
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
    /// decoded strictly; an ERC-20 `transfer`, `approve` or `transferFrom`
    /// without value, the typed token call; otherwise the generic (blind)
    /// transaction.
    pub fn into_action(&self, registries: &[Address]) -> Result<OwnedAction, JsonActionError> {
        let TxRequest { fees, chain_id, nonce, gas_limit, to, value, ref data } = *self;
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
            let typed = |call: &RegistryCall<'_>| {
                let body = TxBody::Registry(RegistryTx { registry: to, call: call.clone() });
                OwnedAction::new(&fees.action(chain_id, nonce, gas_limit, body))
            };
            let mut result = calldata::decode(*first, data, typed);
            for r in rest {
                if matches!(result, Err(CalldataError::UnknownFunction { .. })) {
                    result = calldata::decode(*r, data, typed);
                }
            }
            return Ok(result?);
        }
        // An ERC-20 call (not payable, its calldata canonical) is the typed
        // token action, under the policy's token rules; anything else is blind.
        let body = match calldata::token_call(data) {
            Some(call) if value == U256::ZERO => TxBody::Token(TokenTx { token: to, call }),
            _ => TxBody::Generic(GenericTx { to, value, data }),
        };
        Ok(OwnedAction::new(&fees.action(chain_id, nonce, gas_limit, body)))
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

    /// The transaction action of `body` in this fee envelope: one body,
    /// either envelope, so a call is written once for both types.
    fn action(self, chain_id: u64, nonce: u64, gas_limit: u64, body: TxBody<'_>) -> Action<'_> {
        let envelope = match self {
            Fees::Eip1559 { max_fee_per_gas, max_priority_fee_per_gas } => {
                Envelope::Eip1559(TxParams {
                    chain_id,
                    nonce,
                    max_priority_fee_per_gas,
                    max_fee_per_gas,
                    gas_limit,
                })
            }
            Fees::Legacy { gas_price } => {
                Envelope::Legacy(LegacyTxParams { chain_id, nonce, gas_price, gas_limit })
            }
        };
        Action::Transaction(Transaction { envelope, body })
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
