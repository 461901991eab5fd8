//! The signer's Ethereum JSON-RPC endpoint, in web3signer's eth1 style: what
//! every Ethereum tool (viem, ethers, web3.py, `cast`, wallets) already
//! speaks to a node, answered by the signer for the accounts it serves and
//! forwarded to an upstream node for the rest.
//!
//! | method | answered |
//! |---|---|
//! | `eth_accounts`, `eth_requestAccounts` | the served slots' addresses |
//! | `personal_sign` `[message, address]`, `eth_sign` `[address, data]` | EIP-191 signature (the slot's policy must name `personal_sign`) |
//! | `eth_signTypedData_v4` `[address, typedData]` | EIP-712 signature (`AgentWalletSet` typed, anything else pre-hashed) |
//! | `eth_signTransaction` `[tx]` | the signed raw transaction (filled from the node first) |
//! | `eth_sendTransaction` `[tx]` | filled, signed, `eth_sendRawTransaction` to the node: the hash |
//! | `tee_getAttestation` `[signatureOrTxHash]` | the signature with its attestation (the last `keep`) |
//! | `tee_accounts` | `[{address, slot}]` |
//! | `tee_signApproved` `[method, params, {approvalRequest, signatures}]` | what `method` answers, signed with the approvals a 4001 `ApprovalRequired` asked for |
//! | other `eth_sign*`, `personal_*`, `wallet_*`, `admin_*`, `miner_*` | 4200, never forwarded |
//! | anything else | forwarded to the upstream node unchanged |
//!
//! Every signature goes through the device's policy, as the signer's own
//! protocol does: the JSON is decoded by the one decoder the CLI uses
//! ([`tee_client::actions::from_json`]), and a refused request is answered
//! with error 4001 and the device's reason in `data`, and never forwarded
//! (an action the policy holds for approval: `reason` `ApprovalRequired`,
//! the `approvalRequest` and the `typedData` its approvers sign).
//! The endpoint holds no key and takes no admin command. Errors:
//! [`failure`].

#![forbid(unsafe_code)]

pub mod failure;
mod fill;
pub mod http;
mod kept;

use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};
use tee_client::actions::no_duplicate_keys;
use tee_client::approval::{ApprovalRequest, Approvals, signature_from_hex};
use tee_client::onchain::rpc::Rpc;
use tee_client::provider::{PhalaDstackProvider, ProviderError};
use tee_core::Address;
use tee_transport::Endpoint;
use tee_verify::{TeeSignature, Verifier};

use failure::{Failure, INVALID_REQUEST, UNAUTHORIZED, UNSUPPORTED};
pub use kept::Kept;

/// The most requests one batch may hold.
pub const MAX_BATCH: usize = 100;

/// What the endpoint serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The signer's socket.
    pub signer: Endpoint,
    /// The slots whose keys it signs with.
    pub slots: Vec<u8>,
    /// The node every other method goes to (`http://...`), if any.
    pub upstream: Option<String>,
    /// How many signatures' attestations `tee_getAttestation` keeps.
    pub keep: usize,
}

/// A served slot: its own connection to the signer (so slots sign in
/// parallel) and a lock held from the nonce a send reads to the send.
#[derive(Debug)]
struct Account {
    slot: u8,
    address: Address,
    provider: PhalaDstackProvider,
    sending: Mutex<()>,
}

/// The endpoint's logic, without HTTP (see [`http`]).
#[derive(Debug)]
pub struct Gateway {
    accounts: Vec<Account>,
    upstream: Option<Rpc>,
    kept: Kept,
}

/// Methods that sign or manage keys on a node: never forwarded (a node with
/// unlocked accounts would sign with its own), answered 4200 unless served.
fn never_forwarded(method: &str) -> bool {
    ["eth_sign", "personal_", "wallet_", "admin_", "miner_"].iter().any(|p| method.starts_with(p))
        || method == "eth_sendTransaction"
}

/// A method's answer: its result, or the upstream node's whole answer.
enum Answer {
    Result(Value),
    Node(Value),
}

