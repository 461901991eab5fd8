//! Actions as users write them: the JSON a wallet receives, decoded into
//! the signer's canonical actions.
//!
//! - a transaction as an `eth_signTransaction` request (`to`,
//!   `data`/`input`, `value`, `nonce`, `gas`, `chainId`, `from`; EIP-1559
//!   with `maxFeePerGas`, `maxPriorityFeePerGas`, optional `type` 2 and an
//!   empty `accessList`, or legacy with `gasPrice` and optional `type` 0),
//!   bare or as `{"method": "eth_signTransaction", "params": [tx]}`. Sent to
//!   an ERC-8004 registry (the deployed addresses per chain,
//!   [`registries`], or a contract the caller names) its calldata is
//!   decoded, strictly, into the typed registry call ([`calldata`]), so the
//!   policy sees the function, the agent and the contract; any other is a
//!   generic (blind) transaction;
//! - typed data as `eth_signTypedData_v4` takes it (bare, or
//!   `{"method": "eth_signTypedData_v4", "params": [address, data]}`, the
//!   data an object or a JSON string): the identity registry's
//!   `AgentWalletSet` in its domain becomes the typed action, and must hash
//!   as the registry's type does; any other typed data is hashed here
//!   (alloy's EIP-712) into the pre-hashed (blind) action;
//! - a `personal_sign` message: `{"method": "personal_sign", "params":
//!   [message, address?]}`, the message `0x`-hex bytes or text.
//!
//! The device builds every digest from the typed fields, so a
//! mis-translation here cannot make it sign something else than the action
//! it reports. Errors name the field. [`TxRequest`] is the transaction
//! path without JSON (alloy's transactions take it, `client::alloy`).

pub mod calldata;
mod owned;
pub mod registries;
mod request;
mod write;

pub use owned::OwnedAction;
pub use request::{Fees, JsonActionError, Request, TxRequest, from_json, no_duplicate_keys};
pub use write::to_json;
