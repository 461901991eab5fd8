//! m-of-n approvals through the device, as an agent that wants an action
//! the policy holds for approval signed without them would try it:
//! no approvals, too few, one approver twice, strangers, approvals of
//! another action, sequence, key or expiry, expired and too long-lived
//! ones, replays, malformed bytes; and as an admin would get the rule
//! wrong (no threshold, more than the approvers, no clock to bound them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;

use tee_core::heapless::Vec as HVec;
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, Address, Error, SigningKey};
use tee_testkit::{MemBackend, Pair, sample};

/// Approvers A, B and C; a stranger S.
fn keys() -> [SigningKey; 4] {
    [[0xa1; 32], [0xa2; 32], [0xa3; 32], [0x5e; 32]].map(|k| SigningKey::from_bytes(&k).unwrap())
}

const TTL: u32 = 3600;

/// `permissive()` with 2 of A, B, C for `setAgentURI` and for
/// transactions above 0.001 ETH (the sample generic transaction carries 0.01).
fn policy() -> Policy {
    let [a, b, c, _] = keys();
    Policy {
        approvals: Some(ApprovalRule {
            approvers: HVec::from_slice(&[a.address(), b.address(), c.address()]).unwrap(),
            threshold: 2,
            kinds: KindSet::NONE.with(ActionKind::SetAgentUri),
            above_value: Some(tee_core::U256::from_u64(1_000_000_000_000_000)),
            above_amount: Some(tee_core::U256::from_u64(1_000_000)),
            max_ttl_secs: TTL,
        }),
        ..permissive()
    }
}

fn approvals(
    by: &[&SigningKey],
    signer: &Address,
    seq: u64,
    action: &Action<'_>,
    exp: u64,
) -> Vec<u8> {
    let approval = approval_action(signer, seq, &action.digest(), exp);
    by.iter().flat_map(|k| k.sign(&approval).unwrap().signature.to_bytes()).collect()
}

fn sign_approved(
    p: &mut Pair<MemBackend>,
    sequence: u64,
    expires: u64,
    approvals: &[u8],
    action: Action<'_>,
) -> Result<SignResponse, DeviceError> {
    p.call(&SignApproved { slot: 0, sequence, expires, approvals, action })
}

fn need(have: u8) -> DeviceError {
    DeviceError::ApprovalRequired(ApprovalNeed {
        have,
        need: 2,
        expires_by_be: (NOW + u64::from(TTL)).to_be_bytes(),
    })
}

