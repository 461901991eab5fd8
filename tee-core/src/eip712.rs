//! EIP-712 typed-data digests and EIP-191 message digests: the hashing
//! primitives; [`crate::action`] applies them to actions.

use sha3::{Digest, Keccak256};

use crate::abi::word;
use crate::primitives::{Address, B256};

/// `keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")`
pub const DOMAIN_TYPEHASH: B256 =
    B256(hex_literal::hex!("8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f"));

/// `keccak256("AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)")`,
/// the identity registry's `AGENT_WALLET_SET_TYPEHASH`.
pub const AGENT_WALLET_SET_TYPEHASH: B256 =
    B256(hex_literal::hex!("678b53cd718d595370ab070ebf48edfdcd834beac116bf23e625fc7f4d5b7d32"));

/// `keccak256("TaskReceipt(uint256 agentId,bytes32 taskHash,bytes32 resultHash,uint256 completedAt)")`.
pub const TASK_RECEIPT_TYPEHASH: B256 =
    B256(hex_literal::hex!("c5a5ab5f9572126243bb3aa38bdd9c894befba4d007efe294122d08bb0f64cd5"));

/// `keccak256("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")`,
/// EIP-3009's `TRANSFER_WITH_AUTHORIZATION_TYPEHASH`.
pub const TRANSFER_WITH_AUTHORIZATION_TYPEHASH: B256 =
    B256(hex_literal::hex!("7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267"));

/// `keccak256("ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")`,
/// EIP-3009's `RECEIVE_WITH_AUTHORIZATION_TYPEHASH`.
pub const RECEIVE_WITH_AUTHORIZATION_TYPEHASH: B256 =
    B256(hex_literal::hex!("d099cc98ef71107a616c4f0f941f04c322d8e254fe26b3c6668db87aae413de8"));

/// A task receipt's EIP-712 domain name.
pub const TASK_RECEIPT_NAME: &str = "ERC8004TaskReceipt";
/// A task receipt's EIP-712 domain version.
pub const TASK_RECEIPT_VERSION: &str = "1";

/// `keccak256("ERC8004TaskReceipt")`
const TASK_RECEIPT_NAME_HASH: B256 =
    B256(hex_literal::hex!("884bf1224966a8e1da8b4609e85539e741670f38a335979739fc52c4724c7252"));

/// The identity registry's EIP-712 domain name.
pub const IDENTITY_REGISTRY_NAME: &str = "ERC8004IdentityRegistry";
/// The identity registry's EIP-712 domain version.
pub const IDENTITY_REGISTRY_VERSION: &str = "1";

/// `keccak256("ERC8004IdentityRegistry")`
const IDENTITY_REGISTRY_NAME_HASH: B256 =
    B256(hex_literal::hex!("14eb7e73a4b0db4b1973a43b32259ba95ca226af62ef495be78e00eba5734683"));
/// `keccak256("1")`
const IDENTITY_REGISTRY_VERSION_HASH: B256 =
    B256(hex_literal::hex!("c89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6"));

/// `hashStruct(EIP712Domain)` for a domain with exactly the fields name,
/// version, chainId and verifyingContract (OpenZeppelin's `EIP712`).
#[must_use]
pub fn domain_separator(
    name: &str,
    version: &str,
    chain_id: u64,
    verifying_contract: &Address,
) -> B256 {
    let name = crate::primitives::keccak256(name.as_bytes());
    let version = crate::primitives::keccak256(version.as_bytes());
    domain_separator_hashed(&name, &version, chain_id, verifying_contract)
}

fn domain_separator_hashed(name: &B256, version: &B256, chain_id: u64, contract: &Address) -> B256 {
    let mut h = Keccak256::new();
    h.update(DOMAIN_TYPEHASH.0);
    h.update(name.0);
    h.update(version.0);
    h.update(word::uint(chain_id));
    h.update(word::address(contract));
    B256(h.finalize().into())
}

/// The identity registry's domain separator on `chain_id`.
#[must_use]
pub fn identity_registry_domain(chain_id: u64, registry: &Address) -> B256 {
    domain_separator_hashed(
        &IDENTITY_REGISTRY_NAME_HASH,
        &IDENTITY_REGISTRY_VERSION_HASH,
        chain_id,
        registry,
    )
}

/// A task receipt's domain separator on `chain_id`, bound to the identity
/// registry the agent is in (version "1", as the identity registry's).
#[must_use]
pub fn task_receipt_domain(chain_id: u64, registry: &Address) -> B256 {
    domain_separator_hashed(
        &TASK_RECEIPT_NAME_HASH,
        &IDENTITY_REGISTRY_VERSION_HASH,
        chain_id,
        registry,
    )
}

