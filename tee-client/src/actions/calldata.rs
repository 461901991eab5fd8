//! Registry calldata back into the typed call, strictly: decoded with
//! alloy's ABI types for the ERC-8004 v2.0.0 functions, then encoded again
//! by the core, which must give the same bytes. So what the device signs
//! (calldata it builds from the typed fields) is exactly what the user's
//! transaction carries, and anything the core would encode differently (a
//! non-canonical offset, padding, trailing bytes) is refused rather than
//! reinterpreted. How long a field may be is the device's bound, checked
//! against the action before it is sent.

use alloy_sol_types::{SolCall, sol};
use tee_core::action::{MetadataEntry, Registry, RegistryCall, TokenCall};
use tee_core::{Address, B256, U256};

sol! {
    /// The ERC-8004 v2.0.0 identity registry's functions.
    interface IIdentityRegistry {
        struct MetadataEntry { string metadataKey; bytes metadataValue; }
        function register() external returns (uint256 agentId);
        function register(string agentURI) external returns (uint256 agentId);
        function register(string agentURI, MetadataEntry[] metadata) external returns (uint256 agentId);
        function setAgentURI(uint256 agentId, string newURI) external;
        function setMetadata(uint256 agentId, string metadataKey, bytes metadataValue) external;
        function setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes signature) external;
        function unsetAgentWallet(uint256 agentId) external;
    }
    /// The reputation registry's writes.
    interface IReputationRegistry {
        function giveFeedback(uint256 agentId, int128 value, uint8 valueDecimals, string tag1, string tag2, string endpoint, string feedbackURI, bytes32 feedbackHash) external;
        function revokeFeedback(uint256 agentId, uint64 feedbackIndex) external;
        function appendResponse(uint256 agentId, address clientAddress, uint64 feedbackIndex, string responseURI, bytes32 responseHash) external;
    }
    /// The validation registry's writes.
    interface IValidationRegistry {
        function validationRequest(address validatorAddress, uint256 agentId, string requestURI, bytes32 requestHash) external;
        function validationResponse(bytes32 requestHash, uint8 response, string responseURI, bytes32 responseHash, string tag) external;
    }
    /// ERC-20's transfers and approvals.
    interface IERC20 {
        function transfer(address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
    }
}

/// Why calldata is not the registry call it looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalldataError {
    /// No selector of an ERC-8004 function of this registry.
    #[error("selector {selector} is no {registry:?} registry function")]
    UnknownFunction {
        /// The first four bytes, hex.
        selector: String,
        /// The registry the transaction goes to.
        registry: Registry,
    },
    /// The arguments do not decode as the function's.
    #[error("{function}: the arguments do not decode: {reason}")]
    Decode {
        /// The function.
        function: &'static str,
        /// Why.
        reason: String,
    },
    /// More entries than an action holds (`metadata`: four).
    #[error("{function}: more {field} entries than the signer takes")]
    TooLong {
        /// The function.
        function: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A value out of the range the signer takes (a deadline above 2^64).
    #[error("{function}: {field} is out of range")]
    OutOfRange {
        /// The function.
        function: &'static str,
        /// The field.
        field: &'static str,
    },
    /// It decodes, but is not the canonical encoding of what it decodes to.
    #[error("{function}: not the canonical ABI encoding of its arguments")]
    NotCanonical {
        /// The function.
        function: &'static str,
    },
}

fn u256(v: alloy_sol_types::private::U256) -> U256 {
    U256(v.to_be_bytes())
}

