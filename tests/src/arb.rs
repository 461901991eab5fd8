//! proptest strategies that generate every action kind, boundary sizes
//! included, and the largest action of each kind within given bounds.
//!
//! Actions borrow their fields; a generated action's strings and bytes are
//! leaked (`&'static`), at most a few hundred bytes a case: test processes
//! only. Generated fields reach [`ActionBounds::MCU`]'s bounds (the
//! boundary a microcontroller refuses at); the largest actions reach any
//! bounds' from one shared buffer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use proptest::prelude::*;
use tee_core::action::{
    ActionBounds, AgentWalletSet, AuthorizationKind, Eip712Prehashed, Envelope, GenericTx,
    LegacyTxParams, MetadataEntry, PersonalMessage, RegistryCall, RegistryTx, TaskReceipt,
    TokenAuthorization, TokenCall, TokenTx, Transaction, TxBody, TxParams,
};
use tee_core::heapless;
use tee_core::limits::*;
use tee_core::{Action, ActionKind, Address, B256, U256};

fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1..128u64, Just(u64::MAX), any::<u64>()]
}

fn arb_u128() -> impl Strategy<Value = u128> {
    prop_oneof![Just(0u128), 1..128u128, any::<u64>().prop_map(u128::from), any::<u128>()]
}

pub fn arb_u256() -> impl Strategy<Value = U256> {
    prop_oneof![
        arb_u64().prop_map(U256::from_u64),
        any::<[u8; 32]>().prop_map(U256),
        Just(U256([0xff; 32])),
    ]
}

pub fn arb_address() -> impl Strategy<Value = Address> {
    prop_oneof![any::<[u8; 20]>().prop_map(Address), Just(Address::ZERO)]
}

pub fn arb_b256() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256)
}

/// UTF-8 text of at most `N` bytes, often at exactly `N` (the boundary).
pub fn arb_text<const N: usize>() -> impl Strategy<Value = heapless::String<N>> {
    let random = proptest::collection::vec(any::<char>(), 0..=N).prop_map(|chars| {
        let mut out = heapless::String::<N>::new();
        for c in chars {
            if out.push(c).is_err() {
                break;
            }
        }
        out
    });
    let full = proptest::char::range('!', '~').prop_map(|c| {
        let mut out = heapless::String::<N>::new();
        while out.push(c).is_ok() {}
        out
    });
    prop_oneof![4 => random, 1 => full]
}

/// Text of at most `max` bytes, often at exactly `max`, leaked.
pub fn arb_str(max: u32) -> impl Strategy<Value = &'static str> {
    let max = max as usize;
    let random = proptest::collection::vec(any::<char>(), 0..=max).prop_map(move |chars| {
        let mut out = String::new();
        for c in chars {
            if out.len() + c.len_utf8() > max {
                break;
            }
            out.push(c);
        }
        out
    });
    let full = proptest::char::range('!', '~').prop_map(move |c| c.to_string().repeat(max));
    prop_oneof![4 => random, 1 => full].prop_map(|s| &*Box::leak(s.into_boxed_str()))
}

/// Bytes of at most `max`, often exactly `max` or a single byte (RLP's
/// special case), leaked.
pub fn arb_slice(max: u32) -> impl Strategy<Value = &'static [u8]> {
    let max = max as usize;
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..=max),
        1 => proptest::collection::vec(any::<u8>(), max..=max),
        1 => proptest::collection::vec(any::<u8>(), 1..=1),
    ]
    .prop_map(|v| &*Box::leak(v.into_boxed_slice()))
}

/// Bytes of at most `N`, often exactly `N` or a single byte (RLP's special case).
pub fn arb_bytes<const N: usize>() -> impl Strategy<Value = heapless::Vec<u8, N>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..=N),
        1 => proptest::collection::vec(any::<u8>(), N..=N),
        1 => proptest::collection::vec(any::<u8>(), 1..=1),
    ]
    .prop_map(|v| heapless::Vec::from_slice(&v).unwrap())
}

pub fn arb_legacy_tx_params() -> impl Strategy<Value = LegacyTxParams> {
    (arb_u64(), arb_u64(), arb_u128(), arb_u64()).prop_map(
        |(chain_id, nonce, gas_price, gas_limit)| LegacyTxParams {
            chain_id,
            nonce,
            gas_price,
            gas_limit,
        },
    )
}

pub fn arb_tx_params() -> impl Strategy<Value = TxParams> {
    (arb_u64(), arb_u64(), arb_u128(), arb_u128(), arb_u64()).prop_map(
        |(chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas, gas_limit)| TxParams {
            chain_id,
            nonce,
            max_priority_fee_per_gas,
            max_fee_per_gas,
            gas_limit,
        },
    )
}