#[test]
fn flagged_actions_wait_for_two_of_three_and_nothing_less() {
    let (mut p, signer) = ready(policy());
    let [a, b, c, stranger] = keys();
    let uri = sample::action(ActionKind::SetAgentUri);
    let exp = NOW + 600;
    let ok = |by: &[&SigningKey]| approvals(by, &signer, 1, &uri, exp);

    // No approvals: refused, saying how many must and until when.
    assert_eq!(sign(&mut p, 1, uri.clone()), Err(need(0)));
    assert_eq!(sign_approved(&mut p, 1, exp, &[], uri.clone()), Err(need(0)));
    // One, one twice, one and a stranger: still one.
    assert_eq!(sign_approved(&mut p, 1, exp, &ok(&[&a]), uri.clone()), Err(need(1)));
    assert_eq!(sign_approved(&mut p, 1, exp, &ok(&[&a, &a]), uri.clone()), Err(need(1)));
    assert_eq!(sign_approved(&mut p, 1, exp, &ok(&[&a, &stranger]), uri.clone()), Err(need(1)));
    assert_eq!(
        sign_approved(&mut p, 1, exp, &ok(&[&stranger, &stranger]), uri.clone()),
        Err(need(0))
    );
    // Approvals of another action, sequence, key or expiry count nothing.
    let other = sample::action(ActionKind::Register);
    let wrong = [
        approvals(&[&a, &b], &signer, 1, &other, exp),
        approvals(&[&a, &b], &signer, 2, &uri, exp),
        approvals(&[&a, &b], &stranger.address(), 1, &uri, exp),
        approvals(&[&a, &b], &signer, 1, &uri, exp + 1),
    ];
    for w in &wrong {
        assert_eq!(sign_approved(&mut p, 1, exp, w, uri.clone()), Err(need(0)));
    }
    // Bytes that are no signature (zero, high s, a bad v) count nothing.
    let mut junk = ok(&[&a]);
    junk.extend_from_slice(&[0; 65]);
    assert_eq!(sign_approved(&mut p, 1, exp, &junk, uri.clone()), Err(need(1)));
    let mut bad_v = ok(&[&a, &b]);
    bad_v[129] = 29;
    assert_eq!(sign_approved(&mut p, 1, exp, &bad_v, uri.clone()), Err(need(1)));
    // Expired, or living longer than the rule allows.
    let late = approvals(&[&a, &b], &signer, 1, &uri, NOW - 1);
    let at = |violation| DeviceError::DeniedAt { violation, device_time: NOW };
    assert_eq!(
        sign_approved(&mut p, 1, NOW - 1, &late, uri.clone()),
        Err(at(PolicyViolation::ApprovalExpired))
    );
    let far = NOW + u64::from(TTL) + 1;
    let long = approvals(&[&a, &b], &signer, 1, &uri, far);
    assert_eq!(
        sign_approved(&mut p, 1, far, &long, uri.clone()),
        Err(at(PolicyViolation::ApprovalTooLong))
    );
    // Nothing above spent the sequence: two approvers (B and C) sign it.
    let r = sign_approved(&mut p, 1, exp, &ok(&[&c, &b]), uri.clone()).unwrap();
    assert_eq!((r.sequence, r.digest), (1, uri.digest()));
    assert_eq!(r.signature.recover_address(&r.digest).unwrap(), signer);
    // Audited as approved, by B and C.
    let mut log = Vec::new();
    while let Some(page) = Some(p.call(&GetAuditLog { from: log.len() as u64 }).unwrap())
        .filter(|page| !page.entries.is_empty())
    {
        log.extend(page.entries);
    }
    let last = log.last().unwrap();
    assert_eq!(
        (last.command, last.sequence, last.digest, last.outcome),
        (SignApproved::CODE, 1, uri.digest(), Outcome::Approved(0b110))
    );
    let refused = log.iter().filter(|e| e.outcome == Outcome::Refused(need(1))).count();
    assert!(refused >= 3, "the refusals are audited too");
}

#[test]
fn an_approval_signs_once() {
    let (mut p, signer) = ready(policy());
    let [a, b, ..] = keys();
    let uri = sample::action(ActionKind::SetAgentUri);
    let exp = NOW + 600;
    let two = approvals(&[&a, &b], &signer, 5, &uri, exp);
    let first = sign_approved(&mut p, 5, exp, &two, uri.clone()).unwrap();
    // The same request again: the exact retry, the same signature (nothing new).
    assert_eq!(sign_approved(&mut p, 5, exp, &two, uri.clone()), Ok(first));
    // At the next sequence the approvals name the wrong one.
    assert_eq!(sign_approved(&mut p, 6, exp, &two, uri.clone()), Err(need(0)));
    // Another action at their sequence is a replay, approvals or not.
    let other = sample::action(ActionKind::UnsetAgentWallet);
    let replay = DeviceError::Replay { high_water: 5 };
    assert_eq!(sign_approved(&mut p, 5, exp, &two, other.clone()), Err(replay));
    // Unflagged actions need none, with a plain Sign or with approvals.
    assert!(sign(&mut p, 6, other.clone()).is_ok());
    assert!(sign_approved(&mut p, 7, exp, &two, sample::action(ActionKind::Register)).is_ok());
}

