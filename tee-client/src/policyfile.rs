//! A slot policy as an operator writes it (TOML or JSON), turned into the
//! device's [`Policy`]. Every field must be given: a policy file that
//! forgets a cap does not silently get one.
//!
//! ```toml
//! kinds = ["AgentWalletSet", "setAgentURI", "giveFeedback"]  # blind kinds only by name
//! chains = [8453]                 # or "any"
//! contracts = ["0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"]  # or "any"
//! agents = [42]                   # or "any"
//! max_value_wei = "0"
//! max_gas_limit = 500000
//! max_fee_per_gas_wei = "100000000000"
//! max_deadline_ahead_secs = 300
//! rate_limit = { max = 10, window_secs = 60 }   # optional
//! spend_cap = { max_wei = "1000000000000000000", window_secs = 86400 }  # optional: value of all transactions per window
//! valid_until = 1798761600        # optional: the unix time after which the policy refuses everything
//! eip712_domains = ["0x…"]       # optional: pre-hashed typed data only in these domains
//! # optional: the tokens ERC-20 calls and EIP-3009 authorizations (x402) may use, each with
//! # the most one action may move (token units, decimal); absent: none
//! tokens = [{ token = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", max_amount = "5000000",
//!             cap = { max = "20000000", window_secs = 86400 } }]   # cap: optional, per window
//! recipients = ["0x…"]            # optional: whom token actions may pay or approve (absent: "any")
//! unlimited_approvals = false     # optional: approve(spender, 2^256 - 1)
//! # optional: actions that wait for m of n approvers' EIP-712 signatures (`tee-signer approve`)
//! approvals = { approvers = ["0x…", "0x…", "0x…"], threshold = 2,
//!               kinds = ["generic-tx"],                    # these kinds always wait
//!               above_value_wei = "100000000000000000",    # transactions above this wait
//!               above_amount = "1000000",                  # token actions above this wait
//!               max_ttl_secs = 3600 }                      # how long an approval stays good
//! ```

use serde::{Deserialize, Serialize};
use tee_core::heapless;
use tee_core::limits::{MAX_POLICY_APPROVERS, MAX_POLICY_TOKENS};
use tee_core::protocol::{Allow, ApprovalRule, KindSet, Policy, RateLimit, SpendCap, TokenRule};
use tee_core::{ActionKind, Address, B256, U256};

/// A list, or the word `"any"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ListOrAny<T> {
    /// `"any"`.
    Any(AnyWord),
    /// Only these.
    List(Vec<T>),
}

/// The word `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnyWord {
    /// `"any"`.
    Any,
}

/// An agent id, as a number or a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AgentId {
    /// A number.
    Number(u64),
    /// A decimal string (for ids above 2^64).
    Text(#[serde(with = "dec")] u128),
}

mod dec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.trim().parse().map_err(|_| serde::de::Error::custom(format!("{s:?} is not a decimal")))
    }
}

/// The operator's policy file. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Action kind names (`ActionKind::name`), e.g. `setAgentURI`.
    pub kinds: Vec<String>,
    /// Chain ids.
    pub chains: ListOrAny<u64>,
    /// Contract addresses.
    pub contracts: ListOrAny<Address>,
    /// Agent ids.
    pub agents: ListOrAny<AgentId>,
    /// Largest transaction value in wei (decimal).
    #[serde(with = "dec")]
    pub max_value_wei: u128,
    /// Largest gas limit.
    pub max_gas_limit: u64,
    /// Largest `maxFeePerGas` in wei (decimal).
    #[serde(with = "dec")]
    pub max_fee_per_gas_wei: u128,
    /// How far ahead a wallet-binding deadline may be.
    pub max_deadline_ahead_secs: u64,
    /// Optional rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitFile>,
    /// The EIP-712 domain separators whose pre-hashed typed data the slot
    /// signs, when `kinds` names `eip712-prehashed` (e.g. only the identity
    /// registry's, for `AgentWalletSet` handed over as two hashes); absent:
    /// `"any"`.
    #[serde(default = "any_domain")]
    pub eip712_domains: ListOrAny<B256>,
    /// Optional cap on the native value of all the slot's transactions per
    /// window, reserved with each signature's mark (a signer whose marks
    /// are shared by replicas, or a microcontroller, refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_cap: Option<SpendCapFile>,
    /// Optional: the unix time after which the policy refuses everything
    /// (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<u64>,
    /// The tokens token actions may use (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenRuleFile>,
    /// Whom token actions may pay or approve (absent: `"any"`).
    #[serde(default = "any_address")]
    pub recipients: ListOrAny<Address>,
    /// Whether `approve(spender, 2^256 - 1)` is allowed (absent: no).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unlimited_approvals: bool,
    /// Which actions wait for m of n approvals (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalRuleFile>,
}

