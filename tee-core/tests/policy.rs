//! Every policy rule through the device, each allowed and refused, and the
//! rate limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;

use tee_core::action::{AgentWalletSet, Envelope, RegistryCall, Transaction, TxBody};
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, Address, U256};
use tee_testkit::{MemBackend, sample};

#[test]
fn policy_rules_each_allowed_and_refused() {
    use PolicyViolation as V;
    let base = || Policy {
        kinds: KindSet::typed(),
        chains: Allow::Only(tee_core::heapless::Vec::from_slice(&[sample::CHAIN_ID]).unwrap()),
        contracts: Allow::Only(
            tee_core::heapless::Vec::from_slice(&[
                sample::IDENTITY_REGISTRY,
                sample::REPUTATION_REGISTRY,
                sample::VALIDATION_REGISTRY,
            ])
            .unwrap(),
        ),
        agents: Allow::Only(
            tee_core::heapless::Vec::from_slice(&[U256::from_u64(sample::AGENT_ID)]).unwrap(),
        ),
        max_value: U256::ZERO,
        max_gas_limit: 300_000,
        max_fee_per_gas: 3_000_000_000,
        max_deadline_ahead_secs: 300,
        ..Policy::default()
    };
    let mut seq = 0;
    let mut check = |policy: Policy, action: Action<'_>, expect: Result<(), V>| {
        let (mut p, _) = ready(policy);
        seq += 1;
        let got = sign(&mut p, seq, action.clone()).map(|_| ()).map_err(|e| match e {
            DeviceError::Denied(v) => v,
            other => panic!("{other:?}"),
        });
        assert_eq!(got, expect, "{action}");
    };
    let set_uri = sample::action(ActionKind::SetAgentUri);
    check(base(), set_uri.clone(), Ok(()));

    // Kinds: blind kinds need naming even when every typed kind is allowed.
    for blind in [ActionKind::GenericTx, ActionKind::PersonalMessage, ActionKind::Eip712Prehashed] {
        check(base(), sample::action(blind), Err(V::KindNotAllowed));
        let mut p = base();
        p.kinds = p.kinds.with(blind);
        p.contracts = Allow::Any;
        p.max_value = U256([0xff; 32]);
        p.eip712_domains = Allow::Any;
        check(p, sample::action(blind), Ok(()));
    }

    // Pre-hashed typed data: only in the domains the policy names (the
    // identity registry's, say), even with its kind named; none by default.
    let Action::Eip712Prehashed(prehashed) = sample::action(ActionKind::Eip712Prehashed) else {
        unreachable!()
    };
    let mut p = base();
    p.kinds = p.kinds.with(ActionKind::Eip712Prehashed);
    check(p.clone(), Action::Eip712Prehashed(prehashed.clone()), Err(V::DomainNotAllowed));
    p.eip712_domains =
        Allow::Only(tee_core::heapless::Vec::from_slice(&[prehashed.domain_separator]).unwrap());
    check(p.clone(), Action::Eip712Prehashed(prehashed.clone()), Ok(()));
    let mut elsewhere = prehashed.clone();
    elsewhere.domain_separator.0[0] ^= 1;
    check(p, Action::Eip712Prehashed(elsewhere), Err(V::DomainNotAllowed));
    let mut p = base();
    p.kinds = KindSet::NONE.with(ActionKind::GiveFeedback);
    check(p, set_uri.clone(), Err(V::KindNotAllowed));

    // Chains.
    fn other_chain<'a>(a: &Action<'a>) -> Action<'a> {
        let mut a = a.clone();
        let Action::Transaction(t) = &mut a else { unreachable!() };
        let Envelope::Eip1559(p) = &mut t.envelope else { unreachable!() };
        p.chain_id = 1;
        a
    }
    check(base(), other_chain(&set_uri), Err(V::ChainNotAllowed));
    let mut p = base();
    p.chains = Allow::Any;
    check(p, other_chain(&set_uri), Ok(()));

    // Contracts.
    let mut to_other = set_uri.clone();
    if let Action::Transaction(Transaction { body: TxBody::Registry(t), .. }) = &mut to_other {
        t.registry = Address([0x42; 20]);
    }
    check(base(), to_other.clone(), Err(V::ContractNotAllowed));
    let mut p = base();
    p.contracts = Allow::Any;
    check(p, to_other, Ok(()));

    // Agents.
    let mut other_agent = set_uri.clone();
    if let Some(RegistryCall::SetAgentUri { agent_id, .. }) = other_agent.registry_call_mut() {
        *agent_id = U256::from_u64(43);
    }
    check(base(), other_agent.clone(), Err(V::AgentNotAllowed));
    let mut p = base();
    p.agents = Allow::Any;
    check(p, other_agent, Ok(()));
    // register() names no agent: the agent list does not apply.
    check(base(), sample::action(ActionKind::Register), Ok(()));

    // An agent's TaskReceipt: its chain, registry (the domain's contract)
    // and agent are the policy's, as any typed action's.
    let receipt = sample::action(ActionKind::TaskReceipt);
    check(base(), receipt.clone(), Ok(()));
    let receipt_with = |f: &dyn Fn(&mut tee_core::action::TaskReceipt)| {
        let mut a = receipt.clone();
        let Action::TaskReceipt(r) = &mut a else { unreachable!() };
        f(r);
        a
    };
    check(base(), receipt_with(&|r| r.chain_id = 1), Err(V::ChainNotAllowed));
    check(
        base(),
        receipt_with(&|r| r.identity_registry = Address([0x42; 20])),
        Err(V::ContractNotAllowed),
    );
    check(base(), receipt_with(&|r| r.agent_id = U256::from_u64(43)), Err(V::AgentNotAllowed));
    let mut no_receipts = base();
    no_receipts.kinds = KindSet::NONE.with(ActionKind::SetAgentUri);
    check(no_receipts, receipt, Err(V::KindNotAllowed));

    // Value, gas, fee.
    let mut generic = base();
    generic.kinds = generic.kinds.with(ActionKind::GenericTx);
    generic.contracts = Allow::Any;
    check(generic.clone(), sample::action(ActionKind::GenericTx), Err(V::ValueTooHigh));
    generic.max_value = sample::action(ActionKind::GenericTx).value();
    check(generic, sample::action(ActionKind::GenericTx), Ok(()));
    let mut p = base();
    p.max_gas_limit = 249_999;
    check(p, set_uri.clone(), Err(V::GasLimitTooHigh));
    let mut p = base();
    p.max_gas_limit = 250_000;
    check(p, set_uri.clone(), Ok(()));
    let mut p = base();
    p.max_fee_per_gas = 1_999_999_999;
    check(p, set_uri.clone(), Err(V::FeeTooHigh));

    // AgentWalletSet: wallet must be the signer, deadline inside the window.
    let (mut p, me) = ready(base());
    assert!(sign(&mut p, 1, wallet_set(me)).is_ok());
    let mut stranger = wallet_set(me);
    if let Action::AgentWalletSet(AgentWalletSet { new_wallet, .. }) = &mut stranger {
        *new_wallet = Address([0x42; 20]);
    }
    assert_eq!(sign(&mut p, 2, stranger), Err(DeviceError::Denied(V::WalletIsNotSigner)));
    let with_deadline = |d: u64| {
        let mut a = wallet_set(me);
        if let Action::AgentWalletSet(w) = &mut a {
            w.deadline = d;
        }
        a
    };
    // A time rule's refusal says the device's time it read: the client's
    // clock need not agree.
    let at = |violation| Err(DeviceError::DeniedAt { violation, device_time: NOW });
    assert_eq!(sign(&mut p, 3, with_deadline(NOW - 1)), at(V::DeadlineExpired));
    assert_eq!(sign(&mut p, 4, with_deadline(NOW + 301)), at(V::DeadlineTooFar));
    assert!(sign(&mut p, 5, with_deadline(NOW + 300)).is_ok());
    assert!(sign(&mut p, 6, with_deadline(NOW)).is_ok());
    // setAgentWallet transactions carry a deadline too.
    assert_eq!(sign(&mut p, 7, sample::action(ActionKind::SetAgentWallet)), at(V::DeadlineTooFar));
    // Without a clock, deadline rules refuse.
    let mut backend = MemBackend::new(1);
    backend.now = None;
    let mut p = open(backend);
    let pk = p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: base(), auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(sign(&mut p, 1, wallet_set(pk.address)), Err(DeviceError::Denied(V::NoClock)));
}

