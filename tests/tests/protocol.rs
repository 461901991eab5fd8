//! Every request and response: encode -> decode is the identity, through
//! the command's own decoder and through whole frames; and the admin
//! EIP-712 digest equals alloy's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::fmt::Debug;

use alloy_sol_types::{SolStruct, eip712_domain};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tee_core::client::encode_request;
use tee_core::frame::{Accumulator, FrameError, Header};
use tee_core::heapless;
use tee_core::protocol::*;
use tee_core::{Address, Error, Signature, U256, codec};
use tee_tests::{addr, arb_action, arb_address, arb_b256, arb_u256, b256, typed};

fn arb_sig() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<bool>()).prop_map(|(r, s, y_parity)| Signature {
        r,
        s,
        y_parity,
    })
}

fn arb_auth() -> impl Strategy<Value = AdminAuth> {
    (any::<u64>(), arb_sig()).prop_map(|(counter, signature)| AdminAuth { counter, signature })
}

fn arb_allow<T: Debug + Clone + 'static, const N: usize>(
    item: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Allow<T, N>> {
    prop_oneof![
        Just(Allow::Any),
        proptest::collection::vec(item, 0..=N)
            .prop_map(|v| Allow::Only(heapless::Vec::from_slice(&v).unwrap())),
    ]
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        any::<u32>(),
        arb_allow::<u64, 4>(any::<u64>()),
        arb_allow::<Address, 8>(arb_address()),
        arb_allow::<U256, 4>(arb_u256()),
        arb_u256(),
        (any::<u64>(), any::<u128>(), any::<u64>()),
        proptest::option::of(
            (any::<u32>(), any::<u32>())
                .prop_map(|(max, window_secs)| RateLimit { max, window_secs }),
        ),
        arb_allow::<tee_core::B256, 4>(tee_tests::arb_b256()),
        (
            proptest::option::of(
                (arb_u256(), any::<u32>())
                    .prop_map(|(max, window_secs)| SpendCap { max, window_secs }),
            ),
            any::<u64>(),
        ),
        (
            proptest::collection::vec(
                (
                    arb_address(),
                    arb_u256(),
                    proptest::option::of(
                        (arb_u256(), any::<u32>())
                            .prop_map(|(max, window_secs)| SpendCap { max, window_secs }),
                    ),
                )
                    .prop_map(|(token, max_amount, cap)| TokenRule {
                        token,
                        max_amount,
                        cap,
                    }),
                0..=MAX_POLICY_TOKENS,
            ),
            arb_allow::<Address, MAX_POLICY_RECIPIENTS>(arb_address()),
            any::<bool>(),
        ),
        proptest::option::of(
            (
                proptest::collection::vec(arb_address(), 0..=MAX_POLICY_APPROVERS),
                any::<u8>(),
                any::<u32>(),
                proptest::option::of(arb_u256()),
                proptest::option::of(arb_u256()),
                any::<u32>(),
            )
                .prop_map(
                    |(approvers, threshold, kinds, above_value, above_amount, ttl)| ApprovalRule {
                        approvers: heapless::Vec::from_slice(&approvers).unwrap(),
                        threshold,
                        kinds: KindSet(kinds),
                        above_value,
                        above_amount,
                        max_ttl_secs: ttl,
                    },
                ),
        ),
    )
        .prop_map(
            |(
                kinds,
                chains,
                contracts,
                agents,
                max_value,
                (gas, fee, ahead),
                rate_limit,
                eip712_domains,
                (spend_cap, valid_until),
                (tokens, recipients, unlimited_approvals),
                approvals,
            )| Policy {
                kinds: KindSet(kinds),
                chains,
                contracts,
                agents,
                max_value,
                max_gas_limit: gas,
                max_fee_per_gas: fee,
                max_deadline_ahead_secs: ahead,
                rate_limit,
                eip712_domains,
                spend_cap,
                valid_until,
                tokens: heapless::Vec::from_slice(&tokens).unwrap(),
                recipients,
                unlimited_approvals,
                approvals,
            },
        )
}

fn arb_text<const N: usize>() -> impl Strategy<Value = heapless::String<N>> {
    tee_tests::arb_text::<N>()
}