/// `{ approvers, threshold, kinds, above_value_wei, above_amount, max_ttl_secs }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRuleFile {
    /// Who may approve.
    pub approvers: Vec<Address>,
    /// How many distinct approvers must (1 to the number of approvers).
    pub threshold: u8,
    /// Kinds that always wait (names, as `kinds`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Transactions carrying more wei than this wait (decimal).
    #[serde(default, with = "dec256_opt", skip_serializing_if = "Option::is_none")]
    pub above_value_wei: Option<U256>,
    /// Token actions moving more than this (token units, decimal) wait.
    #[serde(default, with = "dec256_opt", skip_serializing_if = "Option::is_none")]
    pub above_amount: Option<U256>,
    /// How far ahead of the device's clock an approval may expire.
    pub max_ttl_secs: u32,
}

mod dec256_opt {
    use serde::{Deserializer, Serializer};
    use tee_core::U256;
    pub fn serialize<S: Serializer>(v: &Option<U256>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::dec256::serialize(v, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<U256>, D::Error> {
        super::dec256::deserialize(d).map(Some)
    }
}

/// `{ token, max_amount, cap }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRuleFile {
    /// The token contract.
    pub token: Address,
    /// The most one action may move, in the token's smallest unit (decimal).
    #[serde(with = "dec256")]
    pub max_amount: U256,
    /// Optional: the most all of the slot's token actions may move per
    /// window, reserved with each signature's mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<TokenCapFile>,
}

/// `{ max, window_secs }` of a token (its smallest unit, decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCapFile {
    /// Token units per window (decimal).
    #[serde(with = "dec256")]
    pub max: U256,
    /// Window in seconds.
    pub window_secs: u32,
}

mod dec256 {
    use serde::{Deserialize, Deserializer, Serializer};
    use tee_core::U256;
    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let s = String::deserialize(d)?;
        U256::from_decimal(s.trim())
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a decimal below 2^256")))
    }
}

fn any_address() -> ListOrAny<Address> {
    ListOrAny::Any(AnyWord::Any)
}

/// `{ max_wei, window_secs }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendCapFile {
    /// Wei per window (decimal).
    #[serde(with = "dec")]
    pub max_wei: u128,
    /// Window in seconds.
    pub window_secs: u32,
}

fn any_domain() -> ListOrAny<B256> {
    ListOrAny::Any(AnyWord::Any)
}

/// `{ max, window_secs }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    /// Signatures per window.
    pub max: u32,
    /// Window in seconds.
    pub window_secs: u32,
}

/// Why a policy file does not make a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    /// Not TOML or JSON of this shape.
    #[error("policy file: {0}")]
    Syntax(String),
    /// An action kind name nobody knows.
    #[error("unknown action kind {0:?} (`tee-signer demo --kind list` lists them)")]
    UnknownKind(String),
    /// A list longer than the device holds.
    #[error("{field}: at most {max} entries")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Its bound.
        max: usize,
    },
    /// A rate limit that allows nothing or has no window.
    #[error("rate_limit: max and window_secs must be at least 1")]
    BadRateLimit,
    /// A spend cap (or a token's cap) without a window (each transaction
    /// would start a new one: a cap per transaction, which `max_value_wei`
    /// or `max_amount` already is).
    #[error("spend_cap and a token's cap: window_secs must be at least 1")]
    BadSpendCap,
    /// An approval rule no number of approvals meets, or that needs none:
    /// `threshold` must be 1 to the number of approvers, and an approval
    /// must be able to live (`max_ttl_secs` at least 1).
    #[error(
        "approvals: threshold must be 1 to the number of approvers (at most {max}), max_ttl_secs at least 1"
    )]
    BadApprovals {
        /// The most approvers a rule names.
        max: usize,
    },
    /// A device policy whose value a policy file cannot say (a number above
    /// 2^128: set through the protocol, not from a file).
    #[error("{0}: above what a policy file says (2^128)")]
    Unwritable(&'static str),
}

