//! The canonical actions an ERC-8004 agent signs.
//!
//! Follows the ERC-8004 contracts v2.0.0 (`ERC8004SPEC.md` and the deployed
//! ABIs in erc-8004/erc-8004-contracts). Typed actions carry their fields,
//! not opaque bytes, so a policy can see which registry function, which
//! agent and which contract an action touches. The core builds calldata and
//! digests from those fields; the caller never supplies them.
//!
//! Three actions are *blind*: a generic transaction, an EIP-191 message and a
//! pre-hashed EIP-712 digest. The signer cannot tell what they mean, so a
//! policy must opt in to each explicitly.
//!
//! One concern per file, each depending only on the types:
//! - `types`: the action types ([`Action`] and its parts: a transaction is
//!   a [`TxBody`] under a fee [`Envelope`]);
//! - `kind`: the kind table ([`ActionKind`]) and the accessors policy reads;
//! - `encoding`: the one canonical byte encoding ([`Action::decode`]);
//! - `display`: the one-line human description;
//! - [`calldata`]: ABI calldata of registry calls;
//! - [`tx`]: EIP-1559 and legacy (EIP-155) encodings of transaction actions;
//! - `digest`: the only module that hashes an action ([`Action::digest`],
//!   `SigningKey::sign`).

mod bounds;
mod digest;
mod display;
mod encoding;
mod kind;
mod types;

pub mod calldata;
pub mod tx;

pub use bounds::{ActionBounds, BoundField, OverBound};
pub use calldata::selector;
pub use kind::{ActionKind, TokenMove};
pub use types::{
    Action, AgentWalletSet, AuthorizationKind, Eip712Prehashed, Envelope, GenericTx,
    LegacyTxParams, Metadata, MetadataEntry, PersonalMessage, Registry, RegistryCall, RegistryTx,
    TaskReceipt, TokenAuthorization, TokenCall, TokenTx, Transaction, TxBody, TxParams,
};
