//! How actions read to people: the one-line descriptions a log, a prompt or
//! an operator's console shows. Strings are escaped, so a field cannot forge
//! extra lines.

use core::fmt;

use super::kind::ActionKind;
use super::types::{Action, RegistryCall, TxParams};
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
