//! Per-slot signing policy, as it travels and is stored: deny by default,
//! and only the admin changes it. The decisions are [`crate::policy`]'s.
//!
//! The default policy refuses everything. An admin allows action kinds
//! (blind kinds only by naming them), chains, contracts and agents by list
//! or explicitly as `Any`, and caps value, gas, fees, how far ahead an
//! `AgentWalletSet` deadline may lie, how many signatures a time window
//! may see, and how much native value all of them may carry per window.
//! Token actions (ERC-20 calls, EIP-3009 authorizations) go only to the
//! tokens the policy names, each with the most one action may move, and
//! only to the recipients it allows.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use strum::VariantArray;

use crate::action::ActionKind;
use crate::limits::{
    MAX_POLICY_AGENTS, MAX_POLICY_APPROVERS, MAX_POLICY_CHAINS, MAX_POLICY_CONTRACTS,
    MAX_POLICY_DOMAINS, MAX_POLICY_RECIPIENTS, MAX_POLICY_TOKENS,
};
use crate::primitives::{Address, B256, U256};

/// A set of [`ActionKind`]s, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KindSet(pub u32);

impl KindSet {
    /// No kind.
    pub const NONE: KindSet = KindSet(0);

    /// Every typed kind: the blind ones must still be named.
    #[must_use]
    pub fn typed() -> KindSet {
        ActionKind::ALL.iter().filter(|k| !k.is_blind()).fold(KindSet::NONE, |s, &k| s.with(k))
    }

    /// This set and `kind`.
    #[must_use]
    pub const fn with(self, kind: ActionKind) -> KindSet {
        KindSet(self.0 | kind.bit())
    }

    /// Whether `kind` is in the set.
    #[must_use]
    pub const fn contains(self, kind: ActionKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// An allow-list, or an explicit "anything".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Allow<T, const N: usize> {
    /// Only these (empty: nothing).
    Only(Vec<T, N>),
    /// Anything.
    Any,
}

impl<T, const N: usize> Default for Allow<T, N> {
    fn default() -> Self {
        Allow::Only(Vec::new())
    }
}

impl<T: PartialEq, const N: usize> Allow<T, N> {
    /// Whether `v` is allowed.
    pub fn permits(&self, v: &T) -> bool {
        match self {
            Allow::Any => true,
            Allow::Only(list) => list.contains(v),
        }
    }
}

/// At most `max` signatures per `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RateLimit {
    /// Signatures allowed per window.
    pub max: u32,
    /// Window length in seconds.
    pub window_secs: u32,
}

/// At most `max` wei of native value in all the transactions a slot signs
/// per window of `window_secs`. Each signature's value is reserved in the
/// same durable commit as its mark, before the signature leaves, so no
/// number of concurrent requests and no crash takes the slot past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SpendCap {
    /// Wei per window.
    pub max: U256,
    /// Window length in seconds.
    pub window_secs: u32,
}

/// A token the slot's token actions may use, the most one action may move
/// of it (or approve: an unlimited approval is the policy's
/// `unlimited_approvals`, not this bound), and optionally the most all of
/// them may move per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TokenRule {
    /// The token contract.
    pub token: Address,
    /// The most one action may move, in the token's smallest unit.
    pub max_amount: U256,
    /// The most the slot's token actions may move (or approve) of it per
    /// window, in the token's smallest unit: reserved with each signature's
    /// mark, in a window of the token's own, as `spend_cap` is for wei.
    pub cap: Option<SpendCap>,
}

/// Actions that wait for approvals (protocol version 12): those of the
/// kinds named here, transactions carrying more native value than
/// `above_value`, and token actions moving more than `above_amount` (or
/// approving without limit, when `above_amount` is set). The policy's other
/// rules still apply: approvals add a condition, they lift none. An action
/// flagged here is signed only with `threshold` distinct approvers'
/// signatures over it ([`super::SignApproved`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ApprovalRule {
    /// Who may approve (n).
    pub approvers: Vec<Address, MAX_POLICY_APPROVERS>,
    /// How many distinct approvers must (m: 1 to n; a device refuses a
    /// policy with another).
    pub threshold: u8,
    /// Kinds that always wait for approvals.
    pub kinds: KindSet,
    /// A transaction carrying more wei than this waits (`None`: none by value).
    pub above_value: Option<U256>,
    /// A token action moving (or approving) more than this, in its token's
    /// smallest unit, waits: one bound for every token the policy names
    /// (`None`: none by amount).
    pub above_amount: Option<U256>,
    /// The longest an approval may stay good: its `expires` at most this
    /// far ahead of the device's clock.
    pub max_ttl_secs: u32,
}

impl ApprovalRule {
    /// Whether the rule can be met: 1 to n approvals of n approvers.
    #[must_use]
    pub fn well_formed(&self) -> bool {
        self.threshold >= 1 && usize::from(self.threshold) <= self.approvers.len()
    }
}