/// `v` as a `u128`, if it fits.
fn u128_of(v: &U256) -> Option<u128> {
    let (high, low) = v.0.split_at(16);
    if high.iter().any(|b| *b != 0) {
        return None;
    }
    Some(u128::from_be_bytes(low.try_into().ok()?))
}

/// The names of the kinds in `set`, in kind order.
fn kind_names(set: KindSet) -> Vec<String> {
    ActionKind::ALL.iter().filter(|k| set.contains(**k)).map(|k| k.name().to_owned()).collect()
}

/// The set of kinds named (`ActionKind::name`, or the Rust name).
fn kind_set(names: &[String]) -> Result<KindSet, PolicyFileError> {
    names.iter().try_fold(KindSet::NONE, |set, name| {
        kind_by_name(name)
            .map(|k| set.with(k))
            .ok_or_else(|| PolicyFileError::UnknownKind(name.clone()))
    })
}

/// Finds an action kind by its name (`setAgentURI`) or its Rust name
/// (`SetAgentUri`), case-insensitively.
#[must_use]
pub fn kind_by_name(name: &str) -> Option<ActionKind> {
    ActionKind::ALL.iter().copied().find(|k| {
        k.name().eq_ignore_ascii_case(name) || format!("{k:?}").eq_ignore_ascii_case(name)
    })
}

fn list<T: Clone, U, const N: usize>(
    field: &'static str,
    v: &ListOrAny<T>,
    f: impl Fn(&T) -> U,
) -> Result<Allow<U, N>, PolicyFileError> {
    match v {
        ListOrAny::Any(_) => Ok(Allow::Any),
        ListOrAny::List(items) => {
            let mut out = heapless::Vec::new();
            for i in items {
                out.push(f(i)).map_err(|_| PolicyFileError::TooMany { field, max: N })?;
            }
            Ok(Allow::Only(out))
        }
    }
}

/// A device allow-list as a policy file writes it.
fn written<T, U, const N: usize>(
    field: &'static str,
    v: &Allow<T, N>,
    f: impl Fn(&T) -> Option<U>,
) -> Result<ListOrAny<U>, PolicyFileError> {
    match v {
        Allow::Any => Ok(ListOrAny::Any(AnyWord::Any)),
        Allow::Only(items) => items
            .iter()
            .map(|i| f(i).ok_or(PolicyFileError::Unwritable(field)))
            .collect::<Result<_, _>>()
            .map(ListOrAny::List),
    }
}

impl PolicyFile {
    /// The file that makes `policy` (what `tee-signer get-policy --toml`
    /// prints, and `set-policy` takes back): `to_policy` of it is `policy`.
    pub fn from_policy(policy: &Policy) -> Result<PolicyFile, PolicyFileError> {
        let kinds = kind_names(policy.kinds);
        let agent = |a: &U256| {
            let v = u128_of(a)?;
            Some(u64::try_from(v).map_or(AgentId::Text(v), AgentId::Number))
        };
        Ok(PolicyFile {
            kinds,
            chains: written("chains", &policy.chains, |c| Some(*c))?,
            contracts: written("contracts", &policy.contracts, |a| Some(*a))?,
            agents: written("agents", &policy.agents, agent)?,
            max_value_wei: u128_of(&policy.max_value)
                .ok_or(PolicyFileError::Unwritable("max_value_wei"))?,
            max_gas_limit: policy.max_gas_limit,
            max_fee_per_gas_wei: policy.max_fee_per_gas,
            max_deadline_ahead_secs: policy.max_deadline_ahead_secs,
            rate_limit: policy
                .rate_limit
                .map(|r| RateLimitFile { max: r.max, window_secs: r.window_secs }),
            eip712_domains: written("eip712_domains", &policy.eip712_domains, |d| Some(*d))?,
            spend_cap: policy
                .spend_cap
                .map(|c| {
                    let max_wei =
                        u128_of(&c.max).ok_or(PolicyFileError::Unwritable("spend_cap.max_wei"))?;
                    Ok(SpendCapFile { max_wei, window_secs: c.window_secs })
                })
                .transpose()?,
            valid_until: (policy.valid_until != 0).then_some(policy.valid_until),
            tokens: policy
                .tokens
                .iter()
                .map(|r| TokenRuleFile {
                    token: r.token,
                    max_amount: r.max_amount,
                    cap: r.cap.map(|c| TokenCapFile { max: c.max, window_secs: c.window_secs }),
                })
                .collect(),
            recipients: written("recipients", &policy.recipients, |a| Some(*a))?,
            unlimited_approvals: policy.unlimited_approvals,
            approvals: policy.approvals.as_ref().map(|r| ApprovalRuleFile {
                approvers: r.approvers.to_vec(),
                threshold: r.threshold,
                kinds: kind_names(r.kinds),
                above_value_wei: r.above_value,
                above_amount: r.above_amount,
                max_ttl_secs: r.max_ttl_secs,
            }),
        })
    }