/// Either fee envelope.
pub fn arb_envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![
        arb_tx_params().prop_map(Envelope::Eip1559),
        arb_legacy_tx_params().prop_map(Envelope::Legacy),
    ]
}

/// `body` under either envelope.
fn arb_transaction(
    body: impl Strategy<Value = TxBody<'static>> + 'static,
) -> BoxedStrategy<Action<'static>> {
    (arb_envelope(), body)
        .prop_map(|(envelope, body)| Action::Transaction(Transaction { envelope, body }))
        .boxed()
}

const B: ActionBounds = ActionBounds::MCU;

fn arb_metadata() -> impl Strategy<Value = tee_core::action::Metadata<'static>> {
    proptest::collection::vec(
        (arb_str(B.metadata_key), arb_slice(B.metadata_value))
            .prop_map(|(key, value)| MetadataEntry { key, value }),
        0..=MAX_METADATA_ENTRIES,
    )
    .prop_map(|v| heapless::Vec::from_slice(&v).unwrap())
}

fn arb_call(kind: ActionKind) -> BoxedStrategy<RegistryCall<'static>> {
    use ActionKind as K;
    use RegistryCall as C;
    match kind {
        K::Register => Just(C::Register).boxed(),
        K::RegisterWithUri => {
            arb_str(B.uri).prop_map(|agent_uri| C::RegisterWithUri { agent_uri }).boxed()
        }
        K::RegisterWithMetadata => (arb_str(B.uri), arb_metadata())
            .prop_map(|(agent_uri, metadata)| C::RegisterWithMetadata { agent_uri, metadata })
            .boxed(),
        K::SetAgentUri => (arb_u256(), arb_str(B.uri))
            .prop_map(|(agent_id, new_uri)| C::SetAgentUri { agent_id, new_uri })
            .boxed(),
        K::SetMetadata => (arb_u256(), arb_str(B.metadata_key), arb_slice(B.metadata_value))
            .prop_map(|(agent_id, key, value)| C::SetMetadata { agent_id, key, value })
            .boxed(),
        K::SetAgentWallet => (arb_u256(), arb_address(), arb_u64(), arb_slice(B.wallet_signature))
            .prop_map(|(agent_id, new_wallet, deadline, signature)| C::SetAgentWallet {
                agent_id,
                new_wallet,
                deadline,
                signature,
            })
            .boxed(),
        K::UnsetAgentWallet => {
            arb_u256().prop_map(|agent_id| C::UnsetAgentWallet { agent_id }).boxed()
        }
        K::GiveFeedback => (
            arb_u256(),
            prop_oneof![any::<i128>(), -100i128..100, Just(i128::MIN), Just(i128::MAX)],
            any::<u8>(),
            (arb_str(B.tag), arb_str(B.tag), arb_str(B.uri), arb_str(B.uri)),
            arb_b256(),
        )
            .prop_map(
                |(
                    agent_id,
                    value,
                    value_decimals,
                    (tag1, tag2, endpoint, feedback_uri),
                    feedback_hash,
                )| {
                    C::GiveFeedback {
                        agent_id,
                        value,
                        value_decimals,
                        tag1,
                        tag2,
                        endpoint,
                        feedback_uri,
                        feedback_hash,
                    }
                },
            )
            .boxed(),
        K::RevokeFeedback => (arb_u256(), arb_u64())
            .prop_map(|(agent_id, feedback_index)| C::RevokeFeedback { agent_id, feedback_index })
            .boxed(),
        K::AppendResponse => (arb_u256(), arb_address(), arb_u64(), arb_str(B.uri), arb_b256())
            .prop_map(|(agent_id, client_address, feedback_index, response_uri, response_hash)| {
                C::AppendResponse {
                    agent_id,
                    client_address,
                    feedback_index,
                    response_uri,
                    response_hash,
                }
            })
            .boxed(),
        K::ValidationRequest => (arb_address(), arb_u256(), arb_str(B.uri), arb_b256())
            .prop_map(|(validator_address, agent_id, request_uri, request_hash)| {
                C::ValidationRequest { validator_address, agent_id, request_uri, request_hash }
            })
            .boxed(),
        K::ValidationResponse => {
            (arb_b256(), any::<u8>(), arb_str(B.uri), arb_b256(), arb_str(B.tag))
                .prop_map(|(request_hash, response, response_uri, response_hash, tag)| {
                    C::ValidationResponse {
                        request_hash,
                        response,
                        response_uri,
                        response_hash,
                        tag,
                    }
                })
                .boxed()
        }
        K::AgentWalletSet
        | K::GenericTx
        | K::PersonalMessage
        | K::Eip712Prehashed
        | K::TaskReceipt
        | K::TokenTransfer
        | K::TokenApprove
        | K::TokenTransferFrom
        | K::TransferWithAuthorization
        | K::ReceiveWithAuthorization => {
            panic!("{kind} is not a registry call")
        }
    }
}

