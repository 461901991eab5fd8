//! The action types: what an ERC-8004 agent signs, field by field.
//!
//! Wire stability: postcard encodes an enum variant by its index, so variants
//! are only ever appended, never reordered or `cfg`-gated.

use heapless::Vec;
use serde::{Deserialize, Serialize};
use strum::EnumCount;

use crate::limits::MAX_METADATA_ENTRIES;
use crate::primitives::{Address, B256, U256};

/// The entries of `register(string,(string,bytes)[])`.
pub type Metadata<'a> = Vec<MetadataEntry<'a>, MAX_METADATA_ENTRIES>;

/// The EIP-1559 fields a transaction action carries besides its call.
/// Access lists are always empty: no registry call needs one, and a policy
/// could not reason about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TxParams {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Sender's account nonce.
    pub nonce: u64,
    /// Priority fee (tip) per gas, in wei.
    pub max_priority_fee_per_gas: u128,
    /// Maximum total fee per gas, in wei.
    pub max_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
}

/// The fields a legacy (type 0) transaction action carries besides its
/// call, signed with EIP-155 replay protection (the chain id is part of the
/// signing hash and of `v`); unprotected pre-EIP-155 transactions are not
/// supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LegacyTxParams {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Sender's account nonce.
    pub nonce: u64,
    /// Price per gas, in wei.
    pub gas_price: u128,
    /// Gas limit.
    pub gas_limit: u64,
}

/// EIP-712 `AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)`
/// in domain `ERC8004IdentityRegistry`, version `1`: the new wallet's consent
/// to become agent `agent_id`'s wallet (checked by `setAgentWallet`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AgentWalletSet {
    /// Domain `chainId`.
    pub chain_id: u64,
    /// Domain `verifyingContract`: the identity registry.
    pub identity_registry: Address,
    /// The agent (ERC-721 token id).
    pub agent_id: U256,
    /// The wallet that signs (normally this signer's own address).
    pub new_wallet: Address,
    /// The agent's owner at signing time.
    pub owner: Address,
    /// Unix time after which the registry rejects the signature. A `uint256`
    /// on chain; the registry allows at most five minutes ahead, so `u64`.
    pub deadline: u64,
}

/// EIP-712 `TaskReceipt(uint256 agentId,bytes32 taskHash,bytes32 resultHash,uint256 completedAt)`
/// in domain `ERC8004TaskReceipt`, version `1`, on the chain and identity
/// registry where the agent is registered: the agent's statement, signed
/// by its TEE key, that it completed the task of hash `task_hash` with the
/// result of hash `result_hash`. A client puts it in its feedback file, so
/// a reader of the Reputation Registry counts TEE-verified feedback apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TaskReceipt {
    /// Domain `chainId`.
    pub chain_id: u64,
    /// Domain `verifyingContract`: the identity registry the agent is in.
    pub identity_registry: Address,
    /// The agent (ERC-721 token id).
    pub agent_id: U256,
    /// keccak-256 of the task as the client asked it.
    pub task_hash: B256,
    /// keccak-256 of the result the agent returned.
    pub result_hash: B256,
    /// When the agent completed it (unix seconds; the agent's claim, which
    /// a reader compares with the feedback's block).
    pub completed_at: u64,
}

/// One `(string metadataKey, bytes metadataValue)` entry of `register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MetadataEntry<'a> {
    /// `metadataKey`.
    pub key: &'a str,
    /// `metadataValue`.
    pub value: &'a [u8],
}