    /// The file as TOML.
    pub fn to_toml(&self) -> Result<String, PolicyFileError> {
        toml::to_string(self).map_err(|e| PolicyFileError::Syntax(e.to_string()))
    }

    /// Parses TOML (or JSON, if it starts with `{`).
    pub fn parse(text: &str) -> Result<PolicyFile, PolicyFileError> {
        let r = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        r.map_err(PolicyFileError::Syntax)
    }

    /// The device policy.
    pub fn to_policy(&self) -> Result<Policy, PolicyFileError> {
        let kinds = kind_set(&self.kinds)?;
        let rate_limit = match self.rate_limit {
            None => None,
            Some(r) if r.max == 0 || r.window_secs == 0 => {
                return Err(PolicyFileError::BadRateLimit);
            }
            Some(r) => Some(RateLimit { max: r.max, window_secs: r.window_secs }),
        };
        let spend_cap = match self.spend_cap {
            None => None,
            Some(c) if c.window_secs == 0 => return Err(PolicyFileError::BadSpendCap),
            Some(c) => {
                Some(SpendCap { max: U256::from_u128(c.max_wei), window_secs: c.window_secs })
            }
        };
        let mut tokens = heapless::Vec::new();
        for r in &self.tokens {
            let cap = match r.cap {
                Some(c) if c.window_secs == 0 => return Err(PolicyFileError::BadSpendCap),
                c => c.map(|c| SpendCap { max: c.max, window_secs: c.window_secs }),
            };
            tokens.push(TokenRule { token: r.token, max_amount: r.max_amount, cap }).map_err(
                |_| PolicyFileError::TooMany { field: "tokens", max: MAX_POLICY_TOKENS },
            )?;
        }
        Ok(Policy {
            kinds,
            chains: list("chains", &self.chains, |c| *c)?,
            contracts: list("contracts", &self.contracts, |a| *a)?,
            agents: list("agents", &self.agents, |a| match *a {
                AgentId::Number(n) => U256::from_u64(n),
                AgentId::Text(n) => U256::from_u128(n),
            })?,
            max_value: U256::from_u128(self.max_value_wei),
            max_gas_limit: self.max_gas_limit,
            max_fee_per_gas: self.max_fee_per_gas_wei,
            max_deadline_ahead_secs: self.max_deadline_ahead_secs,
            rate_limit,
            eip712_domains: list("eip712_domains", &self.eip712_domains, |d| *d)?,
            spend_cap,
            valid_until: self.valid_until.unwrap_or(0),
            tokens,
            recipients: list("recipients", &self.recipients, |a| *a)?,
            unlimited_approvals: self.unlimited_approvals,
            approvals: self.approvals.as_ref().map(ApprovalRuleFile::to_rule).transpose()?,
        })
    }
}

impl ApprovalRuleFile {
    /// The device's rule.
    fn to_rule(&self) -> Result<ApprovalRule, PolicyFileError> {
        let bad = PolicyFileError::BadApprovals { max: MAX_POLICY_APPROVERS };
        let approvers = heapless::Vec::from_slice(&self.approvers).map_err(|_| bad.clone())?;
        let rule = ApprovalRule {
            approvers,
            threshold: self.threshold,
            kinds: kind_set(&self.kinds)?,
            above_value: self.above_value_wei,
            above_amount: self.above_amount,
            max_ttl_secs: self.max_ttl_secs,
        };
        if !rule.well_formed() || rule.max_ttl_secs == 0 {
            return Err(bad);
        }
        Ok(rule)
    }
}

#[cfg(test)]
mod tests;