/// Actions of one kind.
pub fn arb_action_of(kind: ActionKind) -> BoxedStrategy<Action<'static>> {
    use ActionKind as K;
    match kind {
        K::AgentWalletSet => {
            (arb_u64(), arb_address(), arb_u256(), arb_address(), arb_address(), arb_u64())
                .prop_map(|(chain_id, identity_registry, agent_id, new_wallet, owner, deadline)| {
                    Action::AgentWalletSet(AgentWalletSet {
                        chain_id,
                        identity_registry,
                        agent_id,
                        new_wallet,
                        owner,
                        deadline,
                    })
                })
                .boxed()
        }
        K::TaskReceipt => (arb_u64(), arb_address(), arb_u256(), arb_b256(), arb_b256(), arb_u64())
            .prop_map(
                |(chain_id, identity_registry, agent_id, task_hash, result_hash, completed_at)| {
                    Action::TaskReceipt(TaskReceipt {
                        chain_id,
                        identity_registry,
                        agent_id,
                        task_hash,
                        result_hash,
                        completed_at,
                    })
                },
            )
            .boxed(),
        K::GenericTx => arb_transaction(
            (arb_address(), arb_u256(), arb_slice(B.calldata))
                .prop_map(|(to, value, data)| TxBody::Generic(GenericTx { to, value, data })),
        ),
        K::PersonalMessage => arb_slice(B.message)
            .prop_map(|message| Action::PersonalMessage(PersonalMessage { message }))
            .boxed(),
        K::TokenTransfer | K::TokenApprove | K::TokenTransferFrom => {
            let amount = prop_oneof![arb_u256(), Just(U256([0xff; 32]))];
            arb_transaction((arb_address(), arb_address(), arb_address(), amount).prop_map(
                move |(token, a, b, amount)| {
                    let call = match kind {
                        K::TokenTransfer => TokenCall::Transfer { to: a, amount },
                        K::TokenApprove => TokenCall::Approve { spender: a, amount },
                        _ => TokenCall::TransferFrom { from: a, to: b, amount },
                    };
                    TxBody::Token(TokenTx { token, call })
                },
            ))
        }
        K::TransferWithAuthorization | K::ReceiveWithAuthorization => (
            (arb_u64(), arb_address(), arb_str(B.tag), arb_str(B.tag)),
            (arb_address(), arb_address(), arb_u256()),
            (arb_u64(), arb_u64(), arb_b256()),
        )
            .prop_map(
                move |(
                    (chain_id, token, name, version),
                    (from, to, value),
                    (valid_after, valid_before, nonce),
                )| {
                    Action::TokenAuthorization(TokenAuthorization {
                        kind: AuthorizationKind::of(kind).unwrap(),
                        chain_id,
                        token,
                        name,
                        version,
                        from,
                        to,
                        value,
                        valid_after,
                        valid_before,
                        nonce,
                    })
                },
            )
            .boxed(),
        K::Eip712Prehashed => (arb_b256(), arb_b256())
            .prop_map(|(domain_separator, struct_hash)| {
                Action::Eip712Prehashed(Eip712Prehashed { domain_separator, struct_hash })
            })
            .boxed(),
        call => arb_transaction(
            (arb_address(), arb_call(call))
                .prop_map(|(registry, call)| TxBody::Registry(RegistryTx { registry, call })),
        ),
    }
}

/// Actions of any kind.
pub fn arb_action() -> BoxedStrategy<Action<'static>> {
    proptest::sample::select(ActionKind::ALL.to_vec()).prop_flat_map(arb_action_of).boxed()
}

/// A valid secp256k1 secret key.
pub fn arb_secret() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>().prop_filter("valid scalar", |k| tee_core::SigningKey::from_bytes(k).is_ok())
}

// ---------------------------------------------------------------------------
// The largest action of each kind, for checking the bounds in tee_core::limits.

/// `n` bytes of 'x', from one buffer as long as the largest bound.
fn full_text(n: u32) -> &'static str {
    static X: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let all = X.get_or_init(|| "x".repeat(ActionBounds::HOST.calldata as usize));
    &all[..n as usize]
}

/// `n` bytes of 0xab, from one buffer as long as the largest bound.
fn full_bytes(n: u32) -> &'static [u8] {
    static X: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let all = X.get_or_init(|| vec![0xab; ActionBounds::HOST.calldata as usize]);
    &all[..n as usize]
}

/// The action of `kind` whose every field is at its largest encoding
/// within [`ActionBounds::HOST`] (the std signer's).
pub fn max_action(kind: ActionKind) -> Action<'static> {
    max_action_within(kind, &ActionBounds::HOST)
}

