//! An independent reference for each action's calldata and digest, built
//! on alloy: what the differential tests hold tee-core's encoders to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use alloy_primitives as ap;
use alloy_sol_types::{SolCall, SolStruct, eip712_domain};
use tee_core::action::{AuthorizationKind, Envelope, RegistryCall, TokenCall, TxBody};
use tee_core::{Action, Address, B256, U256};

/// The ERC-8004 v2.0.0 registry functions, as their Solidity sources
/// declare them: alloy's ABI types, the ones the JSON actions decode with
/// (`tee_client::actions::calldata`), independent of tee-core's encoder.
pub use tee_client::actions::calldata::{
    IIdentityRegistry, IReputationRegistry, IValidationRegistry,
};

/// The identity registry's typed struct; its name is part of the EIP-712
/// type hash, so it lives in its own module to keep it.
pub mod typed {
    alloy_sol_types::sol! {
        struct AgentWalletSet { uint256 agentId; address newWallet; address owner; uint256 deadline; }
        /// An agent's receipt for a task (domain `ERC8004TaskReceipt`).
        struct TaskReceipt { uint256 agentId; bytes32 taskHash; bytes32 resultHash; uint256 completedAt; }
        /// EIP-3009's payment authorizations (a token's own domain).
        struct TransferWithAuthorization { address from; address to; uint256 value; uint256 validAfter; uint256 validBefore; bytes32 nonce; }
        /// EIP-3009's receive authorization.
        struct ReceiveWithAuthorization { address from; address to; uint256 value; uint256 validAfter; uint256 validBefore; bytes32 nonce; }
        /// The device's admin authorization message.
        struct AdminCommand { uint8 command; uint64 counter; bytes32 payload; }
        /// The device's signed admin state.
        struct AdminState { bytes32 nonce; uint64 lastCounter; bytes32 lastPayload; uint8 slot; address key; bytes32 policyHash; uint64 sequence; bytes32 commitment; }
        /// An approver's approval of one action (domain `ERC8004TeeSignerApproval`).
        struct Approval { address signer; uint64 sequence; bytes32 action; uint64 expires; }
    }
}

// ---------------------------------------------------------------------------
// tee-core -> alloy conversions

pub fn addr(a: &Address) -> ap::Address {
    ap::Address::from(a.0)
}
pub fn u256(v: &U256) -> ap::U256 {
    ap::U256::from_be_bytes(v.0)
}
pub fn b256(v: &B256) -> ap::B256 {
    ap::B256::from(v.0)
}
fn s(t: &str) -> String {
    t.to_owned()
}
fn b(v: &[u8]) -> ap::Bytes {
    ap::Bytes::copy_from_slice(v)
}

/// alloy's ABI encoding of a registry call.
pub fn alloy_calldata(call: &RegistryCall<'_>) -> Vec<u8> {
    use IIdentityRegistry as I;
    use IReputationRegistry as R;
    use IValidationRegistry as V;
    use RegistryCall as C;
    match call {
        C::Register => I::register_0Call {}.abi_encode(),
        C::RegisterWithUri { agent_uri } => {
            I::register_1Call { agentURI: s(agent_uri) }.abi_encode()
        }
        C::RegisterWithMetadata { agent_uri, metadata } => I::register_2Call {
            agentURI: s(agent_uri),
            metadata: metadata
                .iter()
                .map(|e| I::MetadataEntry { metadataKey: s(e.key), metadataValue: b(e.value) })
                .collect(),
        }
        .abi_encode(),
        C::SetAgentUri { agent_id, new_uri } => {
            I::setAgentURICall { agentId: u256(agent_id), newURI: s(new_uri) }.abi_encode()
        }
        C::SetMetadata { agent_id, key, value } => I::setMetadataCall {
            agentId: u256(agent_id),
            metadataKey: s(key),
            metadataValue: b(value),
        }
        .abi_encode(),
        C::SetAgentWallet { agent_id, new_wallet, deadline, signature } => I::setAgentWalletCall {
            agentId: u256(agent_id),
            newWallet: addr(new_wallet),
            deadline: ap::U256::from(*deadline),
            signature: b(signature),
        }
        .abi_encode(),
        C::UnsetAgentWallet { agent_id } => {
            I::unsetAgentWalletCall { agentId: u256(agent_id) }.abi_encode()
        }
        C::GiveFeedback {
            agent_id,
            value,
            value_decimals,
            tag1,
            tag2,
            endpoint,
            feedback_uri,
            feedback_hash,
        } => R::giveFeedbackCall {
            agentId: u256(agent_id),
            value: *value,
            valueDecimals: *value_decimals,
            tag1: s(tag1),
            tag2: s(tag2),
            endpoint: s(endpoint),
            feedbackURI: s(feedback_uri),
            feedbackHash: b256(feedback_hash),
        }
        .abi_encode(),
        C::RevokeFeedback { agent_id, feedback_index } => {
            R::revokeFeedbackCall { agentId: u256(agent_id), feedbackIndex: *feedback_index }
                .abi_encode()
        }
        C::AppendResponse {
            agent_id,
            client_address,
            feedback_index,
            response_uri,
            response_hash,
        } => R::appendResponseCall {
            agentId: u256(agent_id),
            clientAddress: addr(client_address),
            feedbackIndex: *feedback_index,
            responseURI: s(response_uri),
            responseHash: b256(response_hash),
        }
        .abi_encode(),
        C::ValidationRequest { validator_address, agent_id, request_uri, request_hash } => {
            V::validationRequestCall {
                validatorAddress: addr(validator_address),
                agentId: u256(agent_id),
                requestURI: s(request_uri),
                requestHash: b256(request_hash),
            }
            .abi_encode()
        }
        C::ValidationResponse { request_hash, response, response_uri, response_hash, tag } => {
            V::validationResponseCall {
                requestHash: b256(request_hash),
                response: *response,
                responseURI: s(response_uri),
                responseHash: b256(response_hash),
                tag: s(tag),
            }
            .abi_encode()
        }
    }
}

