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
//! Wire stability: postcard encodes an enum variant by its index, so variants
//! are only ever appended, never reordered or `cfg`-gated.

use core::fmt;

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::{
    MAX_CALLDATA_LEN, MAX_MESSAGE_LEN, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_LEN,
    MAX_METADATA_VALUE_LEN, MAX_TAG_LEN, MAX_URI_LEN, MAX_WALLET_SIGNATURE_LEN,
};
use crate::primitives::{Address, B256, Hex, U256};
use crate::{codec, eip712, tx};

/// A URI field (`agentURI`, `feedbackURI`, ...).
pub type Uri = String<MAX_URI_LEN>;
/// A tag field (`tag1`, `tag2`, `tag`).
pub type Tag = String<MAX_TAG_LEN>;

/// A bounded string from `s`, or [`Error::TooLong`].
pub fn text<const N: usize>(s: &str) -> Result<String<N>> {
    String::try_from(s).map_err(|_| Error::TooLong)
}

/// A bounded byte vector from `b`, or [`Error::TooLong`].
pub fn bytes<const N: usize>(b: &[u8]) -> Result<Vec<u8, N>> {
    Vec::from_slice(b).map_err(|_| Error::TooLong)
}

/// The EIP-1559 fields a transaction action carries besides its call.
/// Access lists are always empty: no registry call needs one, and a policy
/// could not reason about them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
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

/// One `(string metadataKey, bytes metadataValue)` entry of `register`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MetadataEntry {
    /// `metadataKey`.
    pub key: String<MAX_METADATA_KEY_LEN>,
    /// `metadataValue`.
    pub value: Vec<u8, MAX_METADATA_VALUE_LEN>,
}

/// A call to one of the ERC-8004 registry functions, fields in ABI order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[allow(
    clippy::large_enum_variant,
    reason = "no alloc: actions live inline, bounded by crate::limits"
)]
pub enum RegistryCall {
    /// Identity `register()`.
    Register,
    /// Identity `register(string agentURI)`.
    RegisterWithUri {
        /// `agentURI`.
        agent_uri: Uri,
    },
    /// Identity `register(string agentURI, (string,bytes)[] metadata)`.
    RegisterWithMetadata {
        /// `agentURI`.
        agent_uri: Uri,
        /// `metadata`.
        metadata: Vec<MetadataEntry, MAX_METADATA_ENTRIES>,
    },
    /// Identity `setAgentURI(uint256 agentId, string newURI)`.
    SetAgentUri {
        /// `agentId`.
        agent_id: U256,
        /// `newURI`.
        new_uri: Uri,
    },
    /// Identity `setMetadata(uint256 agentId, string metadataKey, bytes metadataValue)`.
    SetMetadata {
        /// `agentId`.
        agent_id: U256,
        /// `metadataKey`.
        key: String<MAX_METADATA_KEY_LEN>,
        /// `metadataValue`.
        value: Vec<u8, MAX_METADATA_VALUE_LEN>,
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
        signature: Vec<u8, MAX_WALLET_SIGNATURE_LEN>,
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
        tag1: Tag,
        /// `tag2`.
        tag2: Tag,
        /// `endpoint`.
        endpoint: Uri,
        /// `feedbackURI`.
        feedback_uri: Uri,
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
        response_uri: Uri,
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
        request_uri: Uri,
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
        response_uri: Uri,
        /// `responseHash`.
        response_hash: B256,
        /// `tag`.
        tag: Tag,
    },
}

/// An EIP-1559 transaction calling an ERC-8004 registry. Registry functions
/// are not payable, so the value is always zero.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RegistryTx {
    /// Envelope fields.
    pub tx: TxParams,
    /// The registry contract (`to`).
    pub registry: Address,
    /// The function and its arguments.
    pub call: RegistryCall,
}

/// A generic EIP-1559 transaction with bounded calldata (blind).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GenericTx {
    /// Envelope fields.
    pub tx: TxParams,
    /// Recipient; contract creation is not supported.
    pub to: Address,
    /// Value in wei.
    pub value: U256,
    /// Calldata.
    pub data: Vec<u8, MAX_CALLDATA_LEN>,
}

