//! The device through real frames: every command, every error path, admin
//! authorization, anti-replay, the audit log, and persistence across
//! restarts (the policy rules are in `policy.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tee_core::binding::{self, Purpose};
use tee_core::client::decode_response;
use tee_core::device::audit_chain_hash;
use tee_core::frame::{self, FrameError, Header};
use tee_core::protocol::*;
use tee_core::{ActionKind, B256, Error, codec};
use tee_testkit::sample;
use tee_testkit::{DEVICE_ID, MemBackend, Pair};

mod common;
use common::*;

#[test]
fn device_info_and_echo() {
    let mut p = open(MemBackend::new(1));
    let info = p.call(&DeviceInfo).unwrap();
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    assert_eq!(info.backend, BackendKind::Simulated);
    assert_eq!(info.slots as usize, NUM_SLOTS);
    assert_eq!(info.device_id, DEVICE_ID);
    assert_eq!(info.admin, tee_testkit::config().admin);
    assert_ne!(info.capabilities & capability::ATTEST, 0);
    let data = tee_core::heapless::Vec::from_slice(b"ping\x00pong").unwrap();
    assert_eq!(p.call(&Echo { data: data.clone() }).unwrap(), Echo { data });
    let mcu = open(MemBackend::mcu(1)).call(&DeviceInfo).unwrap();
    assert_eq!(mcu.backend, BackendKind::Mcu);
    assert_eq!(mcu.capabilities, capability::GENERATE);
}

#[test]
fn every_sample_action_signs_and_recovers() {
    let (mut p, address) = ready(permissive());
    for (i, kind) in ActionKind::ALL.iter().copied().enumerate() {
        let action = sample::made_valid(sample::action(kind), address, NOW);
        let r = sign(&mut p, i as u64, action.clone()).unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        assert_eq!(r.digest, action.digest());
        assert_eq!(r.sequence, i as u64);
        assert_eq!(r.signature.recover_address(&r.digest).unwrap(), address);
    }
}

#[test]
fn slot_errors() {
    let mut p = open(MemBackend::new(1));
    assert_eq!(p.call(&GetPublicKey { slot: 0 }), Err(DeviceError::SlotEmpty));
    assert_eq!(p.call(&GetPublicKey { slot: NUM_SLOTS as u8 }), Err(DeviceError::NoSuchSlot));
    let action = sample::action(ActionKind::Register);
    assert_eq!(
        p.call(&Sign { slot: 0, sequence: 1, action: action.clone() }),
        Err(DeviceError::SlotEmpty)
    );
    assert_eq!(p.call(&Sign { slot: 200, sequence: 1, action }), Err(DeviceError::NoSuchSlot));
    assert_eq!(p.call(&GetPolicy { slot: 9 }), Err(DeviceError::NoSuchSlot));
    assert_eq!(
        p.admin(GenerateKey { slot: 8, replace: false, auth: AdminAuth::UNSIGNED }),
        Err(DeviceError::NoSuchSlot)
    );
    assert_eq!(
        p.admin(SetPolicy { slot: 3, policy: permissive(), auth: AdminAuth::UNSIGNED }),
        Err(DeviceError::SlotEmpty)
    );
    let challenge = B256([1; 32]);
    let payload = p.request(&Attest { slot: 2, challenge });
    assert_eq!(decode_response::<Attest>(&payload).unwrap().1, Err(DeviceError::SlotEmpty));
}