#[test]
fn approvals_lift_no_other_rule() {
    let [a, b, ..] = keys();
    let (mut p, signer) = ready(Policy { max_value: tee_core::U256::from_u64(1), ..policy() });
    let tx = sample::action(ActionKind::GenericTx);
    let exp = NOW + 60;
    // Flagged by value (0.01 ETH above 0.001) and over max_value: the
    // policy's refusal, whatever the approvals.
    let two = approvals(&[&a, &b], &signer, 1, &tx, exp);
    assert_eq!(
        sign_approved(&mut p, 1, exp, &two, tx.clone()),
        Err(DeviceError::Denied(PolicyViolation::ValueTooHigh))
    );
    // Within max_value, flagged by value: approvals then sign it.
    let (mut p, signer) = ready(policy());
    assert_eq!(sign(&mut p, 1, tx.clone()), Err(need(0)));
    let two = approvals(&[&a, &b], &signer, 1, &tx, exp);
    assert!(sign_approved(&mut p, 1, exp, &two, tx).is_ok());
    // A token amount above `above_amount`, and an unlimited approval.
    for kind in [ActionKind::TokenTransfer, ActionKind::TokenApprove] {
        let Action::Transaction(mut t) = sample::action(kind) else { unreachable!() };
        let tee_core::action::TxBody::Token(token) = &mut t.body else { unreachable!() };
        token.call = match token.call {
            tee_core::action::TokenCall::Transfer { to, .. } => {
                tee_core::action::TokenCall::Transfer {
                    to,
                    amount: tee_core::U256::from_u64(1_000_001),
                }
            }
            tee_core::action::TokenCall::Approve { spender, .. } => {
                tee_core::action::TokenCall::Approve { spender, amount: tee_core::U256([0xff; 32]) }
            }
            other => other,
        };
        let action = Action::Transaction(t);
        let mut p2 = ready(Policy { unlimited_approvals: true, ..policy() }).0;
        assert_eq!(sign(&mut p2, 1, action), Err(need(0)), "{kind}");
    }
}

#[test]
fn an_approval_rule_must_be_meetable_and_timed() {
    let (mut p, _) = ready(Policy::default());
    let mut bad = policy();
    for threshold in [0, 4] {
        bad.approvals.as_mut().unwrap().threshold = threshold;
        assert_eq!(
            p.admin(SetPolicy { slot: 0, policy: bad.clone(), auth: AdminAuth::UNSIGNED }),
            Err(DeviceError::Malformed(Error::Malformed)),
            "{threshold}"
        );
    }
    // A microcontroller has no clock to bound an approval's life.
    let mut mcu = open(MemBackend::mcu(1));
    mcu.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(
        mcu.admin(SetPolicy { slot: 0, policy: policy(), auth: AdminAuth::UNSIGNED }),
        Err(DeviceError::Unsupported)
    );
    // More approvals than approvers, or a torn one: malformed requests.
    let (mut p, _) = ready(policy());
    let uri = sample::action(ActionKind::SetAgentUri);
    assert_eq!(
        sign_approved(&mut p, 1, NOW, &[0; 4 * 65], uri.clone()),
        Err(DeviceError::Malformed(Error::TooLong))
    );
    assert_eq!(
        sign_approved(&mut p, 1, NOW, &[0; 64], uri),
        Err(DeviceError::Malformed(Error::Malformed))
    );
    // The rule survives a restart.
    let mut p = open(p.device.into_backend());
    assert_eq!(p.call(&GetPolicy { slot: 0 }).unwrap(), policy());
}

/// The payload of the first frame on `wire`.
fn unframe<const N: usize>(wire: &[u8]) -> Vec<u8> {
    let mut acc = tee_core::frame::Accumulator::<N>::new();
    let mut input = wire;
    loop {
        let (frame, rest) = acc.feed(input);
        if let Some(frame) = frame {
            return frame.unwrap().to_vec();
        }
        assert!(!rest.is_empty(), "a whole frame");
        input = rest;
    }
}

/// A `SignApproved` as a host reads it (decoded once, borrowing `payload`).
fn decoded(payload: &[u8]) -> tee_core::device::DecodedSign<'_> {
    match tee_core::device::Incoming::read(Ok(payload)) {
        tee_core::device::Incoming::Sign(s) => s,
        _ => panic!("a SignApproved"),
    }
}