fn arb_device_error() -> impl Strategy<Value = DeviceError> {
    use DeviceError as D;
    let violations = PolicyViolation::ALL;
    let decode = [
        Error::Truncated,
        Error::TrailingBytes,
        Error::NonCanonical,
        Error::Malformed,
        Error::UnknownVariant,
        Error::TooLong,
        Error::InvalidUtf8,
    ];
    let frames =
        [FrameError::TooLong, FrameError::BadCobs, FrameError::TooShort, FrameError::BadCrc];
    prop_oneof![
        proptest::sample::select(frames.to_vec()).prop_map(D::Frame),
        any::<u8>().prop_map(|supported| D::UnsupportedVersion { supported }),
        proptest::sample::select(decode.to_vec()).prop_map(D::Malformed),
        proptest::sample::select(violations.to_vec()).prop_map(D::Denied),
        any::<u64>().prop_map(|high_water| D::Replay { high_water }),
        any::<u64>().prop_map(|last| D::AdminReplay { last }),
        (any::<u128>(), any::<u32>())
            .prop_map(|(remaining, ends_in)| D::OverCap(CapRefusal::new(remaining, ends_in))),
        (any::<u8>(), any::<u8>(), any::<u64>()).prop_map(|(have, need, by)| {
            D::ApprovalRequired(ApprovalNeed { have, need, expires_by_be: by.to_be_bytes() })
        }),
        proptest::sample::select(vec![
            D::UnknownCommand,
            D::NoSuchSlot,
            D::SlotEmpty,
            D::Unauthorized,
            D::Unsupported,
            D::Storage,
            D::Entropy,
            D::SigningFailed,
            D::Backend,
            D::ResponseTooLarge,
            D::NotLastSigned,
        ]),
    ]
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    v: &T,
) -> Result<(), TestCaseError> {
    let mut buf = vec![0u8; MAX_RESPONSE_BODY];
    let enc = codec::encode(v, &mut buf).unwrap().to_vec();
    let back: T = codec::decode(&enc).unwrap();
    prop_assert_eq!(&back, v);
    let mut again = vec![0u8; MAX_RESPONSE_BODY];
    prop_assert_eq!(codec::encode(&back, &mut again).unwrap(), &enc[..]);
    Ok(())
}