/// The action of `kind` whose every field is at its largest encoding
/// within `b` (a microcontroller's, as its `DeviceInfo` reports them, or
/// the host's).
pub fn max_action_within(kind: ActionKind, b: &ActionBounds) -> Action<'static> {
    use ActionKind as K;
    use RegistryCall as C;
    let envelope = Envelope::Eip1559(TxParams {
        chain_id: u64::MAX,
        nonce: u64::MAX,
        max_priority_fee_per_gas: u128::MAX,
        max_fee_per_gas: u128::MAX,
        gas_limit: u64::MAX,
    });
    let tx = |body| Action::Transaction(Transaction { envelope, body });
    let id = U256([0xff; 32]);
    let a = Address([0xff; 20]);
    let h = B256([0xff; 32]);
    let uri = full_text(b.uri);
    let tag = full_text(b.tag);
    let call = match kind {
        K::AgentWalletSet => {
            return Action::AgentWalletSet(AgentWalletSet {
                chain_id: u64::MAX,
                identity_registry: a,
                agent_id: id,
                new_wallet: a,
                owner: a,
                deadline: u64::MAX,
            });
        }
        K::GenericTx => {
            let data = full_bytes(b.calldata);
            return tx(TxBody::Generic(GenericTx { to: a, value: id, data }));
        }
        K::PersonalMessage => {
            return Action::PersonalMessage(PersonalMessage { message: full_bytes(b.message) });
        }
        K::TokenTransfer => {
            let call = TokenCall::Transfer { to: a, amount: id };
            return tx(TxBody::Token(TokenTx { token: a, call }));
        }
        K::TokenApprove => {
            let call = TokenCall::Approve { spender: a, amount: id };
            return tx(TxBody::Token(TokenTx { token: a, call }));
        }
        K::TokenTransferFrom => {
            let call = TokenCall::TransferFrom { from: a, to: a, amount: id };
            return tx(TxBody::Token(TokenTx { token: a, call }));
        }
        K::TransferWithAuthorization | K::ReceiveWithAuthorization => {
            return Action::TokenAuthorization(TokenAuthorization {
                kind: AuthorizationKind::of(kind).unwrap(),
                chain_id: u64::MAX,
                token: a,
                name: tag,
                version: tag,
                from: a,
                to: a,
                value: id,
                valid_after: u64::MAX,
                valid_before: u64::MAX,
                nonce: h,
            });
        }
        K::Eip712Prehashed => {
            return Action::Eip712Prehashed(Eip712Prehashed {
                domain_separator: h,
                struct_hash: h,
            });
        }
        K::TaskReceipt => {
            return Action::TaskReceipt(TaskReceipt {
                chain_id: u64::MAX,
                identity_registry: a,
                agent_id: id,
                task_hash: h,
                result_hash: h,
                completed_at: u64::MAX,
            });
        }
        K::Register => C::Register,
        K::RegisterWithUri => C::RegisterWithUri { agent_uri: uri },
        K::RegisterWithMetadata => {
            let e = MetadataEntry {
                key: full_text(b.metadata_key),
                value: full_bytes(b.metadata_value),
            };
            let mut metadata = heapless::Vec::new();
            for _ in 0..b.metadata_entries {
                let _ = metadata.push(e);
            }
            C::RegisterWithMetadata { agent_uri: uri, metadata }
        }
        K::SetAgentUri => C::SetAgentUri { agent_id: id, new_uri: uri },
        K::SetMetadata => C::SetMetadata {
            agent_id: id,
            key: full_text(b.metadata_key),
            value: full_bytes(b.metadata_value),
        },
        K::SetAgentWallet => C::SetAgentWallet {
            agent_id: id,
            new_wallet: a,
            deadline: u64::MAX,
            signature: full_bytes(b.wallet_signature),
        },
        K::UnsetAgentWallet => C::UnsetAgentWallet { agent_id: id },
        K::GiveFeedback => C::GiveFeedback {
            agent_id: id,
            value: i128::MIN,
            value_decimals: u8::MAX,
            tag1: tag,
            tag2: tag,
            endpoint: uri,
            feedback_uri: uri,
            feedback_hash: h,
        },
        K::RevokeFeedback => C::RevokeFeedback { agent_id: id, feedback_index: u64::MAX },
        K::AppendResponse => C::AppendResponse {
            agent_id: id,
            client_address: a,
            feedback_index: u64::MAX,
            response_uri: uri,
            response_hash: h,
        },
        K::ValidationRequest => C::ValidationRequest {
            validator_address: a,
            agent_id: id,
            request_uri: uri,
            request_hash: h,
        },
        K::ValidationResponse => C::ValidationResponse {
            request_hash: h,
            response: u8::MAX,
            response_uri: uri,
            response_hash: h,
            tag,
        },
    };
    tx(TxBody::Registry(RegistryTx { registry: a, call }))
}