/// alloy's ABI encoding of an ERC-20 call.
pub fn alloy_token_calldata(call: &TokenCall) -> Vec<u8> {
    use tee_client::actions::calldata::IERC20 as E;
    match *call {
        TokenCall::Transfer { to, amount } => {
            E::transferCall { to: addr(&to), amount: u256(&amount) }.abi_encode()
        }
        TokenCall::Approve { spender, amount } => {
            E::approveCall { spender: addr(&spender), amount: u256(&amount) }.abi_encode()
        }
        TokenCall::TransferFrom { from, to, amount } => {
            E::transferFromCall { from: addr(&from), to: addr(&to), amount: u256(&amount) }
                .abi_encode()
        }
    }
}

/// alloy's transaction (EIP-1559 or legacy) for a transaction action.
pub fn alloy_tx(action: &Action<'_>) -> Option<alloy_consensus::TypedTransaction> {
    use alloy_consensus::{TxEip1559, TxLegacy, TypedTransaction};
    let t = action.transaction()?;
    let (to, value, input) = match &t.body {
        TxBody::Registry(r) => (&r.registry, ap::U256::ZERO, alloy_calldata(&r.call)),
        TxBody::Generic(g) => (&g.to, u256(&g.value), g.data.to_vec()),
        TxBody::Token(k) => (&k.token, ap::U256::ZERO, alloy_token_calldata(&k.call)),
    };
    let to = ap::TxKind::Call(addr(to));
    Some(match t.envelope {
        Envelope::Eip1559(p) => TypedTransaction::Eip1559(TxEip1559 {
            chain_id: p.chain_id,
            nonce: p.nonce,
            gas_limit: p.gas_limit,
            max_fee_per_gas: p.max_fee_per_gas,
            max_priority_fee_per_gas: p.max_priority_fee_per_gas,
            to,
            value,
            access_list: Default::default(),
            input: input.into(),
        }),
        Envelope::Legacy(p) => TypedTransaction::Legacy(TxLegacy {
            chain_id: Some(p.chain_id),
            nonce: p.nonce,
            gas_price: p.gas_price,
            gas_limit: p.gas_limit,
            to,
            value,
            input: input.into(),
        }),
    })
}

/// The digest alloy computes for `action`.
pub fn alloy_digest(action: &Action<'_>) -> ap::B256 {
    use alloy_consensus::SignableTransaction;
    match action {
        Action::AgentWalletSet(w) => {
            let domain = eip712_domain! {
                name: "ERC8004IdentityRegistry",
                version: "1",
                chain_id: w.chain_id,
                verifying_contract: addr(&w.identity_registry),
            };
            typed::AgentWalletSet {
                agentId: u256(&w.agent_id),
                newWallet: addr(&w.new_wallet),
                owner: addr(&w.owner),
                deadline: ap::U256::from(w.deadline),
            }
            .eip712_signing_hash(&domain)
        }
        Action::TaskReceipt(r) => {
            let domain = eip712_domain! {
                name: "ERC8004TaskReceipt",
                version: "1",
                chain_id: r.chain_id,
                verifying_contract: addr(&r.identity_registry),
            };
            typed::TaskReceipt {
                agentId: u256(&r.agent_id),
                taskHash: ap::B256::from(r.task_hash.0),
                resultHash: ap::B256::from(r.result_hash.0),
                completedAt: ap::U256::from(r.completed_at),
            }
            .eip712_signing_hash(&domain)
        }
        Action::TokenAuthorization(a) => {
            let domain = eip712_domain! {
                name: a.name.to_owned(),
                version: a.version.to_owned(),
                chain_id: a.chain_id,
                verifying_contract: addr(&a.token),
            };
            let (from, to, value) = (addr(&a.from), addr(&a.to), u256(&a.value));
            let (valid_after, valid_before) =
                (ap::U256::from(a.valid_after), ap::U256::from(a.valid_before));
            let nonce = ap::B256::from(a.nonce.0);
            // The two types differ only in their name (part of the type hash).
            macro_rules! signing_hash {
                ($t:ident) => {
                    typed::$t {
                        from,
                        to,
                        value,
                        validAfter: valid_after,
                        validBefore: valid_before,
                        nonce,
                    }
                    .eip712_signing_hash(&domain)
                };
            }
            match a.kind {
                AuthorizationKind::Transfer => signing_hash!(TransferWithAuthorization),
                AuthorizationKind::Receive => signing_hash!(ReceiveWithAuthorization),
            }
        }
        Action::Transaction(_) => alloy_tx(action).unwrap().signature_hash(),
        Action::PersonalMessage(m) => ap::eip191_hash_message(m.message),
        Action::Eip712Prehashed(p) => {
            ap::keccak256([&[0x19, 0x01][..], &p.domain_separator.0, &p.struct_hash.0].concat())
        }
    }
}