/// An EIP-191 `personal_sign` message (version `0x45`), bounded (blind).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PersonalMessage {
    /// The message bytes, before the EIP-191 prefix.
    pub message: Vec<u8, MAX_MESSAGE_LEN>,
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

/// Everything the signer signs. One action has exactly one encoding
/// ([`Action::decode`]) and so exactly one digest ([`Action::digest`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[allow(
    clippy::large_enum_variant,
    reason = "no alloc: actions live inline, bounded by crate::limits"
)]
pub enum Action {
    /// EIP-712 `AgentWalletSet`.
    AgentWalletSet(AgentWalletSet),
    /// EIP-1559 transaction to a registry function.
    RegistryTx(RegistryTx),
    /// Generic EIP-1559 transaction (blind).
    GenericTx(GenericTx),
    /// EIP-191 message (blind).
    PersonalMessage(PersonalMessage),
    /// Pre-hashed EIP-712 (blind).
    Eip712Prehashed(Eip712Prehashed),
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

/// The flat list of action kinds a policy allows or refuses, with a stable
/// number each (its bit in a policy's kind mask).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ActionKind {
    /// EIP-712 `AgentWalletSet`.
    AgentWalletSet = 0,
    /// `register()`.
    Register = 1,
    /// `register(string)`.
    RegisterWithUri = 2,
    /// `register(string,(string,bytes)[])`.
    RegisterWithMetadata = 3,
    /// `setAgentURI`.
    SetAgentUri = 4,
    /// `setMetadata`.
    SetMetadata = 5,
    /// `setAgentWallet`.
    SetAgentWallet = 6,
    /// `unsetAgentWallet`.
    UnsetAgentWallet = 7,
    /// `giveFeedback`.
    GiveFeedback = 8,
    /// `revokeFeedback`.
    RevokeFeedback = 9,
    /// `appendResponse`.
    AppendResponse = 10,
    /// `validationRequest`.
    ValidationRequest = 11,
    /// `validationResponse`.
    ValidationResponse = 12,
    /// Generic transaction (blind).
    GenericTx = 13,
    /// EIP-191 message (blind).
    PersonalMessage = 14,
    /// Pre-hashed EIP-712 (blind).
    Eip712Prehashed = 15,
}

impl ActionKind {
    /// Every kind, in numeric order.
    pub const ALL: [ActionKind; 16] = [
        ActionKind::AgentWalletSet,
        ActionKind::Register,
        ActionKind::RegisterWithUri,
        ActionKind::RegisterWithMetadata,
        ActionKind::SetAgentUri,
        ActionKind::SetMetadata,
        ActionKind::SetAgentWallet,
        ActionKind::UnsetAgentWallet,
        ActionKind::GiveFeedback,
        ActionKind::RevokeFeedback,
        ActionKind::AppendResponse,
        ActionKind::ValidationRequest,
        ActionKind::ValidationResponse,
        ActionKind::GenericTx,
        ActionKind::PersonalMessage,
        ActionKind::Eip712Prehashed,
    ];

    /// Blind kinds: the signer cannot see what they mean.
    #[must_use]
    pub const fn is_blind(self) -> bool {
        matches!(
            self,
            ActionKind::GenericTx | ActionKind::PersonalMessage | ActionKind::Eip712Prehashed
        )
    }

    /// This kind's bit in a kind mask.
    #[must_use]
    pub const fn bit(self) -> u32 {
        1 << (self as u8)
    }

    /// The registry a registry-call kind goes to.
    #[must_use]
    pub const fn registry(self) -> Option<Registry> {
        use ActionKind as K;
        match self {
            K::Register
            | K::RegisterWithUri
            | K::RegisterWithMetadata
            | K::SetAgentUri
            | K::SetMetadata
            | K::SetAgentWallet
            | K::UnsetAgentWallet => Some(Registry::Identity),
            K::GiveFeedback | K::RevokeFeedback | K::AppendResponse => Some(Registry::Reputation),
            K::ValidationRequest | K::ValidationResponse => Some(Registry::Validation),
            K::AgentWalletSet | K::GenericTx | K::PersonalMessage | K::Eip712Prehashed => None,
        }
    }

