//! The token rules through the device, as an agent trying to move more
//! than its policy lets it would probe them: ERC-20 calls and EIP-3009
//! authorizations (x402) to tokens the policy does not name, above a
//! token's bound, to recipients it does not allow, unlimited approvals,
//! authorizations that pay from another account or outlive the deadline
//! rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;

use tee_core::action::{
    Envelope, GenericTx, TokenAuthorization, TokenCall, TokenTx, Transaction, TxBody,
};
use tee_core::heapless::Vec as HVec;
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, Address, U256};
use tee_testkit::sample;

const PAYEE: Address = sample::OWNER;
const STRANGER: Address = Address([0x5e; 20]);
const OTHER_TOKEN: Address = Address([0x70; 20]);
/// Five USDC (six decimals).
const MAX: u64 = 5_000_000;

/// Token kinds only, USDC with a bound of five, one recipient.
fn policy() -> Policy {
    let kinds = [
        ActionKind::TokenTransfer,
        ActionKind::TokenApprove,
        ActionKind::TokenTransferFrom,
        ActionKind::TransferWithAuthorization,
        ActionKind::ReceiveWithAuthorization,
    ];
    Policy {
        kinds: kinds.iter().fold(KindSet::NONE, |s, k| s.with(*k)),
        chains: Allow::Only(HVec::from_slice(&[sample::CHAIN_ID]).unwrap()),
        // The contracts list does not name the token: it is not what grants one.
        contracts: Allow::Only(HVec::from_slice(&[sample::IDENTITY_REGISTRY]).unwrap()),
        max_gas_limit: 300_000,
        max_fee_per_gas: 3_000_000_000,
        tokens: HVec::from_slice(&[TokenRule {
            token: sample::USDC,
            max_amount: U256::from_u64(MAX),
            cap: None,
        }])
        .unwrap(),
        recipients: Allow::Only(HVec::from_slice(&[PAYEE]).unwrap()),
        ..permissive()
    }
}

fn erc20(token: Address, call: TokenCall) -> Action<'static> {
    let Action::Transaction(mut t) = sample::action(ActionKind::TokenTransfer) else {
        unreachable!()
    };
    t.body = TxBody::Token(TokenTx { token, call });
    Action::Transaction(t)
}

fn transfer(to: Address, amount: u64) -> Action<'static> {
    erc20(sample::USDC, TokenCall::Transfer { to, amount: U256::from_u64(amount) })
}

/// The sample x402 payment of `value` from `from`, valid at NOW.
fn authorization(from: Address, value: u64) -> TokenAuthorization<'static> {
    let action =
        sample::made_valid(sample::action(ActionKind::TransferWithAuthorization), from, NOW);
    let Action::TokenAuthorization(mut a) = action else { unreachable!() };
    a.value = U256::from_u64(value);
    a
}

/// What the device answers `action` with, under `policy`: signed, or the
/// rule that refused.
fn verdict(policy: Policy, action: Action<'_>) -> Result<(), PolicyViolation> {
    let (mut p, _) = ready(policy);
    sign(&mut p, 1, action)
        .map(|_| ())
        .map_err(|e| e.violation().unwrap_or_else(|| panic!("{e:?}")))
}

