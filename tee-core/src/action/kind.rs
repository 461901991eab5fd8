//! The kind table, and the accessors a policy reads: each action's flat
//! [`ActionKind`] (its bit in a policy's kind mask), registry, chain,
//! contract, agent and transaction envelope.

use serde::{Deserialize, Serialize};
use strum::VariantArray;

use super::types::{
    Action, AuthorizationKind, Envelope, Registry, RegistryCall, TokenCall, Transaction, TxBody,
};
use crate::primitives::{Address, U256};

/// The flat list of action kinds a policy allows or refuses, with a stable
/// number each (its bit in a policy's kind mask).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, VariantArray,
)]
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
    /// EIP-712 `TaskReceipt`.
    TaskReceipt = 16,
    /// ERC-20 `transfer`.
    TokenTransfer = 17,
    /// ERC-20 `approve`.
    TokenApprove = 18,
    /// ERC-20 `transferFrom`.
    TokenTransferFrom = 19,
    /// EIP-3009 `TransferWithAuthorization` (x402's `exact` payment).
    TransferWithAuthorization = 20,
    /// EIP-3009 `ReceiveWithAuthorization`.
    ReceiveWithAuthorization = 21,
}

impl ActionKind {
    /// Every kind, in numeric order.
    /// Every kind, in numeric order (generated from the enum).
    pub const ALL: &'static [ActionKind] = <ActionKind as VariantArray>::VARIANTS;

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
            K::AgentWalletSet
            | K::GenericTx
            | K::PersonalMessage
            | K::Eip712Prehashed
            | K::TaskReceipt
            | K::TokenTransfer
            | K::TokenApprove
            | K::TokenTransferFrom
            | K::TransferWithAuthorization
            | K::ReceiveWithAuthorization => None,
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
            K::TaskReceipt => "TaskReceipt",
            K::TokenTransfer => "transfer",
            K::TokenApprove => "approve",
            K::TokenTransferFrom => "transferFrom",
            K::TransferWithAuthorization => "TransferWithAuthorization",
            K::ReceiveWithAuthorization => "ReceiveWithAuthorization",
        }
    }
}

impl RegistryCall<'_> {
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

    /// The registry this call goes to (from the kind table).
    #[must_use]
    pub const fn registry(&self) -> Registry {
        match self.kind().registry() {
            Some(r) => r,
            // Every registry-call kind names its registry in the table.
            None => Registry::Identity,
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

impl AuthorizationKind {
    /// The authorization of an EIP-3009 kind; `None` for any other kind.
    #[must_use]
    pub const fn of(kind: ActionKind) -> Option<AuthorizationKind> {
        match kind {
            ActionKind::TransferWithAuthorization => Some(AuthorizationKind::Transfer),
            ActionKind::ReceiveWithAuthorization => Some(AuthorizationKind::Receive),
            _ => None,
        }
    }
}

impl TokenCall {
    /// The flat kind of this call.
    #[must_use]
    pub const fn kind(&self) -> ActionKind {
        match self {
            TokenCall::Transfer { .. } => ActionKind::TokenTransfer,
            TokenCall::Approve { .. } => ActionKind::TokenApprove,
            TokenCall::TransferFrom { .. } => ActionKind::TokenTransferFrom,
        }
    }

    /// The amount of the token the call moves or lets move.
    #[must_use]
    pub const fn amount(&self) -> &U256 {
        match self {
            TokenCall::Transfer { amount, .. }
            | TokenCall::Approve { amount, .. }
            | TokenCall::TransferFrom { amount, .. } => amount,
        }
    }

    /// Who receives the tokens, or the right to take them (the spender).
    #[must_use]
    pub const fn recipient(&self) -> &Address {
        match self {
            TokenCall::Transfer { to, .. } | TokenCall::TransferFrom { to, .. } => to,
            TokenCall::Approve { spender, .. } => spender,
        }
    }
}

/// What a token action moves: which token, how much, to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenMove<'a> {
    /// The token contract.
    pub token: &'a Address,
    /// The amount (token units).
    pub amount: &'a U256,
    /// The payee, or the spender an approval names.
    pub recipient: &'a Address,
    /// Whether it is an unlimited approval (`approve` of 2^256 - 1).
    pub unlimited: bool,
}

impl Envelope {
    /// EIP-155 chain id.
    #[must_use]
    pub const fn chain_id(&self) -> u64 {
        match self {
            Envelope::Eip1559(p) => p.chain_id,
            Envelope::Legacy(p) => p.chain_id,
        }
    }

    /// Sender's account nonce.
    #[must_use]
    pub const fn nonce(&self) -> u64 {
        match self {
            Envelope::Eip1559(p) => p.nonce,
            Envelope::Legacy(p) => p.nonce,
        }
    }

    /// Gas limit.
    #[must_use]
    pub const fn gas_limit(&self) -> u64 {
        match self {
            Envelope::Eip1559(p) => p.gas_limit,
            Envelope::Legacy(p) => p.gas_limit,
        }
    }

    /// The most wei per gas the transaction can pay: `maxFeePerGas`, or a
    /// legacy transaction's `gasPrice` (what a policy's fee cap bounds).
    #[must_use]
    pub const fn max_fee_per_gas(&self) -> u128 {
        match self {
            Envelope::Eip1559(p) => p.max_fee_per_gas,
            Envelope::Legacy(p) => p.gas_price,
        }
    }

    /// The envelope's name in a transaction's line and in JSON.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Envelope::Eip1559(_) => "EIP-1559",
            Envelope::Legacy(_) => "legacy",
        }
    }
}