fn response(id: &Value, result: Result<Value, Failure>) -> Value {
    match result {
        Ok(r) => json!({ "jsonrpc": "2.0", "id": id, "result": r }),
        Err(f) => json!({ "jsonrpc": "2.0", "id": id, "error": f.to_json() }),
    }
}

fn hex0x(b: &[u8]) -> Value {
    json!(format!("0x{}", hex::encode(b)))
}

impl Gateway {
    /// Connects to the signer and reads the served slots' addresses.
    pub fn open(config: &Config) -> Result<Gateway, ProviderError> {
        let mut accounts = Vec::new();
        for &slot in &config.slots {
            let provider = PhalaDstackProvider::new(config.signer.clone(), Verifier::default());
            let address = provider.address(slot)?;
            accounts.push(Account { slot, address, provider, sending: Mutex::new(()) });
        }
        Ok(Gateway {
            accounts,
            upstream: config.upstream.as_deref().map(Rpc::new),
            kept: Kept::new(config.keep),
        })
    }

    /// The served slots and their addresses.
    #[must_use]
    pub fn accounts(&self) -> Vec<(u8, Address)> {
        self.accounts.iter().map(|a| (a.slot, a.address)).collect()
    }

    /// Answers an HTTP body: a request or a batch. `None`: nothing to
    /// answer (notifications only).
    #[must_use]
    pub fn handle(&self, body: &[u8]) -> Option<Value> {
        let text = match std::str::from_utf8(body) {
            Ok(t) => t,
            Err(_) => return Some(parse_error("the body is not UTF-8")),
        };
        // serde_json keeps the last of two equal keys; another reader (or
        // the signer's decoder, which refuses them) may take the first.
        if let Err(e) = no_duplicate_keys(text) {
            return Some(response(&Value::Null, Err(Failure::new(INVALID_REQUEST, e.to_string()))));
        }
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Some(parse_error(&e.to_string())),
        };
        match v {
            Value::Array(batch) if batch.is_empty() || batch.len() > MAX_BATCH => {
                let f = Failure::new(
                    INVALID_REQUEST,
                    format!("a batch of {} requests: 1 to {MAX_BATCH} are taken", batch.len()),
                );
                Some(response(&Value::Null, Err(f)))
            }
            Value::Array(batch) => {
                let answers: Vec<Value> = batch.iter().filter_map(|r| self.one(r)).collect();
                (!answers.is_empty()).then_some(Value::Array(answers))
            }
            single => self.one(&single),
        }
    }

    /// One request; `None` for a notification (no `id`).
    fn one(&self, request: &Value) -> Option<Value> {
        let Value::Object(o) = request else {
            let f = Failure::new(INVALID_REQUEST, "a request is a JSON object");
            return Some(response(&Value::Null, Err(f)));
        };
        let id = o.get("id").cloned();
        let answer = match (o.get("method").and_then(Value::as_str), o.get("params")) {
            (None, _) => Err(Failure::new(INVALID_REQUEST, "missing field \"method\"")),
            (Some(m), None) => self.call(m, &[], request),
            (Some(m), Some(Value::Array(p))) => self.call(m, p, request),
            (Some(m), Some(_)) if self.serves(m) => {
                Err(Failure::params("params: this method takes them by position (an array)"))
            }
            (Some(m), Some(_)) => self.call(m, &[], request),
        };
        if let Err(f) = &answer {
            tracing::info!(code = f.code, "refused: {}", f.message);
        }
        let id = id?;
        Some(match answer {
            // A forwarded request's answer is the node's, with the id asked.
            Ok(Answer::Node(Value::Object(mut node))) => {
                node.insert("id".into(), id);
                Value::Object(node)
            }
            Ok(Answer::Node(other)) => response(
                &id,
                Err(Failure::new(
                    failure::CHAIN_DISCONNECTED,
                    format!("the upstream node answered {other}"),
                )),
            ),
            Ok(Answer::Result(r)) => response(&id, Ok(r)),
            Err(f) => response(&id, Err(f)),
        })
    }

    fn serves(&self, method: &str) -> bool {
        never_forwarded(method)
            || matches!(method, "eth_accounts" | "eth_requestAccounts")
            || method.starts_with("tee_")
    }

    fn call(&self, method: &str, params: &[Value], request: &Value) -> Result<Answer, Failure> {
        match method {
            m if !self.serves(m) => match &self.upstream {
                Some(node) => {
                    node.forward(request).map(Answer::Node).map_err(|e| failure::upstream(&e))
                }
                None => Err(Failure::new(
                    UNSUPPORTED,
                    format!("{m}: this endpoint has no upstream node (--upstream)"),
                )),
            },
            m => self.serve(m, params).map(Answer::Result),
        }
    }

    fn serve(&self, method: &str, params: &[Value]) -> Result<Value, Failure> {
        match method {
            "eth_accounts" | "eth_requestAccounts" => {
                Ok(self.accounts.iter().map(|a| json!(a.address.to_string())).collect())
            }
            "tee_accounts" => Ok(self
                .accounts
                .iter()
                .map(|a| json!({ "address": a.address.to_string(), "slot": a.slot }))
                .collect()),
            "tee_getAttestation" => match params {
                [Value::String(key)] => Ok(match self.kept.get(key) {
                    Some(s) => serde_json::to_value(&*s).map_err(|e| internal(&e))?,
                    None => Value::Null,
                }),
                _ => Err(Failure::params("params: [signature or transaction hash]")),
            },
            "personal_sign" => {
                let account = self.account(params.get(1))?;
                let s = self.sign(account, &json!({ "method": method, "params": params }))?;
                Ok(hex0x(&s.signature.0))
            }
            "eth_sign" => {
                let [address, data] = params else {
                    return Err(Failure::params("params: [address, data]"));
                };
                let account = self.account(Some(address))?;
                let hex = data.as_str().and_then(|d| d.strip_prefix("0x"));
                if hex.is_none_or(|h| hex::decode(h).is_err()) {
                    return Err(Failure::params("params[1]: eth_sign's data is 0x-hex bytes"));
                }
                let request = json!({ "method": "personal_sign", "params": [data, address] });
                Ok(hex0x(&self.sign(account, &request)?.signature.0))
            }
            "eth_signTypedData_v4" => {
                let account = self.account(params.first())?;
                let s = self.sign(account, &json!({ "method": method, "params": params }))?;
                Ok(hex0x(&s.signature.0))
            }
            "eth_signTransaction" | "eth_sendTransaction" => self.transaction(method, params, None),
            "tee_signApproved" => self.approved(params),
            m => Err(Failure::new(
                UNSUPPORTED,
                format!("{m}: not a method this signer serves (and never forwarded)"),
            )),
        }
    }

    /// The account `address` names (any case), or the only one.
    fn account(&self, address: Option<&Value>) -> Result<&Account, Failure> {
        let Some(v) = address else {
            return match self.accounts.as_slice() {
                [only] => Ok(only),
                all => Err(Failure::params(format!(
                    "the address is required: this endpoint serves {} accounts",
                    all.len()
                ))),
            };
        };
        let text = v.as_str().ok_or_else(|| Failure::params("the address is not a string"))?;
        let lower = text.to_ascii_lowercase();
        self.accounts
            .iter()
            .find(|a| a.address.to_string().to_ascii_lowercase() == lower)
            .ok_or_else(|| {
                Failure::new(UNAUTHORIZED, format!("{text} is not an account this signer serves"))
            })
    }

    /// `tee_signApproved`: `[method, params, approval]` signs what
    /// `method` (`eth_signTransaction`, `eth_sendTransaction`,
    /// `eth_signTypedData_v4`, `personal_sign`) with `params` would, with
    /// the approvals the slot's policy asked for (`approval`: `{
    /// approvalRequest, signatures }`, the request the refusal's `data`
    /// carried and the approvers' signatures over its `typedData`), and
    /// answers as `method` does. A transaction must be whole (nonce, gas,
    /// fees): the approvals are of its digest.
    fn approved(&self, params: &[Value]) -> Result<Value, Failure> {
        let [Value::String(method), Value::Array(inner), approval] = params else {
            return Err(Failure::params(
                "params: [method, params, { approvalRequest, signatures }]",
            ));
        };
        let request = approval
            .get("approvalRequest")
            .cloned()
            .ok_or_else(|| Failure::params("params[2].approvalRequest is missing"))?;
        let request: ApprovalRequest = serde_json::from_value(request)
            .map_err(|e| Failure::params(format!("params[2].approvalRequest: {e}")))?;
        let signatures = approval
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::params("params[2].signatures: an array of 0x-hex signatures"))?
            .iter()
            .map(|s| {
                s.as_str().and_then(signature_from_hex).ok_or_else(|| {
                    Failure::params("params[2].signatures: each a 65-byte 0x-hex signature")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let approvals = Approvals::of(&request, signatures);
        let approvals = Some(&approvals);
        match method.as_str() {
            "eth_signTransaction" | "eth_sendTransaction" => {
                self.transaction(method, inner, approvals)
            }
            "personal_sign" | "eth_signTypedData_v4" => {
                let at = if method == "personal_sign" { inner.get(1) } else { inner.first() };
                let account = self.account(at)?;
                let json = json!({ "method": method, "params": inner });
                Ok(hex0x(&self.sign_with(account, &json, approvals)?.signature.0))
            }
            m => Err(Failure::params(format!("params[0]: {m} is not a signing method"))),
        }
    }

    /// Signs a JSON request (the form [`tee_client::actions::from_json`]
    /// takes) with `account`, keeping its attestation.
    fn sign(&self, account: &Account, request: &Value) -> Result<TeeSignature, Failure> {
        self.sign_with(account, request, None)
    }

    /// [`Gateway::sign`] with the approvals the slot's policy asked for.
    fn sign_with(
        &self,
        account: &Account,
        request: &Value,
        approvals: Option<&Approvals>,
    ) -> Result<TeeSignature, Failure> {
        let text = request.to_string();
        let signed = match approvals {
            Some(a) => account.provider.sign_json_approved(account.slot, &text, a)?,
            None => account.provider.sign_json(account.slot, &text, None)?,
        };
        let s = signed.signature;
        tracing::info!(slot = account.slot, sequence = s.sequence, "signed {}", s.digest);
        self.kept.keep(s.clone());
        Ok(s)
    }

    fn transaction(
        &self,
        method: &str,
        params: &[Value],
        approvals: Option<&Approvals>,
    ) -> Result<Value, Failure> {
        let [Value::Object(tx)] = params else {
            return Err(Failure::params("params: [transaction object]"));
        };
        let account = self.account(tx.get("from").filter(|v| !v.is_null()))?;
        let send = method == "eth_sendTransaction";
        let node = match (&self.upstream, send) {
            (Some(node), _) => Some(node),
            (None, false) => None,
            (None, true) => {
                return Err(Failure::new(
                    UNSUPPORTED,
                    "eth_sendTransaction: this endpoint has no upstream node (--upstream)",
                ));
            }
        };
        // From the nonce read to the send: one at a time per account.
        let _turn = account.sending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tx = tx.clone();
        if let Some(node) = node {
            fill::fill(&mut tx, account.address, node)?;
        }
        let request = json!({ "method": "eth_signTransaction", "params": [tx] });
        let s = self.sign_with(account, &request, approvals)?;
        let raw = s.raw_transaction.as_deref().ok_or_else(|| internal(&"no raw transaction"))?;
        match node {
            Some(node) if send => node
                .call("eth_sendRawTransaction", json!([hex0x(raw)]))
                .map_err(|e| failure::upstream(&e)),
            _ => Ok(hex0x(raw)),
        }
    }
}

fn parse_error(why: &str) -> Value {
    response(&Value::Null, Err(Failure::new(failure::PARSE_ERROR, format!("not JSON: {why}"))))
}

fn internal(e: &dyn std::fmt::Display) -> Failure {
    Failure::new(failure::INTERNAL, e.to_string())
}