/// A slot's policy. `Policy::default()` refuses everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Policy {
    /// Allowed action kinds.
    pub kinds: KindSet,
    /// Allowed chain ids (transactions, `AgentWalletSet`).
    pub chains: Allow<u64, MAX_POLICY_CHAINS>,
    /// Allowed contracts: a transaction's recipient, an `AgentWalletSet`'s
    /// verifying contract.
    pub contracts: Allow<Address, MAX_POLICY_CONTRACTS>,
    /// Allowed agent ids, for actions that name one.
    pub agents: Allow<U256, MAX_POLICY_AGENTS>,
    /// Largest value (wei) a transaction may carry.
    pub max_value: U256,
    /// Largest gas limit.
    pub max_gas_limit: u64,
    /// Largest `maxFeePerGas` (wei), and largest `gasPrice` of a legacy
    /// transaction: the most a transaction may pay per gas.
    pub max_fee_per_gas: u128,
    /// How far in the future an `AgentWalletSet` or `setAgentWallet`
    /// deadline may lie (the registry itself allows 300 s).
    pub max_deadline_ahead_secs: u64,
    /// Optional rate limit over all signatures of the slot.
    pub rate_limit: Option<RateLimit>,
    /// The EIP-712 domains (domain separators) whose pre-hashed typed data
    /// the slot signs, when its kinds name the pre-hashed kind: `Any` for
    /// blind typed data in every domain, or only these (the identity
    /// registry's domain, for an SDK that hands over `AgentWalletSet` only
    /// as its two hashes, without allowing blind typed data in general).
    pub eip712_domains: Allow<B256, MAX_POLICY_DOMAINS>,
    /// Optional cap on the native value all the slot's transactions carry
    /// per window (protocol version 10). Only a device whose store commits
    /// the reservation with the mark takes one
    /// ([`CounterStore::reserves_spend`](crate::device::CounterStore::reserves_spend)).
    pub spend_cap: Option<SpendCap>,
    /// The unix time after which the policy refuses everything (0: never;
    /// protocol version 10): a policy that ends by itself, for an agent
    /// let loose for a while. The host sets the clock (`docs/security.md`).
    pub valid_until: u64,
    /// The tokens token actions may use (protocol version 11): an ERC-20
    /// call to, or an EIP-3009 authorization in the domain of, a token not
    /// named here is refused, whatever `contracts` says.
    pub tokens: Vec<TokenRule, MAX_POLICY_TOKENS>,
    /// Who token actions may pay or approve (protocol version 11): the
    /// `to` of a transfer or authorization, the `spender` of an approval.
    pub recipients: Allow<Address, MAX_POLICY_RECIPIENTS>,
    /// Whether an `approve` of 2^256 - 1 (unlimited) is allowed (protocol
    /// version 11); any other approval is bounded by its token's `max_amount`.
    pub unlimited_approvals: bool,
    /// Which actions wait for m-of-n approvals (protocol version 12;
    /// `None`: none).
    pub approvals: Option<ApprovalRule>,
}

impl Policy {
    /// The rule of `token`, if the policy names it.
    #[must_use]
    pub fn token_rule(&self, token: &Address) -> Option<&TokenRule> {
        self.tokens.iter().find(|r| r.token == *token)
    }

    /// Whether a window of the policy (native or a token's) needs a store
    /// that reserves with the mark.
    #[must_use]
    pub fn capped(&self) -> bool {
        self.spend_cap.is_some() || self.tokens.iter().any(|r| r.cap.is_some())
    }
}

/// Why a policy refused an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, VariantArray)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PolicyViolation {
    /// The action kind is not allowed.
    KindNotAllowed,
    /// The chain is not allowed.
    ChainNotAllowed,
    /// The contract is not allowed.
    ContractNotAllowed,
    /// The agent is not allowed.
    AgentNotAllowed,
    /// The value is above `max_value`.
    ValueTooHigh,
    /// The gas limit is above `max_gas_limit`.
    GasLimitTooHigh,
    /// `maxFeePerGas` (or a legacy `gasPrice`) is above `max_fee_per_gas`.
    FeeTooHigh,
    /// The deadline has passed.
    DeadlineExpired,
    /// The deadline is further ahead than `max_deadline_ahead_secs`.
    DeadlineTooFar,
    /// An `AgentWalletSet` names another wallet than this slot's address:
    /// its signature could not set that wallet, only confuse.
    WalletIsNotSigner,
    /// The rate limit is used up for this window.
    RateLimited,
    /// The rule needs the time and the device has no clock.
    NoClock,
    /// Pre-hashed typed data of a domain the policy's `eip712_domains`
    /// does not name.
    DomainNotAllowed,
    /// The transaction's value would take the slot's spend window past its
    /// `spend_cap`, or a token action's amount its token's window past the
    /// token's `cap` (the refusal, [`DeviceError::OverCap`](crate::protocol::DeviceError::OverCap),
    /// says what remains and when the window ends).
    SpendCapExceeded,
    /// The policy's `valid_until` has passed.
    PolicyExpired,
    /// A token action for a token the policy's `tokens` does not name.
    TokenNotAllowed,
    /// A token action moving more than its token's `max_amount`.
    TokenAmountTooHigh,
    /// A token action paying or approving someone `recipients` does not name.
    RecipientNotAllowed,
    /// An unlimited `approve` the policy's `unlimited_approvals` does not allow.
    UnlimitedApproval,
    /// An EIP-3009 authorization whose `from` is not the slot's address: its
    /// signature could not move that account's tokens.
    PayerIsNotSigner,
    /// The action waits for approvals the request did not carry enough of
    /// (the refusal, [`DeviceError::ApprovalRequired`](crate::protocol::DeviceError::ApprovalRequired),
    /// says how many verified, how many must, and until when they may run).
    ApprovalRequired,
    /// The approvals' `expires` has passed.
    ApprovalExpired,
    /// The approvals' `expires` is further ahead than the rule's `max_ttl_secs`.
    ApprovalTooLong,
}

impl PolicyViolation {
    /// Every violation, in wire order (generated from the enum).
    pub const ALL: &'static [PolicyViolation] = <PolicyViolation as VariantArray>::VARIANTS;
}