/// A request through a whole frame and its command's own decoder.
fn request_round_trip<C: Command + Debug>(cmd: &C) -> Result<(), TestCaseError> {
    let mut buf = vec![0u8; MAX_REQUEST_WIRE];
    let frame = encode_request(0xdead_beef, cmd, &mut buf).unwrap().to_vec();
    prop_assert!(frame.len() <= MAX_REQUEST_WIRE);
    let mut acc = Accumulator::<MAX_REQUEST_FRAME>::new();
    // The leading delimiter completes an empty frame, which is skipped.
    let (none, rest) = acc.feed(&frame);
    prop_assert!(none.is_none());
    let (payload, rest) = acc.feed(rest);
    prop_assert!(rest.is_empty());
    let (h, body) = Header::split(payload.unwrap().unwrap()).unwrap();
    prop_assert_eq!((h.version, h.command, h.request_id), (PROTOCOL_VERSION, C::CODE, 0xdead_beef));
    // The decoded request (borrowing the body, for `Sign`) is the command.
    prop_assert_eq!(format!("{:?}", C::decode(body).unwrap()), format!("{cmd:?}"));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn requests(
        slot in any::<u8>(),
        path in arb_text::<MAX_PATH_LEN>(),
        policy in arb_policy(),
        auth in arb_auth(),
        sequence in any::<u64>(),
        action in arb_action(),
        challenge in arb_b256(),
        data in proptest::collection::vec(any::<u8>(), 0..=MAX_ECHO_LEN),
    ) {
        request_round_trip(&DeviceInfo)?;
        request_round_trip(&GetPublicKey { slot })?;
        request_round_trip(&GenerateKey { slot, replace: false, auth })?;
        request_round_trip(&DeriveKey { slot, path, replace: false, auth })?;
        request_round_trip(&SetPolicy { slot, policy, auth })?;
        request_round_trip(&Sign { slot, sequence, action })?;
        request_round_trip(&Attest { slot, challenge })?;
        request_round_trip(&GetAuditLog { from: sequence })?;
        request_round_trip(&Echo { data: heapless::Vec::from_slice(&data).unwrap() })?;
        request_round_trip(&GetPolicy { slot })?;
        request_round_trip(&AttestAction { slot, sequence, digest: challenge })?;
        for part in [EvidencePart::EventLog, EvidencePart::KeyChain] {
            request_round_trip(&GetEvidence { slot, part, offset: sequence as u32 })?;
        }
    }

    #[test]
    fn responses(
        err in arb_device_error(),
        policy in arb_policy(),
        addr in arb_address(),
        hash in arb_b256(),
        sig in arb_sig(),
        n in any::<u64>(),
        firmware in arb_text::<32>(),
        path in arb_text::<MAX_PATH_LEN>(),
        pk in any::<[u8; 32]>(),
        entries in proptest::collection::vec((any::<u64>(), any::<u8>(), any::<u8>(), any::<u64>(), arb_b256()), 0..=AUDIT_BATCH),
    ) {
        round_trip(&Result::<(), DeviceError>::Err(err))?;
        round_trip(&Result::<Policy, DeviceError>::Ok(policy.clone()))?;
        round_trip(&DeviceInfoResponse {
            protocol_version: 1,
            firmware,
            backend: BackendKind::Dstack,
            capabilities: n as u32,
            slots: 8,
            max_request_frame: n as u32,
            device_id: hash,
            admin: addr,
            bounds: tee_core::action::ActionBounds { uri: n as u32, ..tee_core::action::ActionBounds::MCU },
        })?;
        let mut key = [2u8; 33];
        key[1..].copy_from_slice(&pk);
        for origin in [KeyOrigin::Generated, KeyOrigin::Derived(path.clone())] {
            round_trip(&PublicKeyResponse {
                slot: 1,
                public_key: FixedBytes(key),
                address: addr,
                origin,
                high_water: Some(n),
            })?;
        }
        round_trip(&PolicySet { slot: 3, policy_hash: hash })?;
        round_trip(&SignResponse { signature: sig, digest: hash, sequence: n })?;
        let entries: Vec<AuditEntry> = entries
            .into_iter()
            .map(|(index, command, slot, sequence, digest)| AuditEntry {
                index,
                command,
                slot,
                sequence,
                digest,
                outcome: match index % 4 { 0 => Outcome::Ok, 1 => Outcome::Retry, 2 => Outcome::Approved(index as u8), _ => Outcome::Refused(err) },
            })
            .collect();
        round_trip(&AuditLogResponse {
            prev_hash: hash,
            entries: heapless::Vec::from_slice(&entries).unwrap(),
            next_index: n,
            head_hash: hash,
            oldest_kept: n / 2,
        })?;
        // The borrowed Attest response.
        let quote = vec![0xabu8; (n % 6000) as usize];
        let r = AttestResponse { address: addr, report_data: FixedBytes([7; 64]), quote: &quote };
        let mut buf = vec![0u8; MAX_RESPONSE_BODY];
        let enc = codec::encode(&r, &mut buf).unwrap().to_vec();
        prop_assert_eq!(codec::decode::<AttestResponse<'_>>(&enc).unwrap(), r);
        // The borrowed evidence chunk, up to its largest.
        let data = vec![0x5au8; (n as usize) % (MAX_EVIDENCE_CHUNK + 1)];
        let c = EvidenceChunk { total: (n >> 32) as u32, data: &data };
        let enc = codec::encode(&c, &mut buf).unwrap().to_vec();
        prop_assert_eq!(codec::decode::<EvidenceChunk<'_>>(&enc).unwrap(), c);
    }

    /// The admin message is standard EIP-712: alloy computes the same digest.
    #[test]
    fn admin_digest_matches_alloy(device_id in arb_b256(), command in any::<u8>(), counter in any::<u64>(), payload in arb_b256()) {
        let domain = eip712_domain! {
            name: "ERC8004TeeSigner",
            version: "1",
            salt: b256(&device_id),
        };
        let msg = typed::AdminCommand { command, counter, payload: b256(&payload) };
        prop_assert_eq!(admin_digest(&device_id, command, counter, &payload).0, msg.eip712_signing_hash(&domain).0);
        prop_assert_eq!(admin_action(&device_id, command, counter, &payload).digest(), admin_digest(&device_id, command, counter, &payload));
    }

    /// An approval is plain EIP-712: alloy (and so any wallet) computes
    /// the digest the device recovers approvers from.
    #[test]
    fn approval_digest_matches_alloy(signer in arb_address(), sequence in any::<u64>(), action in arb_b256(), expires in any::<u64>()) {
        let domain = eip712_domain! { name: "ERC8004TeeSignerApproval", version: "1", };
        let msg = typed::Approval { signer: addr(&signer), sequence, action: b256(&action), expires };
        let digest = approval_digest(&signer, sequence, &action, expires);
        prop_assert_eq!(digest.0, msg.eip712_signing_hash(&domain).0);
        prop_assert_eq!(approval_action(&signer, sequence, &action, expires).digest(), digest);
    }

    /// The identity's AdminState statement is plain EIP-712 in the admin
    /// domain: any EIP-712 library checks it.
    #[test]
    fn admin_state_digest_matches_alloy(device_id in arb_b256(), nonce in arb_b256(), last_counter in any::<u64>(), last_payload in arb_b256(), slot in any::<u8>(), key in arb_address(), policy_hash in arb_b256(), sequence in any::<u64>(), commitment in arb_b256()) {
        let domain = eip712_domain! {
            name: "ERC8004TeeSigner",
            version: "1",
            salt: b256(&device_id),
        };
        let msg = typed::AdminState { nonce: b256(&nonce), lastCounter: last_counter, lastPayload: b256(&last_payload), slot, key: addr(&key), policyHash: b256(&policy_hash), sequence, commitment: b256(&commitment) };
        let statement = AdminStatement { nonce, last_counter, last_payload, slot, key, policy_hash, sequence, commitment };
        prop_assert_eq!(statement.digest(&device_id).0, msg.eip712_signing_hash(&domain).0);
    }
}

#[test]
fn command_codes_are_unique_and_stable() {
    assert_eq!(COMMAND_CODES, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
}
