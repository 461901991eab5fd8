//! What the device tests share: a device opened through frames, a key in
//! slot 0 under a policy, sample actions made valid now.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tee_core::device::Device;
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, Address, U256};
use tee_testkit::sample;
use tee_testkit::{MemBackend, Pair};

pub const NOW: u64 = 1_767_225_000;

pub fn open(backend: MemBackend) -> Pair<MemBackend> {
    Pair::new(Device::open(backend, tee_testkit::config()).unwrap())
}

/// A policy allowing every sample action (blind kinds included).
pub fn permissive() -> Policy {
    let mut kinds = KindSet::NONE;
    for &k in ActionKind::ALL {
        kinds = kinds.with(k);
    }
    Policy {
        kinds,
        chains: Allow::Any,
        contracts: Allow::Any,
        agents: Allow::Any,
        max_value: U256([0xff; 32]),
        max_gas_limit: u64::MAX,
        max_fee_per_gas: u128::MAX,
        max_deadline_ahead_secs: 300,
        rate_limit: None,
        eip712_domains: Allow::Any,
        spend_cap: None,
        valid_until: 0,
        tokens: tee_core::heapless::Vec::from_slice(&[TokenRule {
            token: sample::USDC,
            max_amount: U256([0xff; 32]),
            cap: None,
        }])
        .unwrap_or_default(),
        recipients: Allow::Any,
        unlimited_approvals: false,
        approvals: None,
    }
}

/// A device with a generated key in slot 0 under `policy`.
pub fn ready(policy: Policy) -> (Pair<MemBackend>, Address) {
    let mut p = open(MemBackend::new(1));
    let pk = p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy, auth: AdminAuth::UNSIGNED }).unwrap();
    (p, pk.address)
}

/// The sample AgentWalletSet, made valid for `wallet` at NOW.
pub fn wallet_set(wallet: Address) -> Action<'static> {
    let Action::AgentWalletSet(mut w) = sample::action(ActionKind::AgentWalletSet) else {
        unreachable!()
    };
    w.new_wallet = wallet;
    w.deadline = NOW + 120;
    Action::AgentWalletSet(w)
}

pub fn sign(
    p: &mut Pair<MemBackend>,
    sequence: u64,
    action: Action<'_>,
) -> Result<SignResponse, DeviceError> {
    p.call(&Sign { slot: 0, sequence, action })
}