    /// A short stable name, as in the README's table.
    #[must_use]
    pub const fn name(self) -> &'static str {
        use ActionKind as K;
        match self {
            K::AgentWalletSet => "AgentWalletSet",
            K::Register => "register()",
            K::RegisterWithUri => "register(string)",
            K::RegisterWithMetadata => "register(string,(string,bytes)[])",
            K::SetAgentUri => "setAgentURI",
            K::SetMetadata => "setMetadata",
            K::SetAgentWallet => "setAgentWallet",
            K::UnsetAgentWallet => "unsetAgentWallet",
            K::GiveFeedback => "giveFeedback",
            K::RevokeFeedback => "revokeFeedback",
            K::AppendResponse => "appendResponse",
            K::ValidationRequest => "validationRequest",
            K::ValidationResponse => "validationResponse",
            K::GenericTx => "generic-tx",
            K::PersonalMessage => "personal_sign",
            K::Eip712Prehashed => "eip712-prehashed",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl RegistryCall {
    /// The flat kind of this call.
    #[must_use]
    pub const fn kind(&self) -> ActionKind {
        match self {
            RegistryCall::Register => ActionKind::Register,
            RegistryCall::RegisterWithUri { .. } => ActionKind::RegisterWithUri,
            RegistryCall::RegisterWithMetadata { .. } => ActionKind::RegisterWithMetadata,
            RegistryCall::SetAgentUri { .. } => ActionKind::SetAgentUri,
            RegistryCall::SetMetadata { .. } => ActionKind::SetMetadata,
            RegistryCall::SetAgentWallet { .. } => ActionKind::SetAgentWallet,
            RegistryCall::UnsetAgentWallet { .. } => ActionKind::UnsetAgentWallet,
            RegistryCall::GiveFeedback { .. } => ActionKind::GiveFeedback,
            RegistryCall::RevokeFeedback { .. } => ActionKind::RevokeFeedback,
            RegistryCall::AppendResponse { .. } => ActionKind::AppendResponse,
            RegistryCall::ValidationRequest { .. } => ActionKind::ValidationRequest,
            RegistryCall::ValidationResponse { .. } => ActionKind::ValidationResponse,
        }
    }

    /// The registry this call goes to.
    #[must_use]
    pub const fn registry(&self) -> Registry {
        use RegistryCall as C;
        match self {
            C::Register
            | C::RegisterWithUri { .. }
            | C::RegisterWithMetadata { .. }
            | C::SetAgentUri { .. }
            | C::SetMetadata { .. }
            | C::SetAgentWallet { .. }
            | C::UnsetAgentWallet { .. } => Registry::Identity,
            C::GiveFeedback { .. } | C::RevokeFeedback { .. } | C::AppendResponse { .. } => {
                Registry::Reputation
            }
            C::ValidationRequest { .. } | C::ValidationResponse { .. } => Registry::Validation,
        }
    }

    /// The agent this call is about, where it names one. `register` creates
    /// an agent whose id is not known yet; `validationResponse` names a
    /// request, not an agent.
    #[must_use]
    pub const fn agent_id(&self) -> Option<&U256> {
        match self {
            RegistryCall::SetAgentUri { agent_id, .. }
            | RegistryCall::SetMetadata { agent_id, .. }
            | RegistryCall::SetAgentWallet { agent_id, .. }
            | RegistryCall::UnsetAgentWallet { agent_id }
            | RegistryCall::GiveFeedback { agent_id, .. }
            | RegistryCall::RevokeFeedback { agent_id, .. }
            | RegistryCall::AppendResponse { agent_id, .. }
            | RegistryCall::ValidationRequest { agent_id, .. } => Some(agent_id),
            RegistryCall::Register
            | RegistryCall::RegisterWithUri { .. }
            | RegistryCall::RegisterWithMetadata { .. }
            | RegistryCall::ValidationResponse { .. } => None,
        }
    }
}

impl Action {
    /// The flat kind, for policy.
    #[must_use]
    pub const fn kind(&self) -> ActionKind {
        match self {
            Action::AgentWalletSet(_) => ActionKind::AgentWalletSet,
            Action::RegistryTx(t) => t.call.kind(),
            Action::GenericTx(_) => ActionKind::GenericTx,
            Action::PersonalMessage(_) => ActionKind::PersonalMessage,
            Action::Eip712Prehashed(_) => ActionKind::Eip712Prehashed,
        }
    }

    /// The chain the action is bound to; `None` for messages that bind none.
    #[must_use]
    pub const fn chain_id(&self) -> Option<u64> {
        match self {
            Action::AgentWalletSet(a) => Some(a.chain_id),
            Action::RegistryTx(t) => Some(t.tx.chain_id),
            Action::GenericTx(t) => Some(t.tx.chain_id),
            Action::PersonalMessage(_) | Action::Eip712Prehashed(_) => None,
        }
    }

    /// The contract the action is for: the EIP-712 verifying contract or the
    /// transaction's recipient.
    #[must_use]
    pub const fn contract(&self) -> Option<&Address> {
        match self {
            Action::AgentWalletSet(a) => Some(&a.identity_registry),
            Action::RegistryTx(t) => Some(&t.registry),
            Action::GenericTx(t) => Some(&t.to),
            Action::PersonalMessage(_) | Action::Eip712Prehashed(_) => None,
        }
    }

    /// The agent the action is about, where it names one.
    #[must_use]
    pub const fn agent_id(&self) -> Option<&U256> {
        match self {
            Action::AgentWalletSet(a) => Some(&a.agent_id),
            Action::RegistryTx(t) => t.call.agent_id(),
            Action::GenericTx(_) | Action::PersonalMessage(_) | Action::Eip712Prehashed(_) => None,
        }
    }

    /// The transaction envelope, for transaction actions.
    #[must_use]
    pub const fn tx_params(&self) -> Option<&TxParams> {
        match self {
            Action::RegistryTx(t) => Some(&t.tx),
            Action::GenericTx(t) => Some(&t.tx),
            Action::AgentWalletSet(_) | Action::PersonalMessage(_) | Action::Eip712Prehashed(_) => {
                None
            }
        }
    }

    /// Wei the action transfers (zero for everything but a generic transaction).
    #[must_use]
    pub const fn value(&self) -> U256 {
        match self {
            Action::GenericTx(t) => t.value,
            _ => U256::ZERO,
        }
    }

    /// The 32-byte digest the signer signs: the EIP-712 typed-data hash, the
    /// EIP-1559 signing hash, or the EIP-191 message hash.
    #[must_use]
    pub fn digest(&self) -> B256 {
        match self {
            Action::AgentWalletSet(a) => a.digest(),
            Action::RegistryTx(t) => tx::signing_hash(&tx::TxView::registry(t)),
            Action::GenericTx(t) => tx::signing_hash(&tx::TxView::generic(t)),
            Action::PersonalMessage(m) => eip712::personal_message_digest(&m.message),
            Action::Eip712Prehashed(p) => {
                eip712::typed_data_digest(&p.domain_separator, &p.struct_hash)
            }
        }
    }

    /// Decodes the one canonical encoding of an action.
    ///
    /// Errors are typed: [`Error::UnknownVariant`] for an action or registry
    /// call tag this version does not know, [`Error::TooLong`] for a field over
    /// its bound, and the others of [`codec::decode`].
    #[inline(never)]
    pub fn decode(bytes: &[u8]) -> Result<Action> {
        if bytes.len() > crate::limits::MAX_ACTION_LEN {
            return Err(Error::TooLong);
        }
        check_tags(bytes)?;
        codec::decode(bytes)
    }

    /// Encodes into `buf` (at most [`crate::limits::MAX_ACTION_LEN`] bytes).
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
        codec::encode(self, buf)
    }
}

/// Number of [`Action`] variants.
pub(crate) const ACTION_VARIANTS: u64 = 5;
/// Number of [`RegistryCall`] variants.
pub(crate) const REGISTRY_CALL_VARIANTS: u64 = 12;

/// postcard reports an unknown enum tag exactly as it reports an over-long
/// heapless field (a serde custom error), so the action's two tags are read
/// here first and each problem gets its own error. Anything else wrong with
/// the bytes is left for postcard to report.
fn check_tags(bytes: &[u8]) -> Result<()> {
    fn varint(r: &mut &[u8]) -> Option<u64> {
        let mut v: u64 = 0;
        // Up to 19 bytes: the u128 fee fields.
        for i in 0..19 {
            let (&b, rest) = r.split_first()?;
            *r = rest;
            if i < 10 {
                v |= u64::from(b & 0x7f) << (7 * i);
            } else {
                v = u64::MAX;
            }
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut r = bytes;
    let Some(tag) = varint(&mut r) else { return Ok(()) };
    if tag >= ACTION_VARIANTS {
        return Err(Error::UnknownVariant);
    }
    if tag == 1 {
        // RegistryTx: TxParams (five varints), registry (20 bytes), call tag.
        for _ in 0..5 {
            if varint(&mut r).is_none() {
                return Ok(());
            }
        }
        let Some(mut rest) = r.get(20..) else { return Ok(()) };
        if varint(&mut rest).is_some_and(|call| call >= REGISTRY_CALL_VARIANTS) {
            return Err(Error::UnknownVariant);
        }
    }
    Ok(())
}

impl AgentWalletSet {
    /// `hashStruct(AgentWalletSet)`.
    #[must_use]
    pub fn struct_hash(&self) -> B256 {
        eip712::agent_wallet_set_struct_hash(self)
    }

    /// The identity registry's EIP-712 domain separator for this chain.
    #[must_use]
    pub fn domain_separator(&self) -> B256 {
        eip712::identity_registry_domain(self.chain_id, &self.identity_registry)
    }

    /// The EIP-712 digest the new wallet signs.
    #[must_use]
    pub fn digest(&self) -> B256 {
        eip712::typed_data_digest(&self.domain_separator(), &self.struct_hash())
    }
}

/// Writes `s` with control characters escaped, so a display of an action
/// cannot forge extra lines in a log or a prompt.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c.is_control() || c == '"' || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Display for TxParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain {} nonce {} gas {} maxFee {} tip {}",
            self.chain_id,
            self.nonce,
            self.gas_limit,
            self.max_fee_per_gas,
            self.max_priority_fee_per_gas
        )
    }
}

