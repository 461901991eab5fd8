//! Known-answer vectors from an independent implementation.
//!
//! Source: eth-account 0.14.0 and eth-abi 6.0.0 (PyPI), run on 2026-11-25:
//! ```python
//! acct = Account.from_key("0xac09…ff80")          # anvil/hardhat account 0
//! data = bytes.fromhex("0af28bd3") + eth_abi.encode(["uint256","string"], [42, "ipfs://bafkreiagentcard"])
//! acct.sign_transaction({"type": 2, "chainId": 8453, "nonce": 7, "maxPriorityFeePerGas": 1_000_000,
//!     "maxFeePerGas": 2_000_000_000, "gas": 120000, "to": IDENTITY, "value": 0, "data": data, "accessList": []})
//! acct.sign_transaction({"type": 2, "chainId": 1, "nonce": 0, "maxPriorityFeePerGas": 2*10**9,
//!     "maxFeePerGas": 100*10**9, "gas": 21000, "to": ANVIL1, "value": 10**18, "data": b"", "accessList": []})
//! Account.sign_typed_data(key, full_message={AgentWalletSet, domain ERC8004IdentityRegistry/1/8453/IDENTITY,
//!     agentId 42, newWallet acct.address, owner ANVIL1, deadline 1767225600})
//! Account.sign_message(encode_defunct(text="Hello World"), key)
//! # TaskReceipt, run on 2026-12-04 (eth-account 0.14.0):
//! Account.sign_typed_data(key, full_message={TaskReceipt(uint256 agentId,bytes32 taskHash,
//!     bytes32 resultHash,uint256 completedAt), domain ERC8004TaskReceipt/1/8453/IDENTITY,
//!     agentId 42, taskHash 0x7d8f…6e5d, resultHash 0xa1de…78f2, completedAt 1767225300})
//! # legacy (type 0, EIP-155), run on 2026-11-27:
//! acct.sign_transaction({"chainId": 8453, "nonce": 7, "gasPrice": 2_000_000_000, "gas": 120000,
//!     "to": IDENTITY, "value": 0, "data": data})
//! acct.sign_transaction({"chainId": 1, "nonce": 0, "gasPrice": 100*10**9, "gas": 21000,
//!     "to": ANVIL1, "value": 10**18, "data": b""})
//! ```
//! IDENTITY is the ERC-8004 IdentityRegistry on Base (erc-8004-contracts README).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use hex_literal::hex;
use tee_core::action::tx;
use tee_core::action::{
    AgentWalletSet, Envelope, GenericTx, LegacyTxParams, PersonalMessage, RegistryCall, RegistryTx,
    TaskReceipt, Transaction, TxBody, TxParams,
};
use tee_core::{Action, Address, B256, SigningKey, U256};

const ANVIL0_KEY: [u8; 32] =
    hex!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
