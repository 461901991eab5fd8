//! One typical action of every kind, with realistic field sizes: for the
//! demo, benchmarks, documentation examples and fuzz seeds. Addresses are
//! the ERC-8004 v2.0.0 mainnet registries (erc-8004-contracts README and
//! `scripts/addresses.ts`); the wallet and owner are well-known anvil test
//! accounts.

use hex_literal::hex;

use crate::action::{
    Action, ActionKind, AgentWalletSet, AuthorizationKind, Eip712Prehashed, Envelope, GenericTx,
    LegacyTxParams, MetadataEntry, PersonalMessage, RegistryCall, RegistryTx, TaskReceipt,
    TokenAuthorization, TokenCall, TokenTx, Transaction, TxBody, TxParams,
};
use crate::primitives::{Address, B256, U256};

/// Base mainnet chain id.
pub const CHAIN_ID: u64 = 8453;
/// ERC-8004 IdentityRegistry (same address on Ethereum, Base, Arbitrum, ...).
pub const IDENTITY_REGISTRY: Address = Address(hex!("8004A169FB4a3325136EB29fA0ceB6D2e539a432"));
/// ERC-8004 ReputationRegistry.
pub const REPUTATION_REGISTRY: Address = Address(hex!("8004BAa17C55a88189AE136b182e5fdA19dE9b63"));
/// ERC-8004 ValidationRegistry, the mainnet address in erc-8004-contracts'
/// `scripts/addresses.ts` (the README marks this registry's spec as still
/// under revision).
pub const VALIDATION_REGISTRY: Address = Address(hex!("8004CC8439f36fd5F9F049D9fF86523Df6dAAB58"));
/// The agent wallet of the samples (anvil account 0).
pub const AGENT_WALLET: Address = Address(hex!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
/// The agent owner of the samples (anvil account 1).
pub const OWNER: Address = Address(hex!("70997970C51812dc3A010C7d01b50e0d17dc79C8"));
/// The agent id of the samples.
pub const AGENT_ID: u64 = 42;
/// USDC on Base (Circle's FiatTokenV2_2: EIP-3009 in domain `USD Coin`, `2`).
pub const USDC: Address = Address(hex!("833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"));
/// USDC's EIP-712 domain name on Base.
pub const USDC_NAME: &str = "USD Coin";
/// USDC's EIP-712 domain version.
pub const USDC_VERSION: &str = "2";

fn tx(nonce: u64) -> TxParams {
    TxParams {
        chain_id: CHAIN_ID,
        nonce,
        max_priority_fee_per_gas: 1_000_000,
        max_fee_per_gas: 2_000_000_000,
        gas_limit: 250_000,
    }
}

/// A typical action of `kind`.
#[must_use]
pub fn action(kind: ActionKind) -> Action<'static> {
    use ActionKind as K;
    use RegistryCall as C;
    let id = U256::from_u64(AGENT_ID);
    let uri = "ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    let hash = B256(hex!("a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2"));
    let (registry, call) = match kind {
        K::AgentWalletSet => {
            return Action::AgentWalletSet(AgentWalletSet {
                chain_id: CHAIN_ID,
                identity_registry: IDENTITY_REGISTRY,
                agent_id: id,
                new_wallet: AGENT_WALLET,
                owner: OWNER,
                deadline: 1_767_225_600,
            });
        }
        K::TaskReceipt => {
            return Action::TaskReceipt(TaskReceipt {
                chain_id: CHAIN_ID,
                identity_registry: IDENTITY_REGISTRY,
                agent_id: id,
                task_hash: B256(hex!(
                    "7d8f6c3b2a1e0f9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d"
                )),
                result_hash: hash,
                completed_at: 1_767_225_300,
            });
        }
        K::GenericTx => {
            return transaction(TxBody::Generic(GenericTx {
                to: OWNER,
                value: U256::from_u64(10_000_000_000_000_000),
                data: &hex!(
                    "a9059cbb00000000000000000000000070997970c51812dc3a010c7d01b50e0d17dc79c800000000000000000000000000000000000000000000000000000000000f4240"
                ),
            }));
        }
        K::TokenTransfer | K::TokenApprove | K::TokenTransferFrom => {
            // One USDC (six decimals).
            let amount = U256::from_u64(1_000_000);
            let call = match kind {
                K::TokenTransfer => TokenCall::Transfer { to: OWNER, amount },
                K::TokenApprove => TokenCall::Approve { spender: OWNER, amount },
                _ => TokenCall::TransferFrom { from: OWNER, to: AGENT_WALLET, amount },
            };
            return transaction(TxBody::Token(TokenTx { token: USDC, call }));
        }
        K::TransferWithAuthorization | K::ReceiveWithAuthorization => {
            return Action::TokenAuthorization(TokenAuthorization {
                kind: AuthorizationKind::of(kind).unwrap_or(AuthorizationKind::Transfer),
                chain_id: CHAIN_ID,
                token: USDC,
                name: USDC_NAME,
                version: USDC_VERSION,
                from: AGENT_WALLET,
                to: OWNER,
                value: U256::from_u64(10_000),
                valid_after: 1_767_224_700,
                valid_before: 1_767_225_600,
                nonce: B256(hex!(
                    "3c1d8f0e2b4a69587d6c5b4a39281706f5e4d3c2b1a0918f7e6d5c4b3a291807"
                )),
            });
        }
        K::PersonalMessage => {
            return Action::PersonalMessage(PersonalMessage {
                message: b"Sign in to agent.example as agent 42. Nonce: 8f3a1c.",
            });
        }
        K::Eip712Prehashed => {
            return Action::Eip712Prehashed(Eip712Prehashed {
                domain_separator: B256(hex!(
                    "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
                )),
                struct_hash: B256(hex!(
                    "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
                )),
            });
        }
        K::Register => (IDENTITY_REGISTRY, C::Register),
        K::RegisterWithUri => (IDENTITY_REGISTRY, C::RegisterWithUri { agent_uri: uri }),
        K::RegisterWithMetadata => {
            let mut metadata = heapless::Vec::new();
            for (k, v) in [("tee", &b"phala-dstack"[..]), ("model", b"llama-3.1-8b")] {
                let _ = metadata.push(MetadataEntry { key: k, value: v });
            }
            (IDENTITY_REGISTRY, C::RegisterWithMetadata { agent_uri: uri, metadata })
        }
        K::SetAgentUri => (IDENTITY_REGISTRY, C::SetAgentUri { agent_id: id, new_uri: uri }),
        K::SetMetadata => {
            (IDENTITY_REGISTRY, C::SetMetadata { agent_id: id, key: "tee", value: b"phala-dstack" })
        }
        K::SetAgentWallet => (
            IDENTITY_REGISTRY,
            C::SetAgentWallet {
                agent_id: id,
                new_wallet: AGENT_WALLET,
                deadline: 1_767_225_600,
                signature: &[0x5a; 65],
            },
        ),
        K::UnsetAgentWallet => (IDENTITY_REGISTRY, C::UnsetAgentWallet { agent_id: id }),
        K::GiveFeedback => (
            REPUTATION_REGISTRY,
            C::GiveFeedback {
                agent_id: id,
                value: 87,
                value_decimals: 0,
                tag1: "starred",
                tag2: "defi",
                endpoint: "https://agent.example/a2a",
                feedback_uri: uri,
                feedback_hash: hash,
            },
        ),
        K::RevokeFeedback => {
            (REPUTATION_REGISTRY, C::RevokeFeedback { agent_id: id, feedback_index: 3 })
        }
        K::AppendResponse => (
            REPUTATION_REGISTRY,
            C::AppendResponse {
                agent_id: id,
                client_address: OWNER,
                feedback_index: 3,
                response_uri: uri,
                response_hash: hash,
            },
        ),
        K::ValidationRequest => (
            VALIDATION_REGISTRY,
            C::ValidationRequest {
                validator_address: OWNER,
                agent_id: id,
                request_uri: uri,
                request_hash: hash,
            },
        ),
        K::ValidationResponse => (
            VALIDATION_REGISTRY,
            C::ValidationResponse {
                request_hash: hash,
                response: 100,
                response_uri: uri,
                response_hash: hash,
                tag: "tee-attested",
            },
        ),
    };
    transaction(TxBody::Registry(RegistryTx { registry, call }))
}

