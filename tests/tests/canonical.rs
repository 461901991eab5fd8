//! Canonical encoding: one action, one accepted byte string, one digest.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use tee_core::action::tx;
use tee_core::action::{GenericTx, LegacyGenericTx, PersonalMessage, bytes};
use tee_core::limits::{
    MAX_ACTION_LEN, MAX_MESSAGE_LEN, MAX_REGISTRY_CALLDATA_LEN, MAX_SIGNED_TX_LEN,
};
use tee_core::{Action, ActionKind, Error, SigningKey, codec};
use tee_tests::{arb_action, arb_action_of, arb_secret, max_action};

fn encode(a: &Action) -> Vec<u8> {
    let mut buf = [0u8; MAX_ACTION_LEN];
    a.encode(&mut buf).unwrap().to_vec()
}

/// How a byte string is damaged.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
    Truncate { len: usize },
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Delete { at }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
    ]
}

fn mutate(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut v = bytes.to_vec();
    match *m {
        Mutation::Flip { at, xor } => v[at % bytes.len()] ^= xor,
        Mutation::Insert { at, byte } => v.insert(at % (bytes.len() + 1), byte),
        Mutation::Delete { at } => {
            v.remove(at % bytes.len());
        }
        Mutation::Truncate { len } => v.truncate(len % bytes.len()),
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// encode -> decode -> encode is the identity.
    #[test]
    fn round_trip(action in arb_action()) {
        let enc = encode(&action);
        prop_assert!(enc.len() <= MAX_ACTION_LEN);
        prop_assert_eq!(codec::encoded_len(&action).unwrap(), enc.len());
        let back = Action::decode(&enc).unwrap();
        prop_assert_eq!(&back, &action);
        prop_assert_eq!(encode(&back), enc);
    }

    /// A damaged encoding fails to decode, or decodes to a different action
    /// with a different digest: no second byte string for one action.
    #[test]
    fn mutation_changes_action_and_digest(action in arb_action(), m in arb_mutation()) {
        let enc = encode(&action);
        let bad = mutate(&enc, &m);
        prop_assume!(bad != enc);
        if let Ok(other) = Action::decode(&bad) {
            prop_assert_ne!(&other, &action);
            prop_assert_ne!(other.digest(), action.digest());
            // And whatever decoded is itself canonical.
            prop_assert_eq!(encode(&other), bad);
        }
    }

    /// The strict RLP decoders (EIP-1559 and legacy): unsigned and signed
    /// round trips, and a damaged transaction either fails or decodes to
    /// exactly what re-encodes to it, with the signing hash the verifier
    /// reads from it.
    #[test]
    fn rlp_round_trip_and_strictness(
        action in arb_action_of(ActionKind::GenericTx),
        secret in arb_secret(),
        m in arb_mutation(),
    ) {
        let mut buf = [0u8; MAX_SIGNED_TX_LEN];
        let unsigned = tx::encode_unsigned(&action, &mut buf).unwrap().to_vec();
        prop_assert_eq!(&decode_unsigned(&unsigned).unwrap(), &action);
        let sig = SigningKey::from_bytes(&secret).unwrap().sign(&action).unwrap().signature;
        let signed = tx::encode_signed(&action, &sig, &mut buf).unwrap().to_vec();
        prop_assert_eq!(decode_signed(&signed).unwrap(), (action.clone(), sig));
        prop_assert_eq!(tx::signing_hash_of_signed(&signed).unwrap(), (action.digest(), sig));
        // Unsigned bytes are not a signed transaction and vice versa.
        prop_assert!(decode_signed(&unsigned).is_err());
        prop_assert!(decode_unsigned(&signed).is_err());

        let bad = mutate(&signed, &m);
        prop_assume!(bad != signed);
        if let Ok((t, s)) = decode_signed(&bad) {
            let again = tx::encode_signed(&t, &s, &mut buf).unwrap().to_vec();
            prop_assert_eq!(&again, &bad);
            prop_assert_eq!(tx::signing_hash_of_signed(&bad).unwrap(), (t.digest(), s));
        }
        let bad = mutate(&unsigned, &m);
        if let Ok(t) = decode_unsigned(&bad) {
            let again = tx::encode_unsigned(&t, &mut buf).unwrap().to_vec();
            prop_assert_eq!(again, bad);
        }
    }
}

/// Either decoder, by the first byte (a type byte or an RLP list).
fn decode_unsigned(b: &[u8]) -> Result<Action, Error> {
    match b.first() {
        Some(0xc0..) => LegacyGenericTx::decode_unsigned(b).map(Action::LegacyGenericTx),
        _ => GenericTx::decode_unsigned(b).map(Action::GenericTx),
    }
}

fn decode_signed(b: &[u8]) -> Result<(Action, tee_core::Signature), Error> {
    match b.first() {
        Some(0xc0..) => {
            LegacyGenericTx::decode_signed(b).map(|(t, s)| (Action::LegacyGenericTx(t), s))
        }
        _ => GenericTx::decode_signed(b).map(|(t, s)| (Action::GenericTx(t), s)),
    }
}

#[test]
fn limits_are_tight() {
    let mut largest = 0;
    for &kind in ActionKind::ALL {
        let a = max_action(kind);
        assert_eq!(a.kind(), kind);
        let enc = encode(&a);
        assert_eq!(Action::decode(&enc).unwrap(), a, "{kind}");
        largest = largest.max(enc.len());
        if let Action::RegistryTx(t) = &a {
            assert!(t.call.calldata_len() <= MAX_REGISTRY_CALLDATA_LEN, "{kind}");
        }
        if a.is_transaction() {
            let sig = SigningKey::from_bytes(&[7; 32]).unwrap().sign(&a).unwrap().signature;
            assert!(tx::signed_len(&a, &sig).unwrap() <= MAX_SIGNED_TX_LEN, "{kind}");
        }
    }
    assert_eq!(largest, MAX_ACTION_LEN, "MAX_ACTION_LEN is the largest encoding");
    let worst_calldata = ActionKind::ALL
        .iter()
        .filter_map(|&k| match max_action(k) {
            Action::RegistryTx(t) => Some(t.call.calldata_len()),
            _ => None,
        })
        .max()
        .unwrap();
    assert_eq!(worst_calldata, MAX_REGISTRY_CALLDATA_LEN);
}

#[test]
fn typed_errors() {
    // Variant 3 is PersonalMessage: [tag, varint len, bytes].
    let msg = Action::PersonalMessage(PersonalMessage { message: bytes(b"hi").unwrap() });
    let enc = encode(&msg);
    assert_eq!(enc, [3, 2, b'h', b'i']);
    assert_eq!(Action::decode(&[3, 0x82, 0x00, b'h', b'i']), Err(Error::NonCanonical));
    assert_eq!(Action::decode(&[3, 2, b'h', b'i', 0]), Err(Error::TrailingBytes));
    assert_eq!(Action::decode(&[3, 2, b'h']), Err(Error::Truncated));
    assert_eq!(Action::decode(&[]), Err(Error::Truncated));
    assert_eq!(Action::decode(&[7]), Err(Error::UnknownVariant), "one past the last action");
    assert_eq!(Action::decode(&[0x80, 0x01]), Err(Error::UnknownVariant));
    // One byte over the message bound.
    let n = MAX_MESSAGE_LEN + 1;
    let mut long = vec![3, (n as u8) | 0x80, (n >> 7) as u8];
    long.extend(std::iter::repeat_n(b'a', n));
    assert_eq!(Action::decode(&long), Err(Error::TooLong));
    // Anything longer than the largest action is refused before decoding.
    assert_eq!(Action::decode(&vec![3; MAX_ACTION_LEN + 1]), Err(Error::TooLong));
    // Invalid UTF-8 in a string field: register(string) with bytes ff fe.
    let a = max_action(ActionKind::RegisterWithUri);
    let mut enc = encode(&a);
    let len = enc.len();
    enc[len - 1] = 0xff;
    assert_eq!(Action::decode(&enc), Err(Error::InvalidUtf8));
}