#[test]
fn fresh_key_is_deny_all_and_policy_reads_back() {
    let mut p = open(MemBackend::new(1));
    let pk = p.admin(GenerateKey { slot: 4, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(pk.origin, KeyOrigin::Generated);
    assert_eq!(pk.high_water, None);
    assert_eq!(p.call(&GetPublicKey { slot: 4 }).unwrap(), pk);
    // The public key and address agree.
    let k = tee_core::signer::PublicKey::from_sec1_bytes(&pk.public_key.0).unwrap();
    assert_eq!(k.address(), pk.address);
    assert_eq!(p.call(&GetPolicy { slot: 4 }).unwrap(), Policy::default());
    let r = p.call(&Sign { slot: 4, sequence: 0, action: sample::action(ActionKind::Register) });
    assert_eq!(r, Err(DeviceError::Denied(PolicyViolation::KindNotAllowed)));
    let set =
        p.admin(SetPolicy { slot: 4, policy: permissive(), auth: AdminAuth::UNSIGNED }).unwrap();
    let mut buf = [0u8; 1024];
    assert_eq!(
        set.policy_hash,
        tee_core::primitives::keccak256(codec::encode(&permissive(), &mut buf).unwrap())
    );
    assert_eq!(p.call(&GetPolicy { slot: 4 }).unwrap(), permissive());
}

#[test]
fn derived_keys_and_unsupported_backends() {
    let mut p = open(MemBackend::new(1));
    let path = tee_core::heapless::String::try_from("agents/42/wallet").unwrap();
    let a = p
        .admin(DeriveKey { slot: 1, path: path.clone(), replace: false, auth: AdminAuth::UNSIGNED })
        .unwrap();
    assert_eq!(a.origin, KeyOrigin::Derived(path.clone()));
    // Same path, same key; the slot survives a restart by derivation.
    let b =
        p.admin(DeriveKey { slot: 2, path, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(a.address, b.address);
    let mut p2 = open(p.device.into_backend());
    assert_eq!(p2.call(&GetPublicKey { slot: 1 }).unwrap().address, a.address);

    let mut mcu = open(MemBackend::mcu(1));
    let path = tee_core::heapless::String::try_from("x").unwrap();
    assert_eq!(
        mcu.admin(DeriveKey { slot: 0, path, replace: false, auth: AdminAuth::UNSIGNED }),
        Err(DeviceError::Unsupported)
    );
    mcu.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    let payload = mcu.request(&Attest { slot: 0, challenge: B256::ZERO });
    assert_eq!(decode_response::<Attest>(&payload).unwrap().1, Err(DeviceError::Unsupported));
}

#[test]
fn entropy_failure_is_typed_and_changes_nothing() {
    let mut backend = MemBackend::new(1);
    backend.rng_fails = true;
    let mut p = open(backend);
    assert_eq!(
        p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }),
        Err(DeviceError::Entropy)
    );
    assert_eq!(p.call(&GetPublicKey { slot: 0 }), Err(DeviceError::SlotEmpty));
}

#[test]
fn attest_binds_the_slot_address_and_challenge() {
    let (mut p, address) = ready(permissive());
    let challenge = B256([0x77; 32]);
    let payload = p.request(&Attest { slot: 0, challenge });
    let (_, r) = decode_response::<Attest>(&payload).unwrap();
    let r = r.unwrap();
    assert_eq!(r.address, address);
    assert_eq!(
        binding::check_binding(&r.report_data.0, &address, Purpose::Challenge, &challenge),
        Ok(())
    );
    assert_eq!(&r.quote[..8], b"SIMQUOTE");
    assert_eq!(&r.quote[8..], &r.report_data.0[..]);
}

#[test]
fn attest_action_binds_only_the_last_signed_digest() {
    let (mut p, address) = ready(permissive());
    let attest = |p: &mut Pair<MemBackend>, sequence, digest| {
        let payload = p.request(&AttestAction { slot: 0, sequence, digest });
        let (_, r) = decode_response::<AttestAction>(&payload).unwrap();
        r.map(|r| (r.address, r.report_data.0))
    };
    // Nothing signed yet: nothing to attest.
    assert_eq!(attest(&mut p, 0, B256::ZERO), Err(DeviceError::NotLastSigned));
    let first = sign(&mut p, 1, sample::action(ActionKind::Register)).unwrap();
    let (a, rd) = attest(&mut p, 1, first.digest).unwrap();
    assert_eq!(a, address);
    assert_eq!(binding::check_binding(&rd, &address, Purpose::ActionDigest, &first.digest), Ok(()));
    // A quote for an action is no challenge answer, and the other way round.
    assert!(binding::check_binding(&rd, &address, Purpose::Challenge, &first.digest).is_err());
    // A digest it did not sign, a wrong sequence, an older signature.
    assert_eq!(attest(&mut p, 1, B256([1; 32])), Err(DeviceError::NotLastSigned));
    assert_eq!(attest(&mut p, 2, first.digest), Err(DeviceError::NotLastSigned));
    let second = sign(&mut p, 2, sample::action(ActionKind::SetAgentUri)).unwrap();
    assert_eq!(attest(&mut p, 1, first.digest), Err(DeviceError::NotLastSigned));
    assert!(attest(&mut p, 2, second.digest).is_ok());
    // A new key in the slot keeps the mark but did not sign that digest.
    p.admin(GenerateKey { slot: 0, replace: true, auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(attest(&mut p, 2, second.digest), Err(DeviceError::NotLastSigned));
    // Refusals are audited.
    let log = p.call(&GetAuditLog { from: 0 }).unwrap();
    let refused = log
        .entries
        .iter()
        .filter(|e| e.command == AttestAction::CODE)
        .filter(|e| e.outcome == Outcome::Refused(DeviceError::NotLastSigned))
        .count();
    assert!(refused >= 1);
    let payload = p.request(&AttestAction { slot: 9, sequence: 0, digest: B256::ZERO });
    let (_, r) = decode_response::<AttestAction>(&payload).unwrap();
    assert_eq!(r.map(|_| ()), Err(DeviceError::NoSuchSlot));
}

#[test]
fn evidence_is_paged_from_the_backend() {
    let mut p = open(MemBackend::new(1));
    let path = tee_core::heapless::String::try_from("agents/42/wallet").unwrap();
    p.admin(DeriveKey { slot: 1, path, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(GenerateKey { slot: 2, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    let evidence = |p: &mut Pair<MemBackend>, slot, part, offset| {
        let payload = p.request(&GetEvidence { slot, part, offset });
        let (_, r) = decode_response::<GetEvidence>(&payload).unwrap();
        r.map(|c| (c.total, c.data.to_vec()))
    };
    let chain = b"CHAIN:agents/42/wallet".to_vec();
    assert_eq!(evidence(&mut p, 1, EvidencePart::KeyChain, 0), Ok((22, chain.clone())));
    assert_eq!(evidence(&mut p, 1, EvidencePart::KeyChain, 6), Ok((22, chain[6..].to_vec())));
    assert_eq!(evidence(&mut p, 1, EvidencePart::KeyChain, 22), Ok((22, vec![])));
    assert_eq!(evidence(&mut p, 1, EvidencePart::KeyChain, u32::MAX), Ok((22, vec![])));
    // A generated key has no chain; an empty slot has nothing.
    assert_eq!(evidence(&mut p, 2, EvidencePart::KeyChain, 0), Err(DeviceError::Unsupported));
    assert_eq!(evidence(&mut p, 3, EvidencePart::KeyChain, 0), Err(DeviceError::SlotEmpty));
    assert_eq!(evidence(&mut p, 99, EvidencePart::EventLog, 0), Err(DeviceError::NoSuchSlot));
    // The event log comes with a quote.
    assert_eq!(evidence(&mut p, 1, EvidencePart::EventLog, 0), Err(DeviceError::Backend));
    p.request(&Attest { slot: 1, challenge: B256::ZERO });
    assert_eq!(evidence(&mut p, 1, EvidencePart::EventLog, 0), Ok((8, b"EVENTLOG".to_vec())));
    let mut mcu = open(MemBackend::mcu(1));
    mcu.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(evidence(&mut mcu, 0, EvidencePart::EventLog, 0), Err(DeviceError::Unsupported));
}

#[test]
fn anti_replay() {
    let (mut p, _) = ready(permissive());
    let a = sample::action(ActionKind::SetAgentUri);
    let b = sample::action(ActionKind::GiveFeedback);
    let first = sign(&mut p, 10, a.clone()).unwrap();
    // Exact retry: same signature, nothing new committed.
    assert_eq!(sign(&mut p, 10, a.clone()).unwrap(), first);
    // Same sequence, different action.
    assert_eq!(sign(&mut p, 10, b.clone()), Err(DeviceError::Replay { high_water: 10 }));
    // Lower sequence, even with the same action.
    assert_eq!(sign(&mut p, 9, a.clone()), Err(DeviceError::Replay { high_water: 10 }));
    assert_eq!(sign(&mut p, 0, b.clone()), Err(DeviceError::Replay { high_water: 10 }));
    // Gaps are fine.
    let second = sign(&mut p, 1000, b.clone()).unwrap();
    // The old retry is no longer the last signed action.
    assert_eq!(sign(&mut p, 10, a.clone()), Err(DeviceError::Replay { high_water: 1000 }));
    assert_eq!(p.call(&GetPublicKey { slot: 0 }).unwrap().high_water, Some(1000));
    // After a restart: the mark holds, and the exact retry still works.
    let mut p = open(p.device.into_backend());
    assert_eq!(sign(&mut p, 1000, b.clone()).unwrap(), second);
    assert_eq!(sign(&mut p, 999, a), Err(DeviceError::Replay { high_water: 1000 }));
    // A new key in the slot keeps the mark: (slot, sequence) stays unique.
    // (The device remembers the admin counter across the restart.)
    p.admin_counter = 3;
    p.admin(GenerateKey { slot: 0, replace: true, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: permissive(), auth: AdminAuth::UNSIGNED }).unwrap();
    assert_eq!(sign(&mut p, 1000, b), Err(DeviceError::Replay { high_water: 1000 }));
}

#[test]
fn audit_log_is_a_verifiable_chain() {
    let (mut p, _) = ready(permissive());
    let a = sample::action(ActionKind::RevokeFeedback);
    sign(&mut p, 1, a.clone()).unwrap();
    sign(&mut p, 1, a.clone()).unwrap();
    let _ = sign(&mut p, 0, a.clone());
    let log = p.call(&GetAuditLog { from: 0 }).unwrap();
    // boot, generate, set policy, sign, retry, replay refused.
    let outcomes: Vec<_> = log.entries.iter().map(|e| (e.command, e.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (0, Outcome::Ok),
            (GenerateKey::CODE, Outcome::Ok),
            (SetPolicy::CODE, Outcome::Ok),
            (Sign::CODE, Outcome::Ok),
            (Sign::CODE, Outcome::Retry),
            (Sign::CODE, Outcome::Refused(DeviceError::Replay { high_water: 1 })),
        ]
    );
    assert_eq!(log.entries[3].digest, a.digest());
    let folded = log.entries.iter().fold(log.prev_hash, |h, e| audit_chain_hash(&h, e));
    assert_eq!(folded, log.head_hash);
    assert_eq!(log.prev_hash, B256::ZERO);
    // An edited entry breaks the chain.
    let mut edited = log.entries.clone();
    edited[3].sequence = 2;
    assert_ne!(edited.iter().fold(log.prev_hash, |h, e| audit_chain_hash(&h, e)), log.head_hash);

    // Past the RAM ring, a backend that keeps the chain serves the older
    // entries: every batch from 0 joins the next, up to the head.
    for s in 2..40 {
        sign(&mut p, s, a.clone()).unwrap();
    }
    let walk = |p: &mut Pair<MemBackend>, from: u64| {
        let first = p.call(&GetAuditLog { from }).unwrap();
        let mut hash = first.entries.iter().fold(first.prev_hash, |h, e| audit_chain_hash(&h, e));
        let mut next = first.entries.last().unwrap().index + 1;
        while next < first.next_index {
            let batch = p.call(&GetAuditLog { from: next }).unwrap();
            assert_eq!(batch.prev_hash, hash, "batches join");
            hash = batch.entries.iter().fold(hash, |h, e| audit_chain_hash(&h, e));
            next = batch.entries.last().unwrap().index + 1;
        }
        assert_eq!(hash, first.head_hash);
        first
    };
    let first = walk(&mut p, 0);
    assert_eq!((first.oldest_kept, first.entries[0].index), (0, 0));
    // Reading moves nothing for other readers: the same question, the same answer.
    assert_eq!(
        p.call(&GetAuditLog { from: 3 }).unwrap(),
        p.call(&GetAuditLog { from: 3 }).unwrap()
    );

    // The chain goes on across a restart: the boot entry follows the last.
    let head = first.head_hash;
    let next = first.next_index;
    let backend = p.device.into_backend();
    let mut p = open(backend);
    let log = p.call(&GetAuditLog { from: next }).unwrap();
    assert_eq!((log.prev_hash, log.entries[0].index, log.entries[0].command), (head, next, 0));

    // A board that keeps no chain (RAM only): old entries are gone, and
    // the answer says where the kept part starts.
    let mut backend = MemBackend::mcu(1);
    backend.now = Some(NOW);
    let mut m = open(backend);
    m.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    m.admin(SetPolicy { slot: 0, policy: permissive(), auth: AdminAuth::UNSIGNED }).unwrap();
    for s in 1..40 {
        sign(&mut m, s, a.clone()).unwrap();
    }
    let first = walk(&mut m, 0);
    assert!(
        first.oldest_kept > 6 && first.entries[0].index == first.oldest_kept,
        "old entries are gone"
    );
}

#[test]
fn malformed_requests_get_typed_errors_with_the_request_id() {
    let (mut p, _) = ready(permissive());
    let send = |p: &mut Pair<MemBackend>, header: Header, body: &[u8]| {
        let mut out = [0u8; 4096];
        let f = frame::encode_raw(&header, body, &mut out).unwrap().to_vec();
        let mut r = p.send_raw(&f);
        assert_eq!(r.len(), 1);
        r.pop().unwrap()
    };
    let h = |command: u8| Header { version: PROTOCOL_VERSION, command, request_id: 77 };
    let err = |payload: &[u8]| -> (Header, DeviceError) {
        let (h, body) = Header::split(payload).unwrap();
        (h, codec::decode::<Result<(), DeviceError>>(body).unwrap().unwrap_err())
    };
    // Unknown command.
    let (rh, e) = err(&send(&mut p, h(0xee), &[]));
    assert_eq!((rh.request_id, rh.command, e), (77, 0xee, DeviceError::UnknownCommand));
    // Wrong version: answered in this device's version.
    let (rh, e) = err(&send(&mut p, Header { version: 0x7f, ..h(DeviceInfo::CODE) }, &[]));
    assert_eq!(
        (rh.version, e),
        (PROTOCOL_VERSION, DeviceError::UnsupportedVersion { supported: PROTOCOL_VERSION })
    );
    // Trailing bytes, truncation, non-minimal varint, unknown action tag, over-long echo.
    assert_eq!(
        err(&send(&mut p, h(DeviceInfo::CODE), &[0])).1,
        DeviceError::Malformed(Error::TrailingBytes)
    );
    assert_eq!(
        err(&send(&mut p, h(GetPublicKey::CODE), &[])).1,
        DeviceError::Malformed(Error::Truncated)
    );
    assert_eq!(
        err(&send(&mut p, h(GetAuditLog::CODE), &[0x80, 0x00])).1,
        DeviceError::Malformed(Error::NonCanonical)
    );
    assert_eq!(
        err(&send(&mut p, h(Sign::CODE), &[0, 1, 0x09])).1,
        DeviceError::Malformed(Error::UnknownVariant)
    );
    assert_eq!(
        err(&send(&mut p, h(Sign::CODE), &[0, 0x81, 0x00, 0x03, 0x00])).1,
        DeviceError::Malformed(Error::NonCanonical)
    );
    let mut long = vec![0x81, 0x02];
    long.extend_from_slice(&[1; 257]);
    assert_eq!(err(&send(&mut p, h(Echo::CODE), &long)).1, DeviceError::Malformed(Error::TooLong));
    // Nothing above changed the device.
    assert_eq!(p.call(&GetPublicKey { slot: 0 }).unwrap().high_water, None);
}

#[test]
fn frame_errors_are_answered_with_request_id_zero() {
    let mut p = open(MemBackend::new(1));
    let mut buf = [0u8; 256];
    let good = tee_core::client::encode_request(5, &DeviceInfo, &mut buf).unwrap().to_vec();
    let mut bad = good.clone();
    bad[3] ^= 0x40; // a header byte; stays non-zero, so the frame stays one frame
    let r = p.send_raw(&bad);
    assert_eq!(r.len(), 1);
    let (h, body) = Header::split(&r[0]).unwrap();
    assert_eq!((h.request_id, h.command), (0, 0));
    let e = codec::decode::<Result<(), DeviceError>>(body).unwrap();
    assert!(
        matches!(e, Err(DeviceError::Frame(FrameError::BadCrc | FrameError::BadCobs))),
        "{e:?}"
    );
    // The next good frame is answered normally.
    assert_eq!(p.send_raw(&good).len(), 1);
}

/// `sign_claim` (what a host with shared marks claims before the device
/// commits) says what a `Sign` would claim only when the device would sign
/// it as a new mark, and consumes nothing: the rate window, the marks and
/// the audit log are as before, however often it is asked.
#[test]
fn sign_claim_answers_without_consuming_anything() {
    fn claim(p: &mut Pair<MemBackend>, payload: &[u8]) -> Option<tee_core::device::SignClaim> {
        match tee_core::device::Incoming::read(Ok(payload)) {
            tee_core::device::Incoming::Sign(s) => p.device.sign_claim(&s),
            _ => None,
        }
    }
    fn payload<C: Command>(cmd: &C) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_REQUEST_WIRE];
        let wire = tee_core::client::encode_request(7, cmd, &mut buf).unwrap().to_vec();
        let mut acc = frame::Accumulator::<MAX_REQUEST_FRAME>::new();
        let mut input = &wire[..];
        loop {
            let (frame, rest) = acc.feed(input);
            if let Some(frame) = frame {
                return frame.unwrap().to_vec();
            }
            input = rest;
        }
    }
    let mut policy = permissive();
    policy.rate_limit = Some(RateLimit { max: 1, window_secs: 60 });
    let (mut p, address) = ready(policy);
    let action = wallet_set(address);
    let req = Sign { slot: 0, sequence: 5, action: action.clone() };
    let audit_before = p.call(&GetAuditLog { from: 0 }).unwrap().next_index;
    for _ in 0..3 {
        let claim = claim(&mut p, &payload(&req)).unwrap();
        assert_eq!(
            (claim.signer, claim.sequence, claim.commitment),
            (address, 5, tee_core::device::retry_commitment(&address, &action.digest()))
        );
    }
    assert_eq!(p.call(&GetAuditLog { from: 0 }).unwrap().next_index, audit_before);
    assert_eq!(p.call(&GetPublicKey { slot: 0 }).unwrap().high_water, None);
    // The one signature the rate limit allows is still there.
    sign(&mut p, 5, action.clone()).unwrap();
    // Now: a retry, a replay, the rate limit, another slot or command: no claim.
    let other = Sign { slot: 0, sequence: 6, action: action.clone() };
    for (what, cmd) in [
        ("exact retry", req.clone()),
        ("replay", Sign { slot: 0, sequence: 4, action: action.clone() }),
        ("rate limited", other.clone()),
        ("empty slot", Sign { slot: 3, sequence: 9, action: action.clone() }),
    ] {
        assert_eq!(claim(&mut p, &payload(&cmd)), None, "{what}");
    }
    assert_eq!(claim(&mut p, &payload(&DeviceInfo)), None, "another command");
    assert_eq!(claim(&mut p, b"\x00\x01garbage"), None, "garbage");
}
