//! proptest strategies that generate every action kind, boundary sizes
//! included, and the largest action of each kind within given bounds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use proptest::prelude::*;
use tee_core::action::{
    AgentWalletSet, Eip712Prehashed, GenericTx, LegacyGenericTx, LegacyRegistryTx, LegacyTxParams,
    MetadataEntry, PersonalMessage, RegistryCall, RegistryTx, TxParams,
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

fn arb_metadata() -> impl Strategy<Value = heapless::Vec<MetadataEntry, MAX_METADATA_ENTRIES>> {
    proptest::collection::vec(
        (arb_text::<MAX_METADATA_KEY_LEN>(), arb_bytes::<MAX_METADATA_VALUE_LEN>())
            .prop_map(|(key, value)| MetadataEntry { key, value }),
        0..=MAX_METADATA_ENTRIES,
    )
    .prop_map(|v| heapless::Vec::from_slice(&v).unwrap())
}

fn arb_call(kind: ActionKind) -> BoxedStrategy<RegistryCall> {
    use ActionKind as K;
    use RegistryCall as C;
    match kind {
        K::Register => Just(C::Register).boxed(),
        K::RegisterWithUri => {
            arb_text().prop_map(|agent_uri| C::RegisterWithUri { agent_uri }).boxed()
        }
        K::RegisterWithMetadata => (arb_text(), arb_metadata())
            .prop_map(|(agent_uri, metadata)| C::RegisterWithMetadata { agent_uri, metadata })
            .boxed(),
        K::SetAgentUri => (arb_u256(), arb_text())
            .prop_map(|(agent_id, new_uri)| C::SetAgentUri { agent_id, new_uri })
            .boxed(),
        K::SetMetadata => (arb_u256(), arb_text(), arb_bytes())
            .prop_map(|(agent_id, key, value)| C::SetMetadata { agent_id, key, value })
            .boxed(),
        K::SetAgentWallet => (arb_u256(), arb_address(), arb_u64(), arb_bytes())
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
            (arb_text(), arb_text(), arb_text(), arb_text()),
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
        K::AppendResponse => (arb_u256(), arb_address(), arb_u64(), arb_text(), arb_b256())
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
        K::ValidationRequest => (arb_address(), arb_u256(), arb_text(), arb_b256())
            .prop_map(|(validator_address, agent_id, request_uri, request_hash)| {
                C::ValidationRequest { validator_address, agent_id, request_uri, request_hash }
            })
            .boxed(),
        K::ValidationResponse => (arb_b256(), any::<u8>(), arb_text(), arb_b256(), arb_text())
            .prop_map(|(request_hash, response, response_uri, response_hash, tag)| {
                C::ValidationResponse { request_hash, response, response_uri, response_hash, tag }
            })
            .boxed(),
        K::AgentWalletSet | K::GenericTx | K::PersonalMessage | K::Eip712Prehashed => {
            panic!("{kind} is not a registry call")
        }
    }
}

/// Actions of one kind.
pub fn arb_action_of(kind: ActionKind) -> BoxedStrategy<Action> {
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
        K::GenericTx => prop_oneof![
            (arb_tx_params(), arb_address(), arb_u256(), arb_bytes()).prop_map(
                |(tx, to, value, data)| Action::GenericTx(GenericTx { tx, to, value, data })
            ),
            (arb_legacy_tx_params(), arb_address(), arb_u256(), arb_bytes()).prop_map(
                |(tx, to, value, data)| Action::LegacyGenericTx(LegacyGenericTx {
                    tx,
                    to,
                    value,
                    data
                })
            ),
        ]
        .boxed(),
        K::PersonalMessage => arb_bytes()
            .prop_map(|message| Action::PersonalMessage(PersonalMessage { message }))
            .boxed(),
        K::Eip712Prehashed => (arb_b256(), arb_b256())
            .prop_map(|(domain_separator, struct_hash)| {
                Action::Eip712Prehashed(Eip712Prehashed { domain_separator, struct_hash })
            })
            .boxed(),
        call => prop_oneof![
            (arb_tx_params(), arb_address(), arb_call(call)).prop_map(|(tx, registry, call)| {
                Action::RegistryTx(RegistryTx { tx, registry, call })
            }),
            (arb_legacy_tx_params(), arb_address(), arb_call(call)).prop_map(
                |(tx, registry, call)| {
                    Action::LegacyRegistryTx(LegacyRegistryTx { tx, registry, call })
                }
            ),
        ]
        .boxed(),
    }
}

/// Actions of any kind.
pub fn arb_action() -> BoxedStrategy<Action> {
    proptest::sample::select(ActionKind::ALL.to_vec()).prop_flat_map(arb_action_of).boxed()
}

/// A valid secp256k1 secret key.
pub fn arb_secret() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>().prop_filter("valid scalar", |k| tee_core::SigningKey::from_bytes(k).is_ok())
}

// ---------------------------------------------------------------------------
// The largest action of each kind, for checking the bounds in tee_core::limits.

fn full_text<const N: usize>() -> heapless::String<N> {
    let mut s = heapless::String::new();
    while s.push('x').is_ok() {}
    s
}

fn full_bytes<const N: usize>() -> heapless::Vec<u8, N> {
    let mut v = heapless::Vec::new();
    while v.push(0xab).is_ok() {}
    v
}