#[test]
fn rate_limit() {
    let mut policy = permissive();
    policy.rate_limit = Some(RateLimit { max: 2, window_secs: 60 });
    let (mut p, _) = ready(policy);
    let a = |n: u8| sample::with_nonce(sample::action(ActionKind::RevokeFeedback), u64::from(n));
    assert!(sign(&mut p, 1, a(1)).is_ok());
    assert!(sign(&mut p, 2, a(2)).is_ok());
    let limited = |device_time| {
        Err(DeviceError::DeniedAt { violation: PolicyViolation::RateLimited, device_time })
    };
    assert_eq!(sign(&mut p, 3, a(3)), limited(NOW));
    // A refused request does not burn its sequence.
    p.device.backend_mut().now = Some(NOW + 59);
    assert_eq!(sign(&mut p, 3, a(3)), limited(NOW + 59));
    p.device.backend_mut().now = Some(NOW + 60);
    assert!(sign(&mut p, 3, a(3)).is_ok());
    // Exact retries do not count against the limit.
    assert!(sign(&mut p, 3, a(3)).is_ok());
    assert!(sign(&mut p, 4, a(4)).is_ok());
}

/// A policy with an end refuses everything after it, with the device's
/// time, and everything where the device has no clock; the end is the
/// policy's own, so the admin's next policy starts afresh.
#[test]
fn a_policy_ends_at_its_valid_until() {
    let mut policy = permissive();
    policy.valid_until = NOW + 10;
    let (mut p, _) = ready(policy.clone());
    let a = |n: u8| sample::with_nonce(sample::action(ActionKind::RevokeFeedback), u64::from(n));
    assert!(sign(&mut p, 1, a(1)).is_ok());
    p.device.backend_mut().now = Some(NOW + 10);
    assert!(sign(&mut p, 2, a(2)).is_ok(), "valid through its last second");
    p.device.backend_mut().now = Some(NOW + 11);
    let ended =
        DeviceError::DeniedAt { violation: PolicyViolation::PolicyExpired, device_time: NOW + 11 };
    assert_eq!(sign(&mut p, 3, a(3)), Err(ended));
    // Every kind is refused; the exact retry of a signature made before
    // the end is still answered (it releases nothing new).
    assert_eq!(sign(&mut p, 3, wallet_set(Address([1; 20]))).map(|_| ()), Err(ended));
    assert!(sign(&mut p, 2, a(2)).is_ok(), "an exact retry releases nothing new");
    p.device.backend_mut().now = None;
    assert_eq!(sign(&mut p, 3, a(3)), Err(DeviceError::Denied(PolicyViolation::NoClock)));
    // The admin sets another policy: it signs again.
    p.device.backend_mut().now = Some(NOW + 11);
    policy.valid_until = NOW + 3_600;
    p.admin(SetPolicy { slot: 0, policy, auth: AdminAuth::UNSIGNED }).unwrap();
    assert!(sign(&mut p, 3, a(3)).is_ok());
}