/// A call to one of the ERC-8004 registry functions, fields in ABI order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumCount)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RegistryCall<'a> {
    /// Identity `register()`.
    Register,
    /// Identity `register(string agentURI)`.
    RegisterWithUri {
        /// `agentURI`.
        agent_uri: &'a str,
    },
    /// Identity `register(string agentURI, (string,bytes)[] metadata)`.
    RegisterWithMetadata {
        /// `agentURI`.
        agent_uri: &'a str,
        /// `metadata`.
        #[serde(borrow)]
        metadata: Metadata<'a>,
    },
    /// Identity `setAgentURI(uint256 agentId, string newURI)`.
    SetAgentUri {
        /// `agentId`.
        agent_id: U256,
        /// `newURI`.
        new_uri: &'a str,
    },
    /// Identity `setMetadata(uint256 agentId, string metadataKey, bytes metadataValue)`.
    SetMetadata {
        /// `agentId`.
        agent_id: U256,
        /// `metadataKey`.
        key: &'a str,
        /// `metadataValue`.
        value: &'a [u8],
    },
    /// Identity `setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes signature)`.
    SetAgentWallet {
        /// `agentId`.
        agent_id: U256,
        /// `newWallet`.
        new_wallet: Address,
        /// `deadline` (see [`AgentWalletSet::deadline`]).
        deadline: u64,
        /// The new wallet's `AgentWalletSet` signature.
        signature: &'a [u8],
    },
    /// Identity `unsetAgentWallet(uint256 agentId)`.
    UnsetAgentWallet {
        /// `agentId`.
        agent_id: U256,
    },
    /// Reputation `giveFeedback(uint256,int128,uint8,string,string,string,string,bytes32)`.
    GiveFeedback {
        /// `agentId`.
        agent_id: U256,
        /// `value`.
        value: i128,
        /// `valueDecimals`.
        value_decimals: u8,
        /// `tag1`.
        tag1: &'a str,
        /// `tag2`.
        tag2: &'a str,
        /// `endpoint`.
        endpoint: &'a str,
        /// `feedbackURI`.
        feedback_uri: &'a str,
        /// `feedbackHash`.
        feedback_hash: B256,
    },
    /// Reputation `revokeFeedback(uint256 agentId, uint64 feedbackIndex)`.
    RevokeFeedback {
        /// `agentId`.
        agent_id: U256,
        /// `feedbackIndex`.
        feedback_index: u64,
    },
    /// Reputation `appendResponse(uint256,address,uint64,string,bytes32)`.
    AppendResponse {
        /// `agentId`.
        agent_id: U256,
        /// `clientAddress`.
        client_address: Address,
        /// `feedbackIndex`.
        feedback_index: u64,
        /// `responseURI`.
        response_uri: &'a str,
        /// `responseHash`.
        response_hash: B256,
    },
    /// Validation `validationRequest(address,uint256,string,bytes32)`.
    ValidationRequest {
        /// `validatorAddress`.
        validator_address: Address,
        /// `agentId`.
        agent_id: U256,
        /// `requestURI`.
        request_uri: &'a str,
        /// `requestHash`.
        request_hash: B256,
    },
    /// Validation `validationResponse(bytes32,uint8,string,bytes32,string)`.
    ValidationResponse {
        /// `requestHash`.
        request_hash: B256,
        /// `response` (0..=100 on chain).
        response: u8,
        /// `responseURI`.
        response_uri: &'a str,
        /// `responseHash`.
        response_hash: B256,
        /// `tag`.
        tag: &'a str,
    },
}

/// A transaction's fee envelope: how it pays for gas and how its chain is
/// bound. One transaction body ([`TxBody`]) under either envelope, so the
/// calldata, display, JSON, policy and digest code is written once per body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumCount)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Envelope {
    /// EIP-1559 (type 2).
    Eip1559(TxParams),
    /// Legacy (type 0) with EIP-155 replay protection.
    Legacy(LegacyTxParams),
}

/// A call to an ERC-8004 registry function. Registry functions are not
/// payable, so the value is always zero.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RegistryTx<'a> {
    /// The registry contract (`to`).
    pub registry: Address,
    /// The function and its arguments.
    #[serde(borrow)]
    pub call: RegistryCall<'a>,
}

/// A generic call with bounded calldata (blind).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GenericTx<'a> {
    /// Recipient; contract creation is not supported.
    pub to: Address,
    /// Value in wei.
    pub value: U256,
    /// Calldata.
    pub data: &'a [u8],
}

/// A call to an ERC-20 token's function, fields in ABI order: what a policy
/// bounds by the token's rule (`Policy::tokens`) and its recipients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumCount)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TokenCall {
    /// `transfer(address to, uint256 amount)`.
    Transfer {
        /// `to`.
        to: Address,
        /// `amount`, in the token's smallest unit.
        amount: U256,
    },
    /// `approve(address spender, uint256 amount)`; an amount of 2^256 - 1
    /// is an unlimited approval.
    Approve {
        /// `spender`.
        spender: Address,
        /// `amount`.
        amount: U256,
    },
    /// `transferFrom(address from, address to, uint256 amount)`: moves
    /// tokens `from` approved this key to spend.
    TransferFrom {
        /// `from`.
        from: Address,
        /// `to`.
        to: Address,
        /// `amount`.
        amount: U256,
    },
}