/// [`max_action`] with every field cut to `b`: the largest action a device
/// built with smaller bounds than this build (a microcontroller's, as its
/// `DeviceInfo` reports them) takes.
pub fn max_action_within(kind: ActionKind, b: &tee_core::action::ActionBounds) -> Action {
    fn cut_text<const N: usize>(s: &mut heapless::String<N>, max: u32) {
        s.truncate(s.len().min(max as usize));
    }
    fn cut<T, const N: usize>(v: &mut heapless::Vec<T, N>, max: u32) {
        v.truncate(max as usize);
    }
    let mut a = max_action(kind);
    match &mut a {
        Action::GenericTx(t) => cut(&mut t.data, b.calldata),
        Action::LegacyGenericTx(t) => cut(&mut t.data, b.calldata),
        Action::PersonalMessage(m) => cut(&mut m.message, b.message),
        Action::RegistryTx(RegistryTx { call, .. })
        | Action::LegacyRegistryTx(LegacyRegistryTx { call, .. }) => {
            use RegistryCall as C;
            match call {
                C::RegisterWithUri { agent_uri } => cut_text(agent_uri, b.uri),
                C::RegisterWithMetadata { agent_uri, metadata } => {
                    cut_text(agent_uri, b.uri);
                    cut(metadata, b.metadata_entries);
                    for e in metadata.iter_mut() {
                        cut_text(&mut e.key, b.metadata_key);
                        cut(&mut e.value, b.metadata_value);
                    }
                }
                C::SetAgentUri { new_uri, .. } => cut_text(new_uri, b.uri),
                C::SetMetadata { key, value, .. } => {
                    cut_text(key, b.metadata_key);
                    cut(value, b.metadata_value);
                }
                C::SetAgentWallet { signature, .. } => cut(signature, b.wallet_signature),
                C::GiveFeedback { tag1, tag2, endpoint, feedback_uri, .. } => {
                    cut_text(tag1, b.tag);
                    cut_text(tag2, b.tag);
                    cut_text(endpoint, b.uri);
                    cut_text(feedback_uri, b.uri);
                }
                C::AppendResponse { response_uri, .. } => cut_text(response_uri, b.uri),
                C::ValidationRequest { request_uri, .. } => cut_text(request_uri, b.uri),
                C::ValidationResponse { response_uri, tag, .. } => {
                    cut_text(response_uri, b.uri);
                    cut_text(tag, b.tag);
                }
                C::Register | C::UnsetAgentWallet { .. } | C::RevokeFeedback { .. } => {}
            }
        }
        Action::AgentWalletSet(_) | Action::Eip712Prehashed(_) => {}
    }
    a
}

/// The action of `kind` whose every field is at its largest encoding.
pub fn max_action(kind: ActionKind) -> Action {
    use ActionKind as K;
    use RegistryCall as C;
    let tx = TxParams {
        chain_id: u64::MAX,
        nonce: u64::MAX,
        max_priority_fee_per_gas: u128::MAX,
        max_fee_per_gas: u128::MAX,
        gas_limit: u64::MAX,
    };
    let id = U256([0xff; 32]);
    let a = Address([0xff; 20]);
    let h = B256([0xff; 32]);
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
            return Action::GenericTx(GenericTx { tx, to: a, value: id, data: full_bytes() });
        }
        K::PersonalMessage => {
            return Action::PersonalMessage(PersonalMessage { message: full_bytes() });
        }
        K::Eip712Prehashed => {
            return Action::Eip712Prehashed(Eip712Prehashed {
                domain_separator: h,
                struct_hash: h,
            });
        }
        K::Register => C::Register,
        K::RegisterWithUri => C::RegisterWithUri { agent_uri: full_text() },
        K::RegisterWithMetadata => {
            let e = MetadataEntry { key: full_text(), value: full_bytes() };
            let mut metadata = heapless::Vec::new();
            while metadata.push(e.clone()).is_ok() {}
            C::RegisterWithMetadata { agent_uri: full_text(), metadata }
        }
        K::SetAgentUri => C::SetAgentUri { agent_id: id, new_uri: full_text() },
        K::SetMetadata => C::SetMetadata { agent_id: id, key: full_text(), value: full_bytes() },
        K::SetAgentWallet => C::SetAgentWallet {
            agent_id: id,
            new_wallet: a,
            deadline: u64::MAX,
            signature: full_bytes(),
        },
        K::UnsetAgentWallet => C::UnsetAgentWallet { agent_id: id },
        K::GiveFeedback => C::GiveFeedback {
            agent_id: id,
            value: i128::MIN,
            value_decimals: u8::MAX,
            tag1: full_text(),
            tag2: full_text(),
            endpoint: full_text(),
            feedback_uri: full_text(),
            feedback_hash: h,
        },
        K::RevokeFeedback => C::RevokeFeedback { agent_id: id, feedback_index: u64::MAX },
        K::AppendResponse => C::AppendResponse {
            agent_id: id,
            client_address: a,
            feedback_index: u64::MAX,
            response_uri: full_text(),
            response_hash: h,
        },
        K::ValidationRequest => C::ValidationRequest {
            validator_address: a,
            agent_id: id,
            request_uri: full_text(),
            request_hash: h,
        },
        K::ValidationResponse => C::ValidationResponse {
            request_hash: h,
            response: u8::MAX,
            response_uri: full_text(),
            response_hash: h,
            tag: full_text(),
        },
    };
    Action::RegistryTx(RegistryTx { tx, registry: a, call })
}