/// `keccak256("\x19\x01" ‖ domainSeparator ‖ structHash)`.
#[must_use]
pub fn typed_data_digest(domain_separator: &B256, struct_hash: &B256) -> B256 {
    let mut h = Keccak256::new();
    h.update([0x19, 0x01]);
    h.update(domain_separator.0);
    h.update(struct_hash.0);
    B256(h.finalize().into())
}

/// EIP-191 version `0x45` (`personal_sign`):
/// `keccak256("\x19Ethereum Signed Message:\n" ‖ decimal(len) ‖ message)`.
#[must_use]
pub fn personal_message_digest(message: &[u8]) -> B256 {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    let mut digits = [0u8; 20];
    h.update(crate::primitives::decimal(message.len(), &mut digits));
    h.update(message);
    B256(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::keccak256;
    use hex_literal::hex;

    #[test]
    fn constants_are_the_hashes_they_claim() {
        assert_eq!(
            DOMAIN_TYPEHASH,
            keccak256(
                b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
            )
        );
        assert_eq!(
            AGENT_WALLET_SET_TYPEHASH,
            keccak256(
                b"AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)"
            )
        );
        for (typehash, kind) in [
            (TRANSFER_WITH_AUTHORIZATION_TYPEHASH, "Transfer"),
            (RECEIVE_WITH_AUTHORIZATION_TYPEHASH, "Receive"),
        ] {
            let ty = [
                kind,
                "WithAuthorization(address from,address to,uint256 value,",
                "uint256 validAfter,uint256 validBefore,bytes32 nonce)",
            ];
            let mut h = Keccak256::new();
            ty.iter().for_each(|part| h.update(part.as_bytes()));
            assert_eq!(typehash, B256(h.finalize().into()));
        }
        assert_eq!(IDENTITY_REGISTRY_NAME_HASH, keccak256(IDENTITY_REGISTRY_NAME.as_bytes()));
        assert_eq!(IDENTITY_REGISTRY_VERSION_HASH, keccak256(IDENTITY_REGISTRY_VERSION.as_bytes()));
        let a = Address([0x11; 20]);
        assert_eq!(
            identity_registry_domain(8453, &a),
            domain_separator(IDENTITY_REGISTRY_NAME, IDENTITY_REGISTRY_VERSION, 8453, &a)
        );
    }

    /// The `Mail` example of the EIP-712 specification (`assets/eip-712/Example.js`):
    /// domain "Ether Mail", version "1", chainId 1, verifyingContract 0xCcCC…cccC.
    #[test]
    fn eip712_spec_mail_example() {
        let ds = domain_separator("Ether Mail", "1", 1, &Address([0xcc; 20]));
        assert_eq!(ds.0, hex!("f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"));
        let person = keccak256(b"Person(string name,address wallet)");
        let mail = keccak256(
            b"Mail(Person from,Person to,string contents)Person(string name,address wallet)",
        );
        let hash_person = |name: &[u8], wallet: [u8; 20]| {
            let mut h = Keccak256::new();
            h.update(person.0);
            h.update(keccak256(name).0);
            h.update(word::address(&Address(wallet)));
            B256(h.finalize().into())
        };
        let mut h = Keccak256::new();
        h.update(mail.0);
        h.update(hash_person(b"Cow", hex!("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826")).0);
        h.update(hash_person(b"Bob", hex!("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB")).0);
        h.update(keccak256(b"Hello, Bob!").0);
        let sh = B256(h.finalize().into());
        assert_eq!(sh.0, hex!("c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"));
        assert_eq!(
            typed_data_digest(&ds, &sh).0,
            hex!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
        );
    }

    /// ethers.js documents `hashMessage("Hello World")`; eth_account's
    /// `encode_defunct(text="Hello World")` gives the same hash.
    #[test]
    fn eip191_hello_world() {
        assert_eq!(
            personal_message_digest(b"Hello World").0,
            hex!("a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2")
        );
        // Length with several digits, and the empty message.
        assert_eq!(
            personal_message_digest(&[b'a'; 1000]),
            keccak256(&[&b"\x19Ethereum Signed Message:\n1000"[..], &[b'a'; 1000]].concat())
        );
        assert_eq!(personal_message_digest(b""), keccak256(b"\x19Ethereum Signed Message:\n0"));
    }
}