#[test]
fn erc20_calls_go_only_to_named_tokens_within_their_bound_and_to_allowed_recipients() {
    use PolicyViolation as V;
    assert_eq!(verdict(policy(), transfer(PAYEE, MAX)), Ok(()));
    assert_eq!(verdict(policy(), transfer(PAYEE, MAX + 1)), Err(V::TokenAmountTooHigh));
    assert_eq!(verdict(policy(), transfer(STRANGER, 1)), Err(V::RecipientNotAllowed));
    let other = erc20(OTHER_TOKEN, TokenCall::Transfer { to: PAYEE, amount: U256::from_u64(1) });
    assert_eq!(verdict(policy(), other.clone()), Err(V::TokenNotAllowed));
    // Naming the token as a contract, or allowing any contract, grants nothing.
    let mut p = policy();
    p.contracts = Allow::Any;
    assert_eq!(verdict(p, other), Err(V::TokenNotAllowed));
    // transferFrom pays `to`: the recipient rule reads it, not `from`.
    let pull = |to| {
        let amount = U256::from_u64(1);
        erc20(sample::USDC, TokenCall::TransferFrom { from: STRANGER, to, amount })
    };
    assert_eq!(verdict(policy(), pull(PAYEE)), Ok(()));
    assert_eq!(verdict(policy(), pull(STRANGER)), Err(V::RecipientNotAllowed));
    // Any recipient, when the policy says so.
    let mut p = policy();
    p.recipients = Allow::Any;
    assert_eq!(verdict(p, transfer(STRANGER, 1)), Ok(()));
    // The envelope's rules still hold, and the kind must be allowed.
    let mut heavy = transfer(PAYEE, 1);
    if let Action::Transaction(Transaction { envelope: Envelope::Eip1559(e), .. }) = &mut heavy {
        e.gas_limit = 300_001;
    }
    assert_eq!(verdict(policy(), heavy), Err(V::GasLimitTooHigh));
    let mut p = policy();
    p.kinds = KindSet::NONE.with(ActionKind::TokenApprove);
    assert_eq!(verdict(p, transfer(PAYEE, 1)), Err(V::KindNotAllowed));
    // A legacy transaction of the same call is under the same rules.
    let legacy = sample::legacy(&transfer(PAYEE, MAX + 1)).unwrap();
    assert_eq!(verdict(policy(), legacy), Err(V::TokenAmountTooHigh));
}

#[test]
fn an_unlimited_approval_needs_the_policy_to_say_so() {
    use PolicyViolation as V;
    let approve = |spender, amount| erc20(sample::USDC, TokenCall::Approve { spender, amount });
    let unlimited = U256([0xff; 32]);
    assert_eq!(verdict(policy(), approve(PAYEE, U256::from_u64(MAX))), Ok(()));
    assert_eq!(verdict(policy(), approve(PAYEE, unlimited)), Err(V::UnlimitedApproval));
    // One below unlimited is a (very large) bounded approval.
    let mut almost = unlimited;
    almost.0[31] = 0xfe;
    assert_eq!(verdict(policy(), approve(PAYEE, almost)), Err(V::TokenAmountTooHigh));
    let mut p = policy();
    p.unlimited_approvals = true;
    assert_eq!(verdict(p.clone(), approve(PAYEE, unlimited)), Ok(()));
    assert_eq!(verdict(p.clone(), approve(PAYEE, almost)), Err(V::TokenAmountTooHigh));
    // The spender is a recipient: an unlimited approval to a stranger is not.
    assert_eq!(verdict(p, approve(STRANGER, unlimited)), Err(V::RecipientNotAllowed));
}

#[test]
fn an_x402_authorization_pays_from_the_signer_in_a_named_token_before_its_deadline() {
    use PolicyViolation as V;
    let (mut p, address) = ready(policy());
    let ok = authorization(address, MAX);
    let r = sign(&mut p, 1, Action::TokenAuthorization(ok)).unwrap();
    assert_eq!(r.signature.recover_address(&r.digest).unwrap(), address);
    assert_eq!(r.digest, Action::TokenAuthorization(ok).digest());

    let with = |f: &dyn Fn(&mut TokenAuthorization<'static>)| {
        let (mut p, address) = ready(policy());
        let mut a = authorization(address, 1);
        f(&mut a);
        sign(&mut p, 1, Action::TokenAuthorization(a))
            .map(|_| ())
            .map_err(|e| e.violation().unwrap())
    };
    assert_eq!(with(&|_| {}), Ok(()));
    assert_eq!(with(&|a| a.value = U256::from_u64(MAX + 1)), Err(V::TokenAmountTooHigh));
    assert_eq!(with(&|a| a.to = STRANGER), Err(V::RecipientNotAllowed));
    // An authorization from another account: its signature would move nothing.
    assert_eq!(with(&|a| a.from = STRANGER), Err(V::PayerIsNotSigner));
    // The token is the domain's verifying contract; another is not named.
    assert_eq!(with(&|a| a.token = OTHER_TOKEN), Err(V::TokenNotAllowed));
    assert_eq!(with(&|a| a.chain_id = 1), Err(V::ChainNotAllowed));
    // validBefore is the deadline: passed, or further ahead than the rule.
    assert_eq!(with(&|a| a.valid_before = NOW - 1), Err(V::DeadlineExpired));
    assert_eq!(with(&|a| a.valid_before = NOW + 301), Err(V::DeadlineTooFar));
    // A receive authorization is its own kind.
    let mut only_transfer = policy();
    only_transfer.kinds = KindSet::NONE.with(ActionKind::TransferWithAuthorization);
    let (mut p, address) = ready(only_transfer);
    let mut a = authorization(address, 1);
    a.kind = tee_core::action::AuthorizationKind::Receive;
    assert_eq!(
        sign(&mut p, 1, Action::TokenAuthorization(a)).unwrap_err().violation(),
        Some(V::KindNotAllowed)
    );
}

