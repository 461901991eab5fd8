//! Where the ERC-8004 v2 registries are deployed: the same CREATE2 vanity
//! addresses on every chain of a kind (erc-8004/erc-8004-contracts,
//! README.md at commit 2eb5adcb9ef2, "Contract Addresses"; the validation
//! registry is not deployed there yet). A transaction to one of them, on one
//! of these chains, is decoded into its typed registry call.

use tee_core::Address;
use tee_core::action::Registry;

/// The mainnet deployments: identity, reputation.
const MAINNET: [(Registry, [u8; 20]); 2] = [
    (Registry::Identity, hex_literal::hex!("8004A169FB4a3325136EB29fA0ceB6D2e539a432")),
    (Registry::Reputation, hex_literal::hex!("8004BAa17C55a88189AE136b182e5fdA19dE9b63")),
];

/// The testnet deployments: identity, reputation.
const TESTNET: [(Registry, [u8; 20]); 2] = [
    (Registry::Identity, hex_literal::hex!("8004A818BFB912233c491871b3d84c89A494BD9e")),
    (Registry::Reputation, hex_literal::hex!("8004B663056A597Dffe9eCcC1965A193B7388713")),
];

/// Mainnets the README lists (chain ids): Ethereum, Optimism, BSC, Gnosis,
/// Polygon, Mantle, Base, Abstract, Arbitrum, Celo, Avalanche, Linea,
/// Taiko, Scroll.
const MAINNETS: [u64; 14] =
    [1, 10, 56, 100, 137, 5000, 8453, 2741, 42161, 42220, 43114, 59144, 167_000, 534_352];

/// Testnets the README lists: BSC, Mantle Sepolia, Monad, Abstract,
/// Avalanche Fuji, Linea Sepolia, Polygon Amoy, Base Sepolia, Arbitrum
/// Sepolia, Scroll Sepolia, Sepolia, OP Sepolia, Celo Sepolia.
const TESTNETS: [u64; 13] = [
    97, 5003, 10143, 11124, 43113, 59141, 80002, 84532, 421_614, 534_351, 11_155_111, 11_155_420,
    11_142_220,
];

/// The registry deployed at `to` on `chain_id`, if it is one.
#[must_use]
pub fn deployed(chain_id: u64, to: &Address) -> Option<Registry> {
    let table: &[(Registry, [u8; 20])] = if MAINNETS.contains(&chain_id) {
        &MAINNET
    } else if TESTNETS.contains(&chain_id) {
        &TESTNET
    } else {
        return None;
    };
    table.iter().find(|(_, a)| *a == to.0).map(|(r, _)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_registries() {
        let identity = Address(hex_literal::hex!("8004A169FB4a3325136EB29fA0ceB6D2e539a432"));
        assert_eq!(deployed(8453, &identity), Some(Registry::Identity));
        assert_eq!(deployed(1, &identity), Some(Registry::Identity));
        // The mainnet address on a testnet, and an unknown chain: not a registry.
        assert_eq!(deployed(84532, &identity), None);
        assert_eq!(deployed(31337, &identity), None);
        let test_rep = Address(hex_literal::hex!("8004B663056A597Dffe9eCcC1965A193B7388713"));
        assert_eq!(deployed(11_155_111, &test_rep), Some(Registry::Reputation));
    }
}
