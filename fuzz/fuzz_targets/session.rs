//! Whole device sessions: the input is read as a sequence of operations
//! (admin-signed key and policy changes, signing requests with colliding
//! sequences, raw frames, attestations, clock moves, power losses), all
//! through real frames. After every response: no two different signatures
//! for one (slot, sequence), every signature verifies for its slot, and no
//! slot's durable spend window holds more than the cap.
#![no_main]

use std::collections::{HashMap, HashSet};

use libfuzzer_sys::fuzz_target;
use tee_core::client::decode_response;
use tee_core::device::Device;
use tee_core::protocol::*;
use tee_core::{Action, ActionKind, Signature};
use tee_testkit::sample;
use tee_testkit::{MemBackend, Pair, PowerLoss};

struct Input<'a>(&'a [u8]);

/// `cmd` as the std server serves it: the frame read once, the approvals
/// recovered outside the device for `recover_for` (`None`: the slot's key,
/// as the server does), then begun and finished.
fn as_host(
    p: &mut Pair<MemBackend>,
    cmd: &SignApproved<'_>,
    recover_for: Option<tee_core::Address>,
) -> Result<SignResponse, DeviceError> {
    use tee_core::device::{Incoming, Step};
    use tee_core::frame::{Accumulator, Header};
    fn unframe<const N: usize>(wire: &[u8]) -> Vec<u8> {
        let mut acc = Accumulator::<N>::new();
        let mut input = wire;
        loop {
            let (frame, rest) = acc.feed(input);
            if let Some(frame) = frame {
                return frame.expect("a well-formed frame").to_vec();
            }
            assert!(!rest.is_empty(), "a whole frame");
            input = rest;
        }
    }
    let mut buf = vec![0u8; MAX_REQUEST_WIRE];
    let wire = tee_core::client::encode_request(1, cmd, &mut buf).unwrap().to_vec();
    let payload = unframe::<MAX_REQUEST_FRAME>(&wire);
    let mut incoming = Incoming::read(Ok(&payload));
    if let Incoming::Sign(s) = &mut incoming {
        if let Some(signer) = recover_for.or_else(|| p.device.approvals_signer(s)) {
            s.recover_approvals(&signer);
        }
    }
    let mut out = vec![0u8; MAX_RESPONSE_WIRE];
    let reply = match p.device.begin_incoming(incoming, &mut out) {
        Step::Sign(pending) => pending.finish(&mut out),
        Step::Done(reply) => reply,
        Step::Quote(_) => panic!("a quote for a SignApproved"),
    };
    let len = reply.release(Ok(()), &mut out);
    let frame = unframe::<MAX_RESPONSE_FRAME>(&out[..len]);
    let (_, body) = Header::split(&frame).unwrap();
    tee_core::codec::decode::<Result<SignResponse, DeviceError>>(body).expect("canonical")
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fn policy(mask: u32) -> Policy {
    Policy {
        kinds: KindSet(mask),
        chains: Allow::Any,
        contracts: Allow::Any,
        agents: Allow::Any,
        max_value: tee_core::U256([0xff; 32]),
        max_gas_limit: u64::MAX,
        max_fee_per_gas: u128::MAX,
        max_deadline_ahead_secs: 300,
        rate_limit: if mask & 1 == 1 { Some(RateLimit { max: 3, window_secs: 10 }) } else { None },
        eip712_domains: Allow::Any,
        // Bit 23 (no action kind): a spend cap of two sample transfers a minute.
        spend_cap: (mask & 1 << 23 != 0).then_some(SpendCap { max: CAP, window_secs: 60 }),
        // Bit 22: a policy that ends within the session's clock moves.
        valid_until: if mask & 1 << 22 != 0 { 1_767_225_000 + 600 } else { 0 },
        // USDC at most one sample transfer's amount a time; bit 24: only
        // the sample's payee as a recipient.
        // Bit 25: a cap of two sample token transfers a minute.
        tokens: tee_core::heapless::Vec::from_slice(&[TokenRule {
            token: sample::USDC,
            max_amount: tee_core::U256::from_u64(1_000_000),
            cap: (mask & 1 << 25 != 0).then_some(SpendCap { max: TOKEN_CAP, window_secs: 60 }),
        }])
        .unwrap(),
        recipients: if mask & 1 << 24 != 0 {
            Allow::Only(tee_core::heapless::Vec::from_slice(&[sample::OWNER]).unwrap())
        } else {
            Allow::Any
        },
        unlimited_approvals: false,
        // Bit 26: transactions with value and `setAgentURI` wait for one of
        // two approvers (keys 0xa1.. and 0xa2..), approvals good for 10 min.
        approvals: (mask & 1 << 26 != 0).then(|| ApprovalRule {
            approvers: APPROVERS.iter().take(2).map(|k| approver(*k).address()).collect(),
            threshold: 1,
            kinds: KindSet::NONE.with(ActionKind::SetAgentUri),
            above_value: Some(tee_core::U256::ZERO),
            above_amount: None,
            max_ttl_secs: 600,
        }),
    }
}

/// The approvers' keys, and a stranger's.
const APPROVERS: [u8; 3] = [0xa1, 0xa2, 0x5e];

fn approver(k: u8) -> tee_core::SigningKey {
    tee_core::SigningKey::from_bytes(&[k; 32]).unwrap()
}

/// The spend cap of a capped session policy: two of the sample transfer's value.
const CAP: tee_core::U256 = tee_core::U256::from_u64(20_000_000_000_000_000);
/// The token cap of a session policy that caps USDC: two sample token transfers.
const TOKEN_CAP: tee_core::U256 = tee_core::U256::from_u64(2_000_000);

/// The messages a `personal_sign` action is varied over.
const VARIED_MESSAGES: [&[u8]; 4] = [b"sign in 0", b"sign in 1", b"sign in 2", b"sign in 3"];

/// The sample action of a kind (its legacy form for an odd `variant`,
/// where it has one), varied by `variant`.
fn action(kind: u8, variant: u8) -> Action<'static> {
    let mut a = sample::action(ActionKind::ALL[usize::from(kind) % ActionKind::ALL.len()]);
    if variant % 2 == 1
        && let Some(legacy) = sample::legacy(&a)
    {
        a = legacy;
    }
    a = sample::with_nonce(a, u64::from(variant));
    match &mut a {
        Action::Transaction(_) => {}
        Action::AgentWalletSet(w) => w.deadline = 1_767_225_000 + u64::from(variant),
        Action::PersonalMessage(m) => m.message = VARIED_MESSAGES[usize::from(variant % 4)],
        Action::Eip712Prehashed(p) => p.struct_hash.0[0] = variant,
        Action::TaskReceipt(r) => r.result_hash.0[0] = variant,
        Action::TokenAuthorization(t) => t.nonce.0[0] = variant,
    }
    a
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut p = Pair::new(Device::open(MemBackend::new(9), tee_testkit::config()).unwrap());
    let mut released: HashMap<(u8, u64), (Signature, tee_core::B256)> = HashMap::new();
    // Every (slot, sequence, digest) ever asked to be signed: a power cut
    // may leave one committed that was never released.
    let mut requested: HashSet<(u8, u64, tee_core::B256)> = HashSet::new();
    while let Some(op) = input.byte() {
        let arg = input.byte().unwrap_or(0);
        match op % 9 {
            0 => {
                let n = usize::from(arg);
                let raw = input.bytes(n).to_vec();
                p.send_raw(&raw);
            }
            1 => {
                let _ = p.admin(GenerateKey {
                    slot: arg % 9,
                    replace: false,
                    auth: AdminAuth::UNSIGNED,
                });
            }
            2 => {
                let mask = u32::from_le_bytes([
                    arg,
                    input.byte().unwrap_or(0),
                    input.byte().unwrap_or(0),
                    input.byte().unwrap_or(0),
                ]);
                let _ = p.admin(SetPolicy {
                    slot: arg % 9,
                    policy: policy(mask),
                    auth: AdminAuth::UNSIGNED,
                });
            }
            3 | 4 => {
                let slot = arg % 3;
                let sequence = u64::from(input.byte().unwrap_or(0) % 8);
                let kind = input.byte().unwrap_or(0);
                let variant_byte = input.byte().unwrap_or(0);
                let variant = variant_byte % 4;
                let action = action(kind, variant);
                requested.insert((slot, sequence, action.digest()));
                let was = released.get(&(slot, sequence)).copied();
                let r = if op % 9 == 4 {
                    // With approvals: by which keys (bits 0-2), expiring when
                    // (bits 3-6, in minutes; bit 7: already expired).
                    let by = input.byte().unwrap_or(0);
                    let signer = p.call(&GetPublicKey { slot }).map(|k| k.address);
                    let now = p.device.backend().now.unwrap_or(0);
                    let ahead = u64::from(by >> 3 & 0x0f) * 60;
                    let expires = if by & 0x80 != 0 { now - 1 } else { now + ahead };
                    let digest = action.digest();
                    let approval =
                        approval_action(&signer.unwrap_or_default(), sequence, &digest, expires);
                    let approvals: Vec<u8> = (0..3)
                        .filter(|i| by & 1 << i != 0)
                        .flat_map(|i| {
                            approver(APPROVERS[i]).sign(&approval).unwrap().signature.to_bytes()
                        })
                        .collect();
                    let cmd = SignApproved {
                        slot,
                        sequence,
                        expires,
                        approvals: &approvals,
                        action: action.clone(),
                    };
                    // Bits 2-3 of the variant byte: as a host serves it,
                    // with the approvals recovered outside the device for
                    // the slot's key (or for an approver's, a key they do
                    // not name), or through the device alone.
                    match variant_byte >> 2 & 3 {
                        0 => p.call(&cmd),
                        how => {
                            let stranger = approver(APPROVERS[0]).address();
                            as_host(&mut p, &cmd, (how == 2).then_some(stranger))
                        }
                    }
                } else {
                    p.call(&Sign { slot, sequence, action: action.clone() })
                };
                if let Ok(r) = r {
                    // A plain Sign never gets an action the policy holds for
                    // approval (but for the exact retry of one signed before).
                    if op % 9 == 3 && was.is_none_or(|(_, d)| d != r.digest) {
                        let policy = p.call(&GetPolicy { slot }).unwrap();
                        assert!(
                            policy.approval_rule(&action).is_none(),
                            "signed without approvals"
                        );
                    }
                    if let Some((prev, _)) =
                        released.insert((slot, sequence), (r.signature, r.digest))
                    {
                        assert_eq!(prev, r.signature, "two signatures for ({slot}, {sequence})");
                    }
                    let address = p.call(&GetPublicKey { slot }).unwrap().address;
                    assert_eq!(r.signature.recover_address(&r.digest).unwrap(), address);
                }
            }
            5 if arg & 0x80 != 0 => {
                // A per-action attestation: only ever for a digest signed there.
                let (slot, sequence) = (arg % 3, u64::from(input.byte().unwrap_or(0) % 8));
                let digest = match released.get(&(slot, sequence)) {
                    Some((_, d)) if arg & 0x40 == 0 => *d,
                    _ => tee_core::B256([arg; 32]),
                };
                let payload = p.request(&AttestAction { slot, sequence, digest });
                let (_, attested) =
                    decode_response::<AttestAction>(&payload).expect("a well-formed response");
                if let Ok(a) = attested {
                    assert!(
                        requested.contains(&(slot, sequence, digest)),
                        "attested an unsigned digest"
                    );
                    assert_eq!(a.report_data.0[..20], a.address.0);
                }
                let part =
                    if arg & 1 == 0 { EvidencePart::EventLog } else { EvidencePart::KeyChain };
                let payload = p.request(&GetEvidence { slot, part, offset: u32::from(arg & 0x0f) });
                let (_, chunk) =
                    decode_response::<GetEvidence>(&payload).expect("a well-formed response");
                if let Ok(c) = chunk {
                    assert!(c.data.len() <= MAX_EVIDENCE_CHUNK);
                }
            }
            5 => {
                let payload =
                    p.request(&Attest { slot: arg % 9, challenge: tee_core::B256([arg; 32]) });
                let (_, attested) =
                    decode_response::<Attest>(&payload).expect("a well-formed response");
                if let Ok(a) = attested {
                    assert_eq!(a.report_data.0[..20], a.address.0);
                }
            }
            6 => {
                let log = p.call(&GetAuditLog { from: u64::from(arg) }).unwrap();
                assert!(log.entries.len() <= AUDIT_BATCH);
            }
            7 => p.device.backend_mut().now = Some(1_767_225_000 + u64::from(arg) * 7),
            _ => {
                // Power fails at the next write (or the one after).
                let mode =
                    if arg & 1 == 0 { PowerLoss::BeforeWrite } else { PowerLoss::AfterWrite };
                let at = p.device.backend().write_steps + u64::from(arg >> 7);
                p.device.backend_mut().power_loss = Some((at, mode));
            }
        }
        // Neither wei's window nor the token's ever holds more than its cap.
        for slot in 0..3 {
            for (asset, cap) in [(None, CAP), (Some(sample::USDC), TOKEN_CAP)] {
                let b = p.device.backend_mut();
                let window = tee_core::device::CounterStore::load_spend(b, slot, asset.as_ref());
                if let Ok(Some(w)) = window {
                    assert!(w.spent <= cap, "slot {slot} reserved {} over the cap", w.spent);
                }
            }
        }
        if p.device.backend().dead {
            let counter = p.admin_counter;
            let mut backend = p.device.into_backend();
            backend.restart();
            p = Pair::new(
                Device::open(backend, tee_testkit::config()).expect("the device comes back"),
            );
            p.admin_counter = counter;
        }
    }
});
