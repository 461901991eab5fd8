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
//! ```
//! IDENTITY is the ERC-8004 IdentityRegistry on Base (erc-8004-contracts README).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use hex_literal::hex;
use tee_core::action::tx;
use tee_core::action::{
    AgentWalletSet, GenericTx, PersonalMessage, RegistryCall, RegistryTx, TxParams, bytes, text,
};
use tee_core::{Action, Address, SigningKey, U256};

const ANVIL0_KEY: [u8; 32] =
    hex!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
const ANVIL0: Address = Address(hex!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
const ANVIL1: Address = Address(hex!("70997970C51812dc3A010C7d01b50e0d17dc79C8"));
const IDENTITY: Address = Address(hex!("8004A169FB4a3325136EB29fA0ceB6D2e539a432"));

fn key() -> SigningKey {
    let k = SigningKey::from_bytes(&ANVIL0_KEY).unwrap();
    assert_eq!(k.address(), ANVIL0);
    k
}

#[test]
fn registry_tx_set_agent_uri() {
    let action = Action::RegistryTx(RegistryTx {
        tx: TxParams {
            chain_id: 8453,
            nonce: 7,
            max_priority_fee_per_gas: 1_000_000,
            max_fee_per_gas: 2_000_000_000,
            gas_limit: 120_000,
        },
        registry: IDENTITY,
        call: RegistryCall::SetAgentUri {
            agent_id: U256::from_u64(42),
            new_uri: text("ipfs://bafkreiagentcard").unwrap(),
        },
    });
    let Action::RegistryTx(t) = &action else { unreachable!() };
    let mut cd = [0u8; 256];
    assert_eq!(
        t.call.calldata(&mut cd).unwrap(),
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
    let action = Action::GenericTx(GenericTx {
        tx: TxParams {
            chain_id: 1,
            nonce: 0,
            max_priority_fee_per_gas: 2_000_000_000,
            max_fee_per_gas: 100_000_000_000,
            gas_limit: 21_000,
        },
        to: ANVIL1,
        value: U256::from_u64(1_000_000_000_000_000_000),
        data: bytes(&[]).unwrap(),
    });
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
    let (decoded, sig) = GenericTx::decode_signed(&expected).unwrap();
    assert_eq!(Action::GenericTx(decoded), action);
    assert_eq!(sig, signed.signature);
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
fn personal_message_hello_world() {
    let action =
        Action::PersonalMessage(PersonalMessage { message: bytes(b"Hello World").unwrap() });
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