/// The device's answer to `s`, begun as a host begins it.
fn answer(
    p: &mut Pair<MemBackend>,
    s: tee_core::device::DecodedSign<'_>,
) -> Result<SignResponse, DeviceError> {
    use tee_core::device::{Incoming, Step};
    let mut out = vec![0u8; MAX_RESPONSE_WIRE];
    let reply = match p.device.begin_incoming(Incoming::Sign(s), &mut out) {
        Step::Sign(pending) => pending.finish(&mut out),
        Step::Done(reply) => reply,
        Step::Quote(_) => panic!("no quote"),
    };
    let len = reply.release(Ok(()), &mut out);
    let frame = unframe::<MAX_RESPONSE_FRAME>(&out[..len]);
    let (_, body) = tee_core::frame::Header::split(&frame).unwrap();
    tee_core::codec::decode::<Result<SignResponse, DeviceError>>(body).unwrap()
}

/// A `SignApproved` read by a host: the host recovers its approvals outside
/// the device's lock, for the key the slot holds then
/// ([`tee_core::device::DecodedSign::recover_approvals`]), and the device
/// counts what it recovered. Recovered for any other key (one the host
/// chose, or the slot's before an admin replaced it in between), they
/// count for nothing: the device recovers them again for the key that
/// signs, so nothing recovered elsewhere lets an approval for one key
/// approve another's action.
#[test]
fn approvals_recovered_outside_the_lock_count_only_for_the_key_that_signs() {
    /// Recovers `payload`'s approvals for `recover_for` (or for the slot's
    /// key, as the host does), then has the device answer.
    fn host(
        p: &mut Pair<MemBackend>,
        payload: &[u8],
        recover_for: Option<Address>,
    ) -> Result<SignResponse, DeviceError> {
        let mut s = decoded(payload);
        assert!(s.has_approvals());
        let signer = recover_for.or_else(|| p.device.approvals_signer(&s));
        s.recover_approvals(&signer.unwrap());
        answer(p, s)
    }
    let (mut p, signer) = ready(policy());
    let [a, b, _, stranger] = keys();
    let uri = sample::action(ActionKind::SetAgentUri);
    let exp = NOW + 600;
    let req = |seq, approvals: &[u8]| {
        let action = uri.clone();
        let cmd = SignApproved { slot: 0, sequence: seq, expires: exp, approvals, action };
        let mut buf = vec![0u8; MAX_REQUEST_WIRE];
        let wire = tee_core::client::encode_request(7, &cmd, &mut buf).unwrap().to_vec();
        unframe::<MAX_REQUEST_FRAME>(&wire)
    };

    // The key the approvals must name is the slot's.
    assert_eq!(p.device.approvals_signer(&decoded(&req(1, &[]))), Some(signer));
    // Recovered for the slot's key: counted, and signed.
    let ok1 = approvals(&[&a, &b], &signer, 1, &uri, exp);
    assert!(host(&mut p, &req(1, &ok1), None).is_ok());

    // Approvals of an action for the stranger's key, recovered for the
    // stranger's key (what a lying host would pass): the device recovers
    // them again for the slot's key, and they name nobody.
    let theirs = approvals(&[&a, &b], &stranger.address(), 2, &uri, exp);
    assert_eq!(host(&mut p, &req(2, &theirs), Some(stranger.address())), Err(need(0)));
    // Genuine approvals recovered for another key are recovered again:
    // they count for the key that signs.
    let ok2 = approvals(&[&a, &b], &signer, 2, &uri, exp);
    assert!(host(&mut p, &req(2, &ok2), Some(stranger.address())).is_ok());

    // Recovered for the slot's key, then the admin replaces the key before
    // the device answers: the approvals named the old key and count
    // nothing for the new one.
    let payload3 = req(3, &approvals(&[&a, &b], &signer, 3, &uri, exp));
    let mut s = decoded(&payload3);
    s.recover_approvals(&signer);
    p.admin(GenerateKey { slot: 0, replace: true, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: policy(), auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(answer(&mut p, s), Err(need(0)));
}
