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