/// A typed ERC-20 call signs the very transaction a wallet would send with
/// the same calldata as a generic call: the type changes the policy, not
/// the bytes.
#[test]
fn a_token_call_signs_the_same_transaction_as_its_calldata() {
    for call in [
        TokenCall::Transfer { to: PAYEE, amount: U256::from_u64(7) },
        TokenCall::Approve { spender: PAYEE, amount: U256([0xff; 32]) },
        TokenCall::TransferFrom { from: STRANGER, to: PAYEE, amount: U256::from_u64(1) },
    ] {
        let typed = erc20(sample::USDC, call);
        let mut buf = [0u8; 100];
        let data = call.calldata(&mut buf).unwrap();
        let Action::Transaction(mut t) = typed.clone() else { unreachable!() };
        t.body = TxBody::Generic(GenericTx { to: sample::USDC, value: U256::ZERO, data });
        assert_eq!(typed.digest(), Action::Transaction(t).digest(), "{typed}");
    }
}

/// Twenty USDC a day for the token, and a wei cap beside it.
const DAY: u32 = 86_400;

fn capped_tokens() -> Policy {
    let mut p = policy();
    p.tokens[0].cap = Some(SpendCap { max: U256::from_u64(4 * MAX), window_secs: DAY });
    p.kinds = p.kinds.with(ActionKind::GenericTx);
    p.contracts = Allow::Any;
    p.max_value = U256::from_u64(1_000);
    p.spend_cap = Some(SpendCap { max: U256::from_u64(1_000), window_secs: DAY });
    p
}

fn refusal(remaining: u64, ends_in: u32) -> DeviceError {
    DeviceError::OverCap(CapRefusal::new(u128::from(remaining), ends_in))
}

fn reopen(
    p: tee_testkit::Pair<tee_testkit::MemBackend>,
) -> tee_testkit::Pair<tee_testkit::MemBackend> {
    let counter = p.admin_counter;
    let mut backend = p.device.into_backend();
    backend.restart();
    let device = tee_core::device::Device::open(backend, tee_testkit::config()).unwrap();
    let mut p = tee_testkit::Pair::new(device);
    p.admin_counter = counter;
    p
}