const ANVIL0: Address = Address(hex!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
const ANVIL1: Address = Address(hex!("70997970C51812dc3A010C7d01b50e0d17dc79C8"));
const IDENTITY: Address = Address(hex!("8004A169FB4a3325136EB29fA0ceB6D2e539a432"));

fn transaction(envelope: Envelope, body: TxBody<'_>) -> Action<'_> {
    Action::Transaction(Transaction { envelope, body })
}

fn key() -> SigningKey {
    let k = SigningKey::from_bytes(&ANVIL0_KEY).unwrap();
    assert_eq!(k.address(), ANVIL0);
    k
}

/// `setAgentURI(42, "ipfs://bafkreiagentcard")` on the identity registry:
/// the body both envelopes' vectors carry.
fn set_agent_uri_42() -> TxBody<'static> {
    TxBody::Registry(RegistryTx {
        registry: IDENTITY,
        call: RegistryCall::SetAgentUri {
            agent_id: U256::from_u64(42),
            new_uri: "ipfs://bafkreiagentcard",
        },
    })
}

#[test]
fn registry_tx_set_agent_uri() {
    let action = transaction(
        Envelope::Eip1559(TxParams {
            chain_id: 8453,
            nonce: 7,
            max_priority_fee_per_gas: 1_000_000,
            max_fee_per_gas: 2_000_000_000,
            gas_limit: 120_000,
        }),
        set_agent_uri_42(),
    );
    let mut cd = [0u8; 256];
    assert_eq!(
        action.registry_call().unwrap().calldata(&mut cd).unwrap(),
        hex!(
            "0af28bd3000000000000000000000000000000000000000000000000000000000000002a00000000000000000000000000000000000000000000000000000000000000400000000000000000000000000000000000000000000000000000000000000017697066733a2f2f6261666b7265696167656e7463617264000000000000000000"
        )
    );
    let signed = key().sign(&action).unwrap();
    assert_eq!(
        signed.signature.r,
        hex!("10a9b7a515302f343381c5d0ab2f2af3b47cbc368a0954e7ec5e37a08576f19c")
    );
    assert_eq!(
        signed.signature.s,
        hex!("08051acdabe8f3ab6e3b8388e96d2f23dcd42286f126233d58e5ede31a03c47b")
    );
    assert!(signed.signature.y_parity);
    let mut buf = [0u8; 512];
    let raw = tx::encode_signed(&action, &signed.signature, &mut buf).unwrap();
    assert_eq!(
        &raw[..],
        hex!(
            "02f8f182210507830f424084773594008301d4c0948004a169fb4a3325136eb29fa0ceb6d2e539a43280b8840af28bd3000000000000000000000000000000000000000000000000000000000000002a00000000000000000000000000000000000000000000000000000000000000400000000000000000000000000000000000000000000000000000000000000017697066733a2f2f6261666b7265696167656e7463617264000000000000000000c001a010a9b7a515302f343381c5d0ab2f2af3b47cbc368a0954e7ec5e37a08576f19ca008051acdabe8f3ab6e3b8388e96d2f23dcd42286f126233d58e5ede31a03c47b"
        )
    );
    assert_eq!(
        tx::tx_hash(&action, &signed.signature).unwrap().0,
        hex!("90fbea43fbdc8a4ef1445175193f995a26bbe884b3a783e2c791bda5231615ad")
    );
}

#[test]
fn generic_value_transfer() {
    let action = transaction(
        Envelope::Eip1559(TxParams {
            chain_id: 1,
            nonce: 0,
            max_priority_fee_per_gas: 2_000_000_000,
            max_fee_per_gas: 100_000_000_000,
            gas_limit: 21_000,
        }),
        TxBody::Generic(GenericTx {
            to: ANVIL1,
            value: U256::from_u64(1_000_000_000_000_000_000),
            data: &[],
        }),
    );
    let signed = key().sign(&action).unwrap();
    let mut buf = [0u8; 256];
    let raw = tx::encode_signed(&action, &signed.signature, &mut buf).unwrap().to_vec();
    let expected = hex!(
        "02f8730180847735940085174876e8008252089470997970c51812dc3a010c7d01b50e0d17dc79c8880de0b6b3a764000080c001a014baef2daf8baeeb9c494aa281da1fefd02e9123b8e437f50265c30a7bd55466a0157f9d56fb8564dca0c4bce8e7e0465ab64623f4dd43d9f4a9fd5fd933ed1909"
    );
    assert_eq!(raw, expected);
    assert_eq!(
        tx::tx_hash(&action, &signed.signature).unwrap().0,
        hex!("82ae38eadb1dc9e7c3e325ed62591eae3ca31517544ffbcfddd7c29b86ae81bc")
    );
    // The strict decoder reads eth_account's bytes back to the same action.
    let (decoded, sig) = Transaction::decode_signed(&expected).unwrap();
    assert_eq!(Action::Transaction(decoded), action);
    assert_eq!(sig, signed.signature);
}

/// Signs `action` with anvil's key 0 and checks the raw transaction and
/// its hash against eth_account's, and that the raw transaction reads back
/// to the action's digest and the same signature.
fn signs_as_eth_account(action: &Action<'_>, raw: &[u8], hash: [u8; 32]) {
    let signed = key().sign(action).unwrap();
    let mut buf = [0u8; 512];
    let ours = tx::encode_signed(action, &signed.signature, &mut buf).unwrap();
    assert_eq!(&ours[..], raw);
    assert_eq!(tx::signed_len(action, &signed.signature).unwrap(), raw.len());
    assert_eq!(tx::tx_hash(action, &signed.signature).unwrap().0, hash);
    assert_eq!(tx::signing_hash_of_signed(raw), Ok((action.digest(), signed.signature)));
}

#[test]
fn legacy_registry_tx_set_agent_uri() {
    let action = transaction(
        Envelope::Legacy(LegacyTxParams {
            chain_id: 8453,
            nonce: 7,
            gas_price: 2_000_000_000,
            gas_limit: 120_000,
        }),
        set_agent_uri_42(),
    );
    signs_as_eth_account(
        &action,
        &hex!(
            "f8eb0784773594008301d4c0948004a169fb4a3325136eb29fa0ceb6d2e539a43280b8840af28bd3000000000000000000000000000000000000000000000000000000000000002a00000000000000000000000000000000000000000000000000000000000000400000000000000000000000000000000000000000000000000000000000000017697066733a2f2f6261666b7265696167656e746361726400000000000000000082422da05b5e51706c47063be0c312c49a3c90e56d097ddd5f24ffe174afc3ae5f79fc57a0708cbd8544d552190794998a72296e74e3d3af3b6d7966ba18b674d2d97a94a7"
        ),
        hex!("56f60a758e93fb4fbf12706c3d863f0f695e6adc5df74d3897e1aa0c1780a34e"),
    );
}

#[test]
fn legacy_generic_value_transfer() {
    let action = transaction(
        Envelope::Legacy(LegacyTxParams {
            chain_id: 1,
            nonce: 0,
            gas_price: 100_000_000_000,
            gas_limit: 21_000,
        }),
        TxBody::Generic(GenericTx {
            to: ANVIL1,
            value: U256::from_u64(1_000_000_000_000_000_000),
            data: &[],
        }),
    );
    let raw = hex!(
        "f86c8085174876e8008252089470997970c51812dc3a010c7d01b50e0d17dc79c8880de0b6b3a76400008025a00c54a804462a8d878adf9e1e728c14821817dd7ee85e6cffea69d7a8d3df9ad0a06e4614999e47b18de4ecaffb83972c5799d979dd7cfcdd6db6194c252ee29ba5"
    );
    signs_as_eth_account(
        &action,
        &raw,
        hex!("1788cef32401912195964f23e10e2dd3317fe5d69395609a33becf5f60c87e50"),
    );
    // The strict decoder reads eth_account's legacy bytes back too.
    let (decoded, _) = Transaction::decode_signed(&raw).unwrap();
    assert_eq!(Action::Transaction(decoded), action);
    // The same transaction with a pre-EIP-155 v (27: bound to no chain) is
    // refused, and so is one whose v claims another chain's signature.
    let mut pre155 = raw;
    let v_at = raw.len() - 67;
    assert_eq!(raw[v_at], 0x25);
    pre155[v_at] = 27;
    assert_eq!(tx::signing_hash_of_signed(&pre155), Err(tee_core::Error::Unsupported));
    let mut other_chain = raw;
    other_chain[v_at] = 0x27; // chain 2
    assert_ne!(tx::signing_hash_of_signed(&other_chain).map(|(h, _)| h), Ok(action.digest()));
}

#[test]
fn agent_wallet_set_typed_data() {
    let action = Action::AgentWalletSet(AgentWalletSet {
        chain_id: 8453,
        identity_registry: IDENTITY,
        agent_id: U256::from_u64(42),
        new_wallet: ANVIL0,
        owner: ANVIL1,
        deadline: 1_767_225_600,
    });
    let signed = key().sign(&action).unwrap();
    assert_eq!(
        signed.digest.0,
        hex!("cd45da1f2422a716beb3e197a60c5d44d4afc13cd3d8825d9c7e93705e68adf7")
    );
    assert_eq!(
        signed.signature.to_bytes(),
        hex!(
            "7cd56522746a62d75698063c9a6c8b0e61aa6e1bbeae94398671e09d4f0afeaf54c1b51d9c48bb05f904b3921c6a648f7e94a1f766e82055e334484111be21c91b"
        )
    );
}

#[test]
fn task_receipt_typed_data() {
    let action = Action::TaskReceipt(TaskReceipt {
        chain_id: 8453,
        identity_registry: IDENTITY,
        agent_id: U256::from_u64(42),
        task_hash: B256(hex!("7d8f6c3b2a1e0f9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d")),
        result_hash: B256(hex!("a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2")),
        completed_at: 1_767_225_300,
    });
    let signed = key().sign(&action).unwrap();
    assert_eq!(
        signed.digest.0,
        hex!("f85115d0671ebe60c7cc4f71d26ade6f0ff49e161be28bf5062b5041d7f0c157")
    );
    assert_eq!(
        signed.signature.to_bytes(),
        hex!(
            "492b6749b8d7955ada30cc38c45578916daaaea84e9bc12d908ba5a51d5343e82f2917eb492eeb48897d8bc47e14672c35b109772f668804705f8a5834c037e21b"
        )
    );
}

#[test]
fn personal_message_hello_world() {
    let action = Action::PersonalMessage(PersonalMessage { message: b"Hello World" });
    let signed = key().sign(&action).unwrap();
    assert_eq!(
        signed.digest.0,
        hex!("a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2")
    );
    assert_eq!(
        signed.signature.to_bytes(),
        hex!(
            "65e72b1cf8e189569963750e10ccb88fe89389daeeb8b735277d59cd6885ee823eb5a6982b540f185703492dab77b863a88ce01f27e21ade8b2879c10fc9e6531c"
        )
    );
    assert_eq!(signed.signature.recover_address(&signed.digest).unwrap(), ANVIL0);
}