impl<'a> TxBody<'a> {
    /// The flat kind: the registry function called, or a generic call.
    #[must_use]
    pub const fn kind(&self) -> ActionKind {
        match self {
            TxBody::Registry(t) => t.call.kind(),
            TxBody::Generic(_) => ActionKind::GenericTx,
            TxBody::Token(t) => t.call.kind(),
        }
    }

    /// The recipient (`to`).
    #[must_use]
    pub const fn to(&self) -> &Address {
        match self {
            TxBody::Registry(t) => &t.registry,
            TxBody::Generic(t) => &t.to,
            TxBody::Token(t) => &t.token,
        }
    }

    /// Wei the call transfers (registry functions are not payable).
    #[must_use]
    pub const fn value(&self) -> U256 {
        match self {
            TxBody::Registry(_) | TxBody::Token(_) => U256::ZERO,
            TxBody::Generic(t) => t.value,
        }
    }

    /// The registry call, for a call to a registry.
    #[must_use]
    pub const fn registry_call(&self) -> Option<&RegistryCall<'a>> {
        match self {
            TxBody::Registry(t) => Some(&t.call),
            TxBody::Generic(_) | TxBody::Token(_) => None,
        }
    }
}

impl<'a> Action<'a> {
    /// The flat kind, for policy. The kind names what is called, not the
    /// envelope: a legacy transaction has the kind of its EIP-1559 twin.
    #[must_use]
    pub const fn kind(&self) -> ActionKind {
        match self {
            Action::AgentWalletSet(_) => ActionKind::AgentWalletSet,
            Action::Transaction(t) => t.body.kind(),
            Action::PersonalMessage(_) => ActionKind::PersonalMessage,
            Action::Eip712Prehashed(_) => ActionKind::Eip712Prehashed,
            Action::TaskReceipt(_) => ActionKind::TaskReceipt,
            Action::TokenAuthorization(a) => match a.kind {
                AuthorizationKind::Transfer => ActionKind::TransferWithAuthorization,
                AuthorizationKind::Receive => ActionKind::ReceiveWithAuthorization,
            },
        }
    }