/// A token's cap is a window of its own, shared by every kind of token
/// action (a transfer, an approval, an x402 authorization) and apart from
/// wei's: over it by one unit is refused with what remains, a restart keeps
/// it, and a token without a cap is bounded per action only.
#[test]
fn a_token_cap_holds_to_the_unit_across_kinds_and_restarts() {
    let (mut p, address) = ready(capped_tokens());
    let mut seq = 0;
    let mut sign_next = |p: &mut tee_testkit::Pair<tee_testkit::MemBackend>, a: Action<'_>| {
        seq += 1;
        sign(p, seq, a)
    };
    sign_next(&mut p, transfer(PAYEE, MAX)).unwrap();
    let approve =
        erc20(sample::USDC, TokenCall::Approve { spender: PAYEE, amount: U256::from_u64(MAX) });
    sign_next(&mut p, approve).unwrap();
    sign_next(&mut p, Action::TokenAuthorization(authorization(address, MAX - 1))).unwrap();
    sign_next(&mut p, transfer(PAYEE, MAX)).unwrap();
    // Wei's window is another: a payment in wei does not touch the token's.
    sign_next(&mut p, sample::transfer(U256::from_u64(1_000), 99)).unwrap();
    // One unit left of twenty USDC: two are over by one.
    assert_eq!(sign_next(&mut p, transfer(PAYEE, 2)), Err(refusal(1, DAY)));
    let mut p = reopen(p);
    assert_eq!(sign_next(&mut p, transfer(PAYEE, 2)), Err(refusal(1, DAY)));
    let auth = Action::TokenAuthorization(authorization(address, 2));
    assert_eq!(sign_next(&mut p, auth), Err(refusal(1, DAY)));
    sign_next(&mut p, transfer(PAYEE, 1)).unwrap();
    assert_eq!(sign_next(&mut p, sample::transfer(U256::from_u64(1), 98)), Err(refusal(0, DAY)));
    // An unlimited approval never fits a capped token.
    let mut unlimited = capped_tokens();
    unlimited.unlimited_approvals = true;
    let (mut p, _) = ready(unlimited);
    let approve =
        erc20(sample::USDC, TokenCall::Approve { spender: PAYEE, amount: U256([0xff; 32]) });
    assert!(matches!(sign(&mut p, 1, approve), Err(DeviceError::OverCap(_))));
}

/// Power fails at every write step of a run of token payments; the device
/// restarts and the client goes on. The amounts released never add up to
/// more than the token's cap, and its durable window holds every one.
#[test]
fn no_power_loss_gives_a_token_reservation_back() {
    use tee_testkit::{MemBackend, Pair, PowerLoss};
    let cap = 4 * MAX;
    let payments = [MAX, 4_000_000, 3_000_000, 3_000_000, 2_000_000, 2_000_000, 1_500_000];
    let run = |fault: Option<(u64, PowerLoss)>| {
        let (p, _) = ready(capped_tokens());
        let setup = p.device.backend().write_steps;
        let mut backend = p.device.into_backend();
        backend.power_loss = fault.map(|(at, mode)| (setup + at, mode));
        let mut p =
            Pair::new(tee_core::device::Device::open(backend, tee_testkit::config()).unwrap());
        let (mut released, mut crashes) = (0u64, 0);
        for (i, &amount) in payments.iter().enumerate() {
            let sequence = i as u64 + 1;
            loop {
                let action = sample::with_nonce(transfer(PAYEE, amount), sequence);
                if sign(&mut p, sequence, action).is_ok() {
                    released += amount;
                }
                if !p.device.backend().dead {
                    break;
                }
                crashes += 1;
                p = reopen(p);
            }
        }
        let mut b: MemBackend = p.device.into_backend();
        b.restart();
        let usdc = sample::USDC;
        let window = tee_core::device::CounterStore::load_spend(&mut b, 0, Some(&usdc)).unwrap();
        (released, window.map_or(U256::ZERO, |w| w.spent), crashes)
    };
    let (clean, window, _) = run(None);
    assert_eq!((clean, window), (19_000_000, U256::from_u64(19_000_000)));
    let mut points = 0;
    for at in 0..16 {
        for mode in [PowerLoss::BeforeWrite, PowerLoss::AfterWrite] {
            let (released, reserved, crashes) = run(Some((at, mode)));
            assert!(released <= cap, "released {released} over the cap ({at}, {mode:?})");
            assert!(
                reserved >= U256::from_u64(released),
                "{released} > {reserved} ({at}, {mode:?})"
            );
            points += usize::from(crashes > 0);
        }
    }
    assert!(points >= 10, "the power failed inside the run: {points}");
}
