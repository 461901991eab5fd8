//! How actions read to people: the one-line descriptions a log, a prompt or
//! an operator's console shows. Strings are escaped, so a field cannot forge
//! extra lines.

use core::fmt;

use super::calldata::Arg;
use super::kind::ActionKind;
use super::types::{
    Action, AuthorizationKind, Envelope, LegacyTxParams, RegistryCall, TokenCall, Transaction,
    TxBody, TxParams,
};
use crate::primitives::Hex;

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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

impl fmt::Display for LegacyTxParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain {} nonce {} gas {} gasPrice {}",
            self.chain_id, self.nonce, self.gas_limit, self.gas_price
        )
    }
}

/// `name(arg, ...)`: numbers in decimal, addresses EIP-55, hashes and
/// bytes in hex, strings quoted and escaped.
fn call(f: &mut fmt::Formatter<'_>, name: &str, args: &[Arg<'_>]) -> fmt::Result {
    write!(f, "{name}(")?;
    for (i, a) in args.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(f, "{sep}{a}")?;
    }
    f.write_str(")")
}

impl fmt::Display for RegistryCall<'_> {
    /// The call, from the same table as the calldata ([`RegistryCall::with_args`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_args(|_, name, args| call(f, name, args))
    }
}

impl fmt::Display for TokenCall {
    /// The call, from the same table as the calldata.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_args(|_, name, args| call(f, name, args))
    }
}

impl fmt::Display for Arg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Uint(v) => write!(f, "{v}"),
            Arg::U256(v) => write!(f, "{v}"),
            Arg::Int(v) => write!(f, "{v}"),
            Arg::Address(a) => write!(f, "{a}"),
            Arg::B256(b) => write!(f, "{b}"),
            Arg::Str(t) => write!(f, "{}", Escaped(t)),
            Arg::Bytes(b) => write!(f, "{}", Hex(b)),
            Arg::Metadata(entries) => {
                f.write_str("[")?;
                for (i, e) in entries.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}({}, {})", Escaped(e.key), Hex(e.value))?;
                }
                f.write_str("]")
            }
        }
    }
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::AgentWalletSet(a) => write!(
                f,
                "EIP-712 AgentWalletSet(agentId {}, newWallet {}, owner {}, deadline {}) \
                 for registry {} on chain {}",
                a.agent_id, a.new_wallet, a.owner, a.deadline, a.identity_registry, a.chain_id
            ),
            Action::Transaction(t) => t.fmt(f),
            Action::PersonalMessage(m) => match core::str::from_utf8(m.message) {
                Ok(s) => write!(f, "EIP-191 message (blind) {}", Escaped(s)),
                Err(_) => write!(f, "EIP-191 message (blind) {}", Hex(m.message)),
            },
            Action::Eip712Prehashed(p) => write!(
                f,
                "EIP-712 pre-hashed (blind) domain {} struct {}",
                p.domain_separator, p.struct_hash
            ),
            Action::TaskReceipt(r) => write!(
                f,
                "EIP-712 TaskReceipt(agentId {}, taskHash {}, resultHash {}, completedAt {}) \
                 for registry {} on chain {}",
                r.agent_id,
                r.task_hash,
                r.result_hash,
                r.completed_at,
                r.identity_registry,
                r.chain_id
            ),
            Action::TokenAuthorization(a) => write!(
                f,
                "EIP-3009 {}WithAuthorization(from {}, to {}, value {}, validAfter {}, \
                 validBefore {}, nonce {}) for token {} ({} version {}) on chain {}",
                match a.kind {
                    AuthorizationKind::Transfer => "Transfer",
                    AuthorizationKind::Receive => "Receive",
                },
                a.from,
                a.to,
                a.value,
                a.valid_after,
                a.valid_before,
                a.nonce,
                a.token,
                Escaped(a.name),
                Escaped(a.version),
                a.chain_id
            ),
        }
    }
}

/// A transaction's fee envelope, as the transaction's line shows it.
impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Envelope::Eip1559(p) => p.fmt(f),
            Envelope::Legacy(p) => p.fmt(f),
        }
    }
}

/// One line per body, the envelope named before it and its fields after.
impl fmt::Display for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, e) = (self.envelope.name(), &self.envelope);
        match &self.body {
            TxBody::Registry(t) => {
                let (registry, call) = (&t.registry, &t.call);
                write!(f, "{name} tx to {:?} registry {registry}: {call} ({e})", call.registry())
            }
            TxBody::Generic(t) => {
                let (to, value) = (&t.to, &t.value);
                write!(f, "{name} tx (blind) to {to} value {value} data {} ({e})", Hex(t.data))
            }
            TxBody::Token(t) => write!(f, "{name} tx to token {}: {} ({e})", t.token, t.call),
        }
    }
}