impl fmt::Display for RegistryCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RegistryCall as C;
        match self {
            C::Register => write!(f, "register()"),
            C::RegisterWithUri { agent_uri } => write!(f, "register({})", Escaped(agent_uri)),
            C::RegisterWithMetadata { agent_uri, metadata } => {
                write!(f, "register({}, [", Escaped(agent_uri))?;
                for (i, e) in metadata.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}({}, {})", Escaped(&e.key), Hex(&e.value))?;
                }
                write!(f, "])")
            }
            C::SetAgentUri { agent_id, new_uri } => {
                write!(f, "setAgentURI({agent_id}, {})", Escaped(new_uri))
            }
            C::SetMetadata { agent_id, key, value } => {
                write!(f, "setMetadata({agent_id}, {}, {})", Escaped(key), Hex(value))
            }
            C::SetAgentWallet { agent_id, new_wallet, deadline, signature } => write!(
                f,
                "setAgentWallet({agent_id}, {new_wallet}, {deadline}, {})",
                Hex(signature)
            ),
            C::UnsetAgentWallet { agent_id } => write!(f, "unsetAgentWallet({agent_id})"),
            C::GiveFeedback {
                agent_id,
                value,
                value_decimals,
                tag1,
                tag2,
                endpoint,
                feedback_uri,
                feedback_hash,
            } => write!(
                f,
                "giveFeedback({agent_id}, {value}, {value_decimals}, {}, {}, {}, {}, {feedback_hash})",
                Escaped(tag1),
                Escaped(tag2),
                Escaped(endpoint),
                Escaped(feedback_uri)
            ),
            C::RevokeFeedback { agent_id, feedback_index } => {
                write!(f, "revokeFeedback({agent_id}, {feedback_index})")
            }
            C::AppendResponse {
                agent_id,
                client_address,
                feedback_index,
                response_uri,
                response_hash,
            } => write!(
                f,
                "appendResponse({agent_id}, {client_address}, {feedback_index}, {}, {response_hash})",
                Escaped(response_uri)
            ),
            C::ValidationRequest { validator_address, agent_id, request_uri, request_hash } => {
                write!(
                    f,
                    "validationRequest({validator_address}, {agent_id}, {}, {request_hash})",
                    Escaped(request_uri)
                )
            }
            C::ValidationResponse { request_hash, response, response_uri, response_hash, tag } => {
                write!(
                    f,
                    "validationResponse({request_hash}, {response}, {}, {response_hash}, {})",
                    Escaped(response_uri),
                    Escaped(tag)
                )
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::AgentWalletSet(a) => write!(
                f,
                "EIP-712 AgentWalletSet(agentId {}, newWallet {}, owner {}, deadline {}) \
                 for registry {} on chain {}",
                a.agent_id, a.new_wallet, a.owner, a.deadline, a.identity_registry, a.chain_id
            ),
            Action::RegistryTx(t) => {
                write!(
                    f,
                    "EIP-1559 tx to {:?} registry {}: {} ({})",
                    t.call.registry(),
                    t.registry,
                    t.call,
                    t.tx
                )
            }
            Action::GenericTx(t) => write!(
                f,
                "EIP-1559 tx (blind) to {} value {} data {} ({})",
                t.to,
                t.value,
                Hex(&t.data),
                t.tx
            ),
            Action::PersonalMessage(m) => match core::str::from_utf8(&m.message) {
                Ok(s) => write!(f, "EIP-191 message (blind) {}", Escaped(s)),
                Err(_) => write!(f, "EIP-191 message (blind) {}", Hex(&m.message)),
            },
            Action::Eip712Prehashed(p) => write!(
                f,
                "EIP-712 pre-hashed (blind) domain {} struct {}",
                p.domain_separator, p.struct_hash
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag counts `check_tags` relies on match the enums.
    #[test]
    fn variant_counts() {
        let eip712 = Action::Eip712Prehashed(Eip712Prehashed {
            domain_separator: B256::ZERO,
            struct_hash: B256::ZERO,
        });
        let mut buf = [0u8; 128];
        assert_eq!(u64::from(eip712.encode(&mut buf).unwrap()[0]), ACTION_VARIANTS - 1);
        let calls = ActionKind::ALL.iter().filter(|k| k.registry().is_some()).count();
        assert_eq!(calls as u64, REGISTRY_CALL_VARIANTS);
        let last = Action::RegistryTx(RegistryTx {
            tx: TxParams::default(),
            registry: Address::ZERO,
            call: RegistryCall::ValidationResponse {
                request_hash: B256::ZERO,
                response: 0,
                response_uri: Uri::new(),
                response_hash: B256::ZERO,
                tag: Tag::new(),
            },
        });
        let enc = last.encode(&mut buf).unwrap();
        // tag, five one-byte zero varints, 20-byte address, call tag
        assert_eq!(u64::from(enc[1 + 5 + 20]), REGISTRY_CALL_VARIANTS - 1);
        // One past the last call tag.
        enc[1 + 5 + 20] = REGISTRY_CALL_VARIANTS as u8;
        assert_eq!(Action::decode(enc), Err(Error::UnknownVariant));
        enc[0] = ACTION_VARIANTS as u8;
        assert_eq!(Action::decode(enc), Err(Error::UnknownVariant));
    }
}
