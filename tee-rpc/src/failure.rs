//! JSON-RPC errors as wallets and libraries read them: EIP-1193's provider
//! codes for what the user (here: the signer's policy) decided, EIP-1474's
//! and JSON-RPC 2.0's for the request itself.

use serde_json::{Value, json};
use tee_client::onchain::rpc::RpcError;
use tee_client::provider::ProviderError;
use tee_core::protocol::DeviceError;

/// EIP-1193: the request was rejected. The signer's policy (or its
/// anti-replay) refused the action; `data.reason` is the device's reason.
pub const REJECTED: i64 = 4001;
/// EIP-1193: the account is not one this endpoint serves.
pub const UNAUTHORIZED: i64 = 4100;
/// EIP-1193: the method is not served (a signing method this endpoint does
/// not take, which is never forwarded, or any method without an upstream).
pub const UNSUPPORTED: i64 = 4200;
/// EIP-1193: the upstream node did not answer.
pub const CHAIN_DISCONNECTED: i64 = 4901;
/// EIP-1474: the signer (the device) could not be reached.
pub const SIGNER_UNAVAILABLE: i64 = -32002;
/// EIP-1474: the upstream node refused a call the endpoint made to fill a
/// transaction (an estimate that reverts among them).
pub const UPSTREAM_REFUSED: i64 = -32000;
/// JSON-RPC 2.0: not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: not a request object (or a batch over the bound).
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0 / EIP-1474: the parameters are not what the method takes.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0: the signer failed otherwise (storage, attestation).
pub const INTERNAL: i64 = -32603;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The code.
    pub code: i64,
    /// What went wrong, in words.
    pub message: String,
    /// Typed details (`reason`, `deviceTime`, `sequence`, `field`).
    pub data: Option<Value>,
}

impl Failure {
    /// A failure without data.
    pub fn new(code: i64, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into(), data: None }
    }

    /// Invalid parameters.
    pub fn params(message: impl Into<String>) -> Failure {
        Failure::new(INVALID_PARAMS, message)
    }

    /// The error object.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match &self.data {
            Some(d) => json!({ "code": self.code, "message": self.message, "data": d }),
            None => json!({ "code": self.code, "message": self.message }),
        }
    }
}

/// The device's reason as a name a program matches on: the policy rule
/// (`KindNotAllowed`, `DeadlineExpired`, ...) or the device's error
/// (`Replay`, `SlotEmpty`, ...), as the Python binding names it.
fn reason(d: &DeviceError) -> Value {
    let name = match d.violation() {
        Some(v) => format!("{v:?}"),
        None => {
            let debug = format!("{d:?}");
            debug.split([' ', '(', '{']).next().unwrap_or_default().to_owned()
        }
    };
    match d {
        DeviceError::DeniedAt { device_time, .. } => {
            json!({ "reason": name, "device": format!("{d:?}"), "deviceTime": device_time })
        }
        // Wei as decimal strings (above 2^53), as the Ethereum JSON-RPC does.
        DeviceError::OverCap(c) => json!({
            "reason": name,
            "device": format!("{d:?}"),
            "remaining": c.remaining().to_string(),
            "endsIn": c.ends_in,
        }),
        _ => json!({ "reason": name, "device": format!("{d:?}") }),
    }
}

impl From<ProviderError> for Failure {
    fn from(e: ProviderError) -> Failure {
        let message = e.to_string();
        let with = |code, data| Failure { code, message: message.clone(), data: Some(data) };
        match &e {
            ProviderError::Denied { reason: d, .. } => with(REJECTED, reason(d)),
            // What the approvers sign, as EIP-712 typed data: the agent
            // hands it to them and sends the action again with their
            // signatures (`tee_signApproved`).
            ProviderError::ApprovalRequired(r) => with(
                REJECTED,
                json!({
                    "reason": "ApprovalRequired",
                    "approvalRequest": r,
                    "typedData": r.typed_data(),
                }),
            ),
            ProviderError::Refused(d) => {
                let code = match d {
                    DeviceError::OverBound(_) | DeviceError::Malformed(_) => INVALID_PARAMS,
                    DeviceError::NoSuchSlot | DeviceError::SlotEmpty => UNAUTHORIZED,
                    DeviceError::Storage
                    | DeviceError::Entropy
                    | DeviceError::Backend
                    | DeviceError::SigningFailed
                    | DeviceError::ResponseTooLarge => INTERNAL,
                    _ => REJECTED,
                };
                with(code, reason(d))
            }
            ProviderError::Client { .. } => Failure::new(SIGNER_UNAVAILABLE, message),
            ProviderError::NotFrom { .. } => Failure::new(UNAUTHORIZED, message),
            ProviderError::OverBound(b) => with(
                INVALID_PARAMS,
                json!({ "reason": "OverBound", "field": b.field, "max": b.max, "len": b.len }),
            ),
            ProviderError::Action(_) | ProviderError::PathTooLong => Failure::params(message),
            ProviderError::AttestationFailed { sequence, .. } => {
                with(INTERNAL, json!({ "reason": "AttestationFailed", "sequence": sequence }))
            }
            _ => Failure::new(INTERNAL, message),
        }
    }
}

/// A call the endpoint made to the upstream node (to fill a transaction,
/// or to send it) failed.
pub fn upstream(e: &RpcError) -> Failure {
    match e {
        RpcError::Transport { .. } => {
            Failure::new(CHAIN_DISCONNECTED, format!("the upstream node: {e}"))
        }
        _ => Failure::new(UPSTREAM_REFUSED, format!("the upstream node: {e}")),
    }
}