    /// The transaction, for transaction actions.
    #[must_use]
    pub const fn transaction(&self) -> Option<&Transaction<'a>> {
        match self {
            Action::Transaction(t) => Some(t),
            _ => None,
        }
    }

    /// The chain the action is bound to; `None` for messages that bind none.
    #[must_use]
    pub const fn chain_id(&self) -> Option<u64> {
        match self {
            Action::AgentWalletSet(a) => Some(a.chain_id),
            Action::TaskReceipt(r) => Some(r.chain_id),
            Action::TokenAuthorization(a) => Some(a.chain_id),
            Action::Transaction(t) => Some(t.envelope.chain_id()),
            Action::PersonalMessage(_) | Action::Eip712Prehashed(_) => None,
        }
    }

    /// The contract the action is for: the EIP-712 verifying contract or the
    /// transaction's recipient.
    #[must_use]
    pub const fn contract(&self) -> Option<&Address> {
        match self {
            Action::AgentWalletSet(a) => Some(&a.identity_registry),
            Action::TaskReceipt(r) => Some(&r.identity_registry),
            Action::TokenAuthorization(a) => Some(&a.token),
            Action::Transaction(t) => Some(t.body.to()),
            Action::PersonalMessage(_) | Action::Eip712Prehashed(_) => None,
        }
    }

    /// The agent the action is about, where it names one.
    #[must_use]
    pub const fn agent_id(&self) -> Option<&U256> {
        match self {
            Action::AgentWalletSet(a) => Some(&a.agent_id),
            Action::TaskReceipt(r) => Some(&r.agent_id),
            Action::Transaction(t) => match t.body.registry_call() {
                Some(call) => call.agent_id(),
                None => None,
            },
            Action::PersonalMessage(_)
            | Action::Eip712Prehashed(_)
            | Action::TokenAuthorization(_) => None,
        }
    }

    /// The registry call, for registry transactions of either envelope.
    #[must_use]
    pub const fn registry_call(&self) -> Option<&RegistryCall<'a>> {
        match self {
            Action::Transaction(t) => t.body.registry_call(),
            _ => None,
        }
    }

    /// What a token action moves (an ERC-20 call or an EIP-3009
    /// authorization); `None` for every other action.
    #[must_use]
    pub fn token_move(&self) -> Option<TokenMove<'_>> {
        match self {
            Action::Transaction(Transaction { body: TxBody::Token(t), .. }) => Some(TokenMove {
                token: &t.token,
                amount: t.call.amount(),
                recipient: t.call.recipient(),
                unlimited: matches!(t.call, TokenCall::Approve { amount, .. } if amount.0 == [0xff; 32]),
            }),
            Action::TokenAuthorization(a) => Some(TokenMove {
                token: &a.token,
                amount: &a.value,
                recipient: &a.to,
                unlimited: false,
            }),
            _ => None,
        }
    }

    /// The deadline the action carries (unix seconds), which the policy's
    /// time rules judge: `AgentWalletSet`'s and `setAgentWallet`'s, an
    /// EIP-3009 authorization's `validBefore`.
    #[must_use]
    pub const fn deadline(&self) -> Option<u64> {
        match self {
            Action::AgentWalletSet(a) => Some(a.deadline),
            Action::TokenAuthorization(a) => Some(a.valid_before),
            _ => match self.registry_call() {
                Some(RegistryCall::SetAgentWallet { deadline, .. }) => Some(*deadline),
                _ => None,
            },
        }
    }

    /// The registry call, to change a field of it (a deadline, a URI).
    #[must_use]
    pub fn registry_call_mut(&mut self) -> Option<&mut RegistryCall<'a>> {
        match self {
            Action::Transaction(Transaction { body: TxBody::Registry(t), .. }) => Some(&mut t.call),
            _ => None,
        }
    }

    /// The transaction envelope, for transaction actions.
    #[must_use]
    pub const fn envelope(&self) -> Option<&Envelope> {
        match self {
            Action::Transaction(t) => Some(&t.envelope),
            _ => None,
        }
    }

    /// Whether the action is a transaction (of either envelope).
    #[must_use]
    pub const fn is_transaction(&self) -> bool {
        matches!(self, Action::Transaction(_))
    }

    /// Wei the action transfers (zero for everything but a generic transaction).
    #[must_use]
    pub const fn value(&self) -> U256 {
        match self {
            Action::Transaction(t) => t.body.value(),
            _ => U256::ZERO,
        }
    }
}