/// ERC-20 calldata as the typed token call, when it is exactly the
/// canonical encoding of `transfer`, `approve` or `transferFrom`; `None`
/// for anything else (the transaction is then a generic one).
#[must_use]
pub fn token_call(data: &[u8]) -> Option<TokenCall> {
    let a = |v: alloy_sol_types::private::Address| Address(v.0.0);
    let call = match data.get(..4)? {
        s if s == IERC20::transferCall::SELECTOR => {
            let c = IERC20::transferCall::abi_decode(data).ok()?;
            TokenCall::Transfer { to: a(c.to), amount: u256(c.amount) }
        }
        s if s == IERC20::approveCall::SELECTOR => {
            let c = IERC20::approveCall::abi_decode(data).ok()?;
            TokenCall::Approve { spender: a(c.spender), amount: u256(c.amount) }
        }
        s if s == IERC20::transferFromCall::SELECTOR => {
            let c = IERC20::transferFromCall::abi_decode(data).ok()?;
            TokenCall::TransferFrom { from: a(c.from), to: a(c.to), amount: u256(c.amount) }
        }
        _ => return None,
    };
    let mut buf = [0u8; 100];
    call.calldata(&mut buf).is_ok_and(|b| b == data).then_some(call)
}

/// Decodes `data` sent to a `registry` into its typed call, which `then`
/// reads (the call borrows the decoded arguments).
pub fn decode<R>(
    registry: Registry,
    data: &[u8],
    then: impl FnOnce(&RegistryCall<'_>) -> R,
) -> Result<R, CalldataError> {
    use IIdentityRegistry as I;
    use IReputationRegistry as R;
    use IValidationRegistry as V;
    let selector: [u8; 4] = data
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| CalldataError::UnknownFunction { selector: hex::encode(data), registry })?;
    macro_rules! args {
        ($call:ty, $name:literal) => {
            <$call>::abi_decode(data)
                .map_err(|e| CalldataError::Decode { function: $name, reason: e.to_string() })?
        };
    }
    // Strict: the core's encoding of the decoded call is the input.
    let finish = |call: RegistryCall<'_>| {
        let mut buf = vec![0u8; call.calldata_len()];
        if !call.calldata(&mut buf).is_ok_and(|b| b == data) {
            return Err(CalldataError::NotCanonical { function: call.kind().name() });
        }
        Ok(then(&call))
    };
    match (registry, selector) {
        (Registry::Identity, I::register_0Call::SELECTOR) => {
            args!(I::register_0Call, "register()");
            finish(RegistryCall::Register)
        }
        (Registry::Identity, I::register_1Call::SELECTOR) => {
            let a = args!(I::register_1Call, "register(string)");
            finish(RegistryCall::RegisterWithUri { agent_uri: &a.agentURI })
        }
        (Registry::Identity, I::register_2Call::SELECTOR) => {
            const F: &str = "register(string,(string,bytes)[])";
            let a = args!(I::register_2Call, "register(string,(string,bytes)[])");
            let mut metadata = tee_core::heapless::Vec::new();
            for e in &a.metadata {
                let entry = MetadataEntry { key: &e.metadataKey, value: &e.metadataValue };
                metadata
                    .push(entry)
                    .map_err(|_| CalldataError::TooLong { function: F, field: "metadata" })?;
            }
            finish(RegistryCall::RegisterWithMetadata { agent_uri: &a.agentURI, metadata })
        }
        (Registry::Identity, I::setAgentURICall::SELECTOR) => {
            let a = args!(I::setAgentURICall, "setAgentURI");
            finish(RegistryCall::SetAgentUri { agent_id: u256(a.agentId), new_uri: &a.newURI })
        }
        (Registry::Identity, I::setMetadataCall::SELECTOR) => {
            let a = args!(I::setMetadataCall, "setMetadata");
            finish(RegistryCall::SetMetadata {
                agent_id: u256(a.agentId),
                key: &a.metadataKey,
                value: &a.metadataValue,
            })
        }
        (Registry::Identity, I::setAgentWalletCall::SELECTOR) => {
            const F: &str = "setAgentWallet";
            let a = args!(I::setAgentWalletCall, "setAgentWallet");
            finish(RegistryCall::SetAgentWallet {
                agent_id: u256(a.agentId),
                new_wallet: Address(a.newWallet.0.0),
                deadline: u64::try_from(a.deadline)
                    .map_err(|_| CalldataError::OutOfRange { function: F, field: "deadline" })?,
                signature: &a.signature,
            })
        }
        (Registry::Identity, I::unsetAgentWalletCall::SELECTOR) => {
            let a = args!(I::unsetAgentWalletCall, "unsetAgentWallet");
            finish(RegistryCall::UnsetAgentWallet { agent_id: u256(a.agentId) })
        }
        (Registry::Reputation, R::giveFeedbackCall::SELECTOR) => {
            let a = args!(R::giveFeedbackCall, "giveFeedback");
            finish(RegistryCall::GiveFeedback {
                agent_id: u256(a.agentId),
                value: a.value,
                value_decimals: a.valueDecimals,
                tag1: &a.tag1,
                tag2: &a.tag2,
                endpoint: &a.endpoint,
                feedback_uri: &a.feedbackURI,
                feedback_hash: B256(a.feedbackHash.0),
            })
        }
        (Registry::Reputation, R::revokeFeedbackCall::SELECTOR) => {
            let a = args!(R::revokeFeedbackCall, "revokeFeedback");
            finish(RegistryCall::RevokeFeedback {
                agent_id: u256(a.agentId),
                feedback_index: a.feedbackIndex,
            })
        }
        (Registry::Reputation, R::appendResponseCall::SELECTOR) => {
            let a = args!(R::appendResponseCall, "appendResponse");
            finish(RegistryCall::AppendResponse {
                agent_id: u256(a.agentId),
                client_address: Address(a.clientAddress.0.0),
                feedback_index: a.feedbackIndex,
                response_uri: &a.responseURI,
                response_hash: B256(a.responseHash.0),
            })
        }
        (Registry::Validation, V::validationRequestCall::SELECTOR) => {
            let a = args!(V::validationRequestCall, "validationRequest");
            finish(RegistryCall::ValidationRequest {
                validator_address: Address(a.validatorAddress.0.0),
                agent_id: u256(a.agentId),
                request_uri: &a.requestURI,
                request_hash: B256(a.requestHash.0),
            })
        }
        (Registry::Validation, V::validationResponseCall::SELECTOR) => {
            let a = args!(V::validationResponseCall, "validationResponse");
            finish(RegistryCall::ValidationResponse {
                request_hash: B256(a.requestHash.0),
                response: a.response,
                response_uri: &a.responseURI,
                response_hash: B256(a.responseHash.0),
                tag: &a.tag,
            })
        }
        _ => Err(CalldataError::UnknownFunction {
            selector: format!("0x{}", hex::encode(selector)),
            registry,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use tee_core::ActionKind;

    use super::*;

    /// Every registry call of the samples: its calldata decodes back to it;
    /// the same bytes with a byte more, or to another registry, do not.
    #[test]
    fn every_registry_call_decodes_back_strictly() {
        for &kind in ActionKind::ALL {
            let action = tee_testkit::sample::action(kind);
            let Some(call) = action.registry_call() else { continue };
            let mut buf = vec![0u8; call.calldata_len()];
            let data = call.calldata(&mut buf).unwrap().to_vec();
            let registry = call.registry();
            assert_eq!(decode(registry, &data, |c| c == call), Ok(true), "{}", kind.name());
            let mut longer = data.clone();
            longer.extend_from_slice(&[0; 32]);
            assert!(decode(registry, &longer, |_| ()).is_err(), "{} with a word more", kind.name());
            let other = match registry {
                Registry::Identity => Registry::Reputation,
                _ => Registry::Identity,
            };
            assert!(matches!(
                decode(other, &data, |_| ()),
                Err(CalldataError::UnknownFunction { .. })
            ));
        }
        assert!(decode(Registry::Identity, &[0x1a, 0xa3], |_| ()).is_err());
    }
}
