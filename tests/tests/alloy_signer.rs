//! The signer as alloy's signer: an alloy `EthereumWallet` over a
//! `DeviceSigner` builds and signs transaction requests exactly as an alloy
//! provider's wallet filler does, and alloy decodes the signed bytes and
//! recovers the device's address. The slot's policy takes only typed
//! registry calls, so a signature proves the request reached the device as
//! the typed call. Refusals: a transaction type or field the actions do
//! not carry, another chain, a call outside the policy, a raw hash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::SignerRecoverable;
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_network::{
    Ethereum, EthereumWallet, Network, NetworkTransactionBuilder, TransactionBuilder,
};
use alloy_primitives::{Address, Bytes, U256, address};
use alloy_signer::{Signer, SignerSync};
use alloy_sol_types::{SolCall, eip712_domain, sol};
use tee_client::alloy::{DeviceSigner, DeviceSignerError};
use tee_client::provider::{PhalaDstackProvider, ProviderError};
use tee_core::protocol::{Allow, DeviceError, KindSet, Policy, PolicyViolation};
use tee_core::{ActionKind, SigningKey};
use tee_sim::SAMPLE_COLLATERAL_TIME;
use tee_testkit::ADMIN_SECRET;
use tee_tests::signer::{setup, verifier};
use tee_verify::{Bound, Check, Status};

const IDENTITY: Address = address!("8004A169FB4a3325136EB29fA0ceB6D2e539a432");
const BASE: u64 = 8453;

sol! {
    function setAgentURI(uint256 agentId, string newURI) external;

    struct AgentWalletSet {
        uint256 agentId;
        address newWallet;
        address owner;
        uint256 deadline;
    }
}

type Request = <Ethereum as Network>::TransactionRequest;

fn policy() -> Policy {
    let kinds = [ActionKind::SetAgentUri, ActionKind::AgentWalletSet, ActionKind::PersonalMessage];
    Policy {
        kinds: kinds.iter().fold(KindSet::NONE, |set, k| set.with(*k)),
        chains: Allow::Only(tee_core::heapless::Vec::from_slice(&[BASE]).unwrap()),
        contracts: Allow::Only(
            tee_core::heapless::Vec::from_slice(&[tee_core::Address(IDENTITY.0.0)]).unwrap(),
        ),
        agents: Allow::Any,
        max_value: tee_core::U256::ZERO,
        max_gas_limit: 1_000_000,
        max_fee_per_gas: 100_000_000_000,
        max_deadline_ahead_secs: 300,
        ..Policy::default()
    }
}

fn set_agent_uri(nonce: u64) -> Request {
    let call = setAgentURICall { agentId: U256::from(42), newURI: "ipfs://bafkreiagent".into() };
    Request::default()
        .with_to(IDENTITY)
        .with_input(Bytes::from(call.abi_encode()))
        .with_nonce(nonce)
        .with_chain_id(BASE)
        .with_gas_limit(200_000)
}

/// Whether `e` is the device's refusal for `violation`.
fn refused(e: &alloy_signer::Error, violation: PolicyViolation) -> bool {
    let alloy_signer::Error::Other(o) = e else { return false };
    matches!(
        o.downcast_ref::<DeviceSignerError>(),
        Some(DeviceSignerError::Provider(ProviderError::Denied { reason: DeviceError::Denied(v), .. })) if *v == violation
    )
}