/// A call to an ERC-20 token. Token functions are not payable here: the
/// value is always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TokenTx {
    /// The token contract (`to`).
    pub token: Address,
    /// The function and its arguments.
    pub call: TokenCall,
}

/// What a transaction does, whatever its envelope. A new registry call is a
/// [`RegistryCall`] variant; a new kind of call is a variant here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumCount)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TxBody<'a> {
    /// A call to a registry function.
    #[serde(borrow)]
    Registry(RegistryTx<'a>),
    /// A generic call (blind).
    #[serde(borrow)]
    Generic(GenericTx<'a>),
    /// A call to an ERC-20 token (protocol version 11).
    Token(TokenTx),
}

/// A transaction: a body under a fee envelope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transaction<'a> {
    /// Chain, nonce, gas and fees.
    pub envelope: Envelope,
    /// The call.
    #[serde(borrow)]
    pub body: TxBody<'a>,
}

/// An EIP-191 `personal_sign` message (version `0x45`), bounded (blind).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PersonalMessage<'a> {
    /// The message bytes, before the EIP-191 prefix.
    pub message: &'a [u8],
}

/// A pre-hashed EIP-712 message: the signer sees only two hashes (blind).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Eip712Prehashed {
    /// `hashStruct(EIP712Domain)`.
    pub domain_separator: B256,
    /// `hashStruct(message)`.
    pub struct_hash: B256,
}

/// Which EIP-3009 authorization a [`TokenAuthorization`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AuthorizationKind {
    /// `TransferWithAuthorization`: anyone may submit it (what x402's
    /// `exact` scheme signs).
    Transfer,
    /// `ReceiveWithAuthorization`: only the payee `to` may submit it.
    Receive,
}

/// EIP-3009 `TransferWithAuthorization` / `ReceiveWithAuthorization(address
/// from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)`
/// in the token's own EIP-712 domain (name, version, chain, the token as the
/// verifying contract; USDC's is `USD Coin`, `2`): a payment of `value` of
/// the token from this key, which the token executes once (its `nonce`)
/// between `validAfter` and `validBefore`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TokenAuthorization<'a> {
    /// Transfer or receive.
    pub kind: AuthorizationKind,
    /// Domain `chainId`.
    pub chain_id: u64,
    /// Domain `verifyingContract`: the token.
    pub token: Address,
    /// Domain `name` (bounded as a tag).
    pub name: &'a str,
    /// Domain `version` (bounded as a tag).
    pub version: &'a str,
    /// The payer: the signer itself.
    pub from: Address,
    /// The payee.
    pub to: Address,
    /// The amount, in the token's smallest unit.
    pub value: U256,
    /// Unix time after which the token executes it (a `uint256` on chain).
    pub valid_after: u64,
    /// Unix time before which the token executes it: the deadline a
    /// policy judges.
    pub valid_before: u64,
    /// The authorization's unique nonce.
    pub nonce: B256,
}

/// Everything the signer signs. One action has exactly one encoding
/// ([`Action::decode`]) and so exactly one digest ([`Action::digest`]).
///
/// Strings and byte fields borrow from the bytes the action was decoded
/// from (a request frame) or built from: an action is a few hundred bytes
/// whatever its fields' lengths, and nothing is copied to read one. How
/// long a field may be is the device's bound ([`crate::action::ActionBounds`]),
/// checked at run time, not a property of the type.
///
/// Messages and typed data carry no fee envelope; a transaction carries
/// one ([`Transaction`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumCount)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action<'a> {
    /// EIP-712 `AgentWalletSet`.
    AgentWalletSet(AgentWalletSet),
    /// A transaction (EIP-1559 or legacy EIP-155) to a registry function
    /// or a generic call.
    #[serde(borrow)]
    Transaction(Transaction<'a>),
    /// EIP-191 message (blind).
    #[serde(borrow)]
    PersonalMessage(PersonalMessage<'a>),
    /// Pre-hashed EIP-712 (blind).
    Eip712Prehashed(Eip712Prehashed),
    /// EIP-712 `TaskReceipt`.
    TaskReceipt(TaskReceipt),
    /// EIP-3009 typed data in a token's domain (protocol version 11).
    #[serde(borrow)]
    TokenAuthorization(TokenAuthorization<'a>),
}

/// Which ERC-8004 registry a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Registry {
    /// IdentityRegistry.
    Identity,
    /// ReputationRegistry.
    Reputation,
    /// ValidationRegistry.
    Validation,
}