/// `body` as an EIP-1559 transaction at nonce 7.
fn transaction(body: TxBody<'_>) -> Action<'_> {
    Action::Transaction(Transaction { envelope: Envelope::Eip1559(tx(7)), body })
}

/// The legacy (type 0, EIP-155) form of a transaction action: the same
/// call, its `gasPrice` the EIP-1559 fee cap. `None` for other actions.
#[must_use]
pub fn legacy<'a>(action: &Action<'a>) -> Option<Action<'a>> {
    let Action::Transaction(t) = action else { return None };
    let envelope = match t.envelope {
        Envelope::Eip1559(p) => Envelope::Legacy(LegacyTxParams {
            chain_id: p.chain_id,
            nonce: p.nonce,
            gas_price: p.max_fee_per_gas,
            gas_limit: p.gas_limit,
        }),
        Envelope::Legacy(_) => t.envelope,
    };
    Some(Action::Transaction(Transaction { envelope, body: t.body.clone() }))
}

/// `action` made valid at unix time `now` for the key of address `signer`:
/// a wallet binding names the signer, an EIP-3009 authorization pays from
/// it, and their deadlines (and `setAgentWallet`'s) lie two minutes ahead.
#[must_use]
pub fn made_valid(mut action: Action<'_>, signer: Address, now: u64) -> Action<'_> {
    match &mut action {
        Action::AgentWalletSet(w) => {
            w.new_wallet = signer;
            w.deadline = now + 120;
        }
        Action::TokenAuthorization(a) => {
            a.from = signer;
            a.valid_after = now.saturating_sub(600);
            a.valid_before = now + 120;
        }
        _ => {
            if let Some(RegistryCall::SetAgentWallet { deadline, .. }) = action.registry_call_mut()
            {
                *deadline = now + 120;
            }
        }
    }
    action
}

/// `action` at another nonce, whatever its envelope (anything but a
/// transaction unchanged): a different action of the same kind, for replay
/// and conflict tests.
#[must_use]
pub fn with_nonce(mut action: Action<'_>, nonce: u64) -> Action<'_> {
    if let Action::Transaction(t) = &mut action {
        match &mut t.envelope {
            Envelope::Eip1559(p) => p.nonce = nonce,
            Envelope::Legacy(p) => p.nonce = nonce,
        }
    }
    action
}

/// The sample transfer (a generic transaction) of `wei`, its nonce
/// `nonce`: payments for the spend-cap tests.
#[must_use]
pub fn transfer(wei: U256, nonce: u64) -> Action<'static> {
    let mut action = with_nonce(self::action(ActionKind::GenericTx), nonce);
    if let Action::Transaction(t) = &mut action
        && let TxBody::Generic(g) = &mut t.body
    {
        g.value = wei;
    }
    action
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_kind_has_a_sample_of_that_kind() {
        for &kind in ActionKind::ALL {
            let a = action(kind);
            assert_eq!(a.kind(), kind);
            let mut buf = [0u8; 1024];
            let enc = a.encode(&mut buf).unwrap();
            assert_eq!(Action::decode(enc).unwrap(), a);
        }
    }
}