#[test]
fn an_alloy_wallet_signs_through_the_device() {
    let s = setup();
    let endpoint = s.server.endpoints()[0].clone();
    let admin = PhalaDstackProvider::new(endpoint.clone(), verifier(s.kms_root))
        .with_admin(SigningKey::from_bytes(&ADMIN_SECRET).unwrap());
    let key = admin.generate_key(0, "erc8004/agent-42", &policy()).unwrap();
    let provider = Arc::new(PhalaDstackProvider::new(endpoint, verifier(s.kms_root)));
    let signer = DeviceSigner::new(provider, 0).unwrap();
    assert_eq!(Signer::address(&signer).0.0, key.address.0);
    let wallet = EthereumWallet::from(signer.clone());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();

    // An EIP-1559 registry call, built and signed as a provider's filler
    // does; alloy reads the bytes back and recovers the device's address.
    let request = set_agent_uri(7)
        .with_max_fee_per_gas(30_000_000_000)
        .with_max_priority_fee_per_gas(1_000_000_000);
    let envelope: TxEnvelope = rt.block_on(request.clone().build(&wallet)).unwrap();
    let raw = envelope.encoded_2718();
    let decoded = TxEnvelope::decode_2718(&mut &raw[..]).unwrap();
    assert!(decoded.is_eip1559());
    assert_eq!(decoded.recover_signer().unwrap(), Signer::address(&signer));
    assert_eq!(decoded.tx_hash(), envelope.tx_hash());
    // The signature comes with its attestation, bound to its digest.
    let last = signer.last_signature().unwrap();
    assert_eq!(last.digest.0, envelope.signature_hash().0);
    assert_eq!(last.attestation.bound, Bound::ActionDigest(last.digest));
    let report = verifier(s.kms_root).verify_tee_signature(&last, SAMPLE_COLLATERAL_TIME);
    assert!(matches!(report.status(Check::Binding), Some(Status::Passed(_))), "{report}");
    assert!(report.verified_but_dcap(), "{report}");

    // The same call as a legacy (EIP-155) transaction.
    let legacy = set_agent_uri(8).with_gas_price(10_000_000_000);
    let envelope = rt.block_on(legacy.build(&wallet)).unwrap();
    let raw = envelope.encoded_2718();
    let decoded = TxEnvelope::decode_2718(&mut &raw[..]).unwrap();
    assert!(decoded.is_legacy());
    assert_eq!(decoded.recover_signer().unwrap(), Signer::address(&signer));
    assert_eq!(alloy_consensus::Transaction::chain_id(&decoded), Some(BASE));

    // Refused before the device is asked: an access list (EIP-2930), and
    // a chain other than the signer's.
    let with_list = set_agent_uri(9).with_gas_price(1).with_access_list(
        vec![alloy_eips::eip2930::AccessListItem { address: IDENTITY, storage_keys: vec![] }]
            .into(),
    );
    let e = rt.block_on(with_list.build(&wallet)).unwrap_err();
    assert!(
        e.to_string().contains("transactions are signed") || e.to_string().contains("access list"),
        "{e}"
    );
    let mut on_mainnet = signer.clone();
    on_mainnet.set_chain_id(Some(1));
    let e = rt
        .block_on(set_agent_uri(9).with_gas_price(1).build(&EthereumWallet::from(on_mainnet)))
        .unwrap_err();
    assert!(e.to_string().contains("does not match the signer's chain ID"), "{e}");

    // Refused by the device, typed: a call the policy does not name (a
    // value transfer is a generic transaction), and a fee above its cap.
    let transfer = Request::default()
        .with_to(address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"))
        .with_value(U256::from(1))
        .with_nonce(9)
        .with_chain_id(BASE)
        .with_gas_limit(21_000)
        .with_gas_price(1);
    let mut tx = transfer.build_typed_tx().unwrap();
    let e = alloy_network::TxSignerSync::sign_transaction_sync(&signer, &mut tx).unwrap_err();
    assert!(refused(&e, PolicyViolation::KindNotAllowed), "{e:?}");
    let mut tx = set_agent_uri(9).with_gas_price(200_000_000_000).build_typed_tx().unwrap();
    let e = alloy_network::TxSignerSync::sign_transaction_sync(&signer, &mut tx).unwrap_err();
    assert!(refused(&e, PolicyViolation::FeeTooHigh), "{e:?}");

    // Messages and typed data.
    let sig = rt.block_on(signer.sign_message(b"hello, agent")).unwrap();
    assert_eq!(sig.recover_address_from_msg(b"hello, agent").unwrap(), Signer::address(&signer));
    let domain = eip712_domain! {
        name: "ERC8004IdentityRegistry",
        version: "1",
        chain_id: BASE,
        verifying_contract: IDENTITY,
    };
    let deadline =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 120;
    let consent = AgentWalletSet {
        agentId: U256::from(42),
        newWallet: Signer::address(&signer),
        owner: address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        deadline: U256::from(deadline),
    };
    let sig = rt.block_on(signer.sign_typed_data(&consent, &domain)).unwrap();
    let hash = alloy_sol_types::SolStruct::eip712_signing_hash(&consent, &domain);
    assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), Signer::address(&signer));
    // The same consent as dynamic typed data (eth_signTypedData_v4's form).
    let wallet_set = tee_core::action::AgentWalletSet {
        chain_id: BASE,
        identity_registry: tee_core::Address(IDENTITY.0.0),
        agent_id: tee_core::U256::from_u64(42),
        new_wallet: tee_core::Address(Signer::address(&signer).0.0),
        owner: tee_core::Address(consent.owner.0.0),
        deadline,
    };
    let typed = tee_client::actions::to_json(&tee_core::Action::AgentWalletSet(wallet_set));
    let typed: alloy_dyn_abi::TypedData = serde_json::from_value(typed.unwrap()).unwrap();
    assert_eq!(typed.eip712_signing_hash().unwrap(), hash);
    let sig = rt.block_on(signer.sign_dynamic_typed_data(&typed)).unwrap();
    assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), Signer::address(&signer));
    // Typed data in another domain is blind, and this policy does not
    // take it; a consent for another wallet is refused.
    let other_domain = eip712_domain! { name: "SomeToken", version: "1", chain_id: BASE, };
    let e = rt.block_on(signer.sign_typed_data(&consent, &other_domain)).unwrap_err();
    assert!(refused(&e, PolicyViolation::KindNotAllowed), "{e:?}");
    let mut not_mine = consent.clone();
    not_mine.newWallet = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");
    assert!(rt.block_on(signer.sign_typed_data(&not_mine, &domain)).is_err());
    // A raw hash is never signed.
    assert!(matches!(
        signer.sign_hash_sync(&hash),
        Err(alloy_signer::Error::UnsupportedOperation(_))
    ));
}
