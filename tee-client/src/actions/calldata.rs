//! Registry calldata back into the typed call, strictly: decoded with
//! alloy's ABI types for the ERC-8004 v2.0.0 functions, bounded as the core
//! bounds them, then encoded again by the core, which must give the same
//! bytes. So what the device signs (calldata it builds from the typed
//! fields) is exactly what the user's transaction carries, and anything the
//! core would encode differently (a non-canonical offset, padding, trailing
//! bytes, an over-long field) is refused rather than reinterpreted.

use alloy_sol_types::{SolCall, sol};
use tee_core::action::{MetadataEntry, Registry, RegistryCall, bytes, text};
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
    /// A field is longer than the signer takes.
    #[error("{function}: {field} is longer than the signer takes")]
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

/// Decodes `data` sent to a `registry` into its typed call.
pub fn decode(registry: Registry, data: &[u8]) -> Result<RegistryCall, CalldataError> {
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
    let long = |function, field| CalldataError::TooLong { function, field };
    let call = match (registry, selector) {
        (Registry::Identity, I::register_0Call::SELECTOR) => {
            args!(I::register_0Call, "register()");
            RegistryCall::Register
        }
        (Registry::Identity, I::register_1Call::SELECTOR) => {
            const F: &str = "register(string)";
            let a = args!(I::register_1Call, "register(string)");
            RegistryCall::RegisterWithUri {
                agent_uri: text(&a.agentURI).map_err(|_| long(F, "agentURI"))?,
            }
        }
        (Registry::Identity, I::register_2Call::SELECTOR) => {
            const F: &str = "register(string,(string,bytes)[])";
            let a = args!(I::register_2Call, "register(string,(string,bytes)[])");
            let mut metadata = tee_core::heapless::Vec::new();
            for e in a.metadata {
                let entry = MetadataEntry {
                    key: text(&e.metadataKey).map_err(|_| long(F, "metadataKey"))?,
                    value: bytes(&e.metadataValue).map_err(|_| long(F, "metadataValue"))?,
                };
                metadata.push(entry).map_err(|_| long(F, "metadata"))?;
            }
            RegistryCall::RegisterWithMetadata {
                agent_uri: text(&a.agentURI).map_err(|_| long(F, "agentURI"))?,
                metadata,
            }
        }
        (Registry::Identity, I::setAgentURICall::SELECTOR) => {
            let a = args!(I::setAgentURICall, "setAgentURI");
            RegistryCall::SetAgentUri {
                agent_id: u256(a.agentId),
                new_uri: text(&a.newURI).map_err(|_| long("setAgentURI", "newURI"))?,
            }
        }
        (Registry::Identity, I::setMetadataCall::SELECTOR) => {
            const F: &str = "setMetadata";
            let a = args!(I::setMetadataCall, "setMetadata");
            RegistryCall::SetMetadata {
                agent_id: u256(a.agentId),
                key: text(&a.metadataKey).map_err(|_| long(F, "metadataKey"))?,
                value: bytes(&a.metadataValue).map_err(|_| long(F, "metadataValue"))?,
            }
        }
        (Registry::Identity, I::setAgentWalletCall::SELECTOR) => {
            const F: &str = "setAgentWallet";
            let a = args!(I::setAgentWalletCall, "setAgentWallet");
            RegistryCall::SetAgentWallet {
                agent_id: u256(a.agentId),
                new_wallet: Address(a.newWallet.0.0),
                deadline: u64::try_from(a.deadline)
                    .map_err(|_| CalldataError::OutOfRange { function: F, field: "deadline" })?,
                signature: bytes(&a.signature).map_err(|_| long(F, "signature"))?,
            }
        }
        (Registry::Identity, I::unsetAgentWalletCall::SELECTOR) => {
            let a = args!(I::unsetAgentWalletCall, "unsetAgentWallet");
            RegistryCall::UnsetAgentWallet { agent_id: u256(a.agentId) }
        }
        (Registry::Reputation, R::giveFeedbackCall::SELECTOR) => {
            const F: &str = "giveFeedback";
            let a = args!(R::giveFeedbackCall, "giveFeedback");
            RegistryCall::GiveFeedback {
                agent_id: u256(a.agentId),
                value: a.value,
                value_decimals: a.valueDecimals,
                tag1: text(&a.tag1).map_err(|_| long(F, "tag1"))?,
                tag2: text(&a.tag2).map_err(|_| long(F, "tag2"))?,
                endpoint: text(&a.endpoint).map_err(|_| long(F, "endpoint"))?,
                feedback_uri: text(&a.feedbackURI).map_err(|_| long(F, "feedbackURI"))?,
                feedback_hash: B256(a.feedbackHash.0),
            }
        }
        (Registry::Reputation, R::revokeFeedbackCall::SELECTOR) => {
            let a = args!(R::revokeFeedbackCall, "revokeFeedback");
            RegistryCall::RevokeFeedback {
                agent_id: u256(a.agentId),
                feedback_index: a.feedbackIndex,
            }
        }
        (Registry::Reputation, R::appendResponseCall::SELECTOR) => {
            const F: &str = "appendResponse";
            let a = args!(R::appendResponseCall, "appendResponse");
            RegistryCall::AppendResponse {
                agent_id: u256(a.agentId),
                client_address: Address(a.clientAddress.0.0),
                feedback_index: a.feedbackIndex,
                response_uri: text(&a.responseURI).map_err(|_| long(F, "responseURI"))?,
                response_hash: B256(a.responseHash.0),
            }
        }
        (Registry::Validation, V::validationRequestCall::SELECTOR) => {
            const F: &str = "validationRequest";
            let a = args!(V::validationRequestCall, "validationRequest");
            RegistryCall::ValidationRequest {
                validator_address: Address(a.validatorAddress.0.0),
                agent_id: u256(a.agentId),
                request_uri: text(&a.requestURI).map_err(|_| long(F, "requestURI"))?,
                request_hash: B256(a.requestHash.0),
            }
        }
        (Registry::Validation, V::validationResponseCall::SELECTOR) => {
            const F: &str = "validationResponse";
            let a = args!(V::validationResponseCall, "validationResponse");
            RegistryCall::ValidationResponse {
                request_hash: B256(a.requestHash.0),
                response: a.response,
                response_uri: text(&a.responseURI).map_err(|_| long(F, "responseURI"))?,
                response_hash: B256(a.responseHash.0),
                tag: text(&a.tag).map_err(|_| long(F, "tag"))?,
            }
        }
        _ => {
            return Err(CalldataError::UnknownFunction {
                selector: format!("0x{}", hex::encode(selector)),
                registry,
            });
        }
    };
    // Strict: the core's encoding of the decoded call is the input.
    let mut buf = vec![0u8; call.calldata_len()];
    let canonical = call.calldata(&mut buf).map(|b| b == data).unwrap_or(false);
    if !canonical {
        return Err(CalldataError::NotCanonical { function: call.kind().name() });
    }
    Ok(call)
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
            let tee_core::Action::RegistryTx(t) = tee_testkit::sample::action(kind) else {
                continue;
            };
            let mut buf = vec![0u8; t.call.calldata_len()];
            let data = t.call.calldata(&mut buf).unwrap().to_vec();
            let registry = t.call.registry();
            assert_eq!(decode(registry, &data), Ok(t.call.clone()), "{}", kind.name());
            let mut longer = data.clone();
            longer.extend_from_slice(&[0; 32]);
            assert!(decode(registry, &longer).is_err(), "{} with a word more", kind.name());
            let other = match registry {
                Registry::Identity => Registry::Reputation,
                _ => Registry::Identity,
            };
            assert!(matches!(decode(other, &data), Err(CalldataError::UnknownFunction { .. })));
        }
        assert!(decode(Registry::Identity, &[0x1a, 0xa3]).is_err());
    }
}
