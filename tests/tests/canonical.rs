//! Canonical encoding: one action, one accepted byte string, one digest.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use tee_core::action::tx;
use tee_core::action::{
    ActionBounds, BoundField, MetadataEntry, PersonalMessage, RegistryCall, Transaction, TxBody,
};
use tee_core::limits::{
    MAX_ACTION_LEN, MAX_REGISTRY_CALLDATA_LEN, MAX_SIGNED_TX_LEN, action_len,
    registry_calldata_len, signed_tx_len,
};
use tee_core::{Action, ActionKind, Error, SigningKey, codec};
use tee_tests::{arb_action, arb_action_of, arb_secret, max_action};

fn encode(a: &Action<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; a.encoded_len()];
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
        prop_assert_eq!(&encode(&back), &enc);
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
            prop_assert_eq!(&encode(&other), &bad);
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
        let mut buf = vec![0u8; 4096];
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
            prop_assert_eq!(&again, &bad);
        }
    }
}

fn decode_unsigned(b: &[u8]) -> Result<Action<'_>, Error> {
    Transaction::decode_unsigned(b).map(Action::Transaction)
}

fn decode_signed(b: &[u8]) -> Result<(Action<'_>, tee_core::Signature), Error> {
    Transaction::decode_signed(b).map(|(t, s)| (Action::Transaction(t), s))
}

/// The bounds derived from a device's field bounds (the largest action,
/// registry calldata and signed transaction) are reached exactly, for the
/// host's and the microcontroller's bounds alike.
#[test]
fn limits_are_tight() {
    for b in [ActionBounds::HOST, ActionBounds::MCU] {
        limits_are_tight_within(&b);
    }
    assert_eq!(action_len(&ActionBounds::HOST), MAX_ACTION_LEN);
    assert_eq!(registry_calldata_len(&ActionBounds::HOST), MAX_REGISTRY_CALLDATA_LEN);
    assert_eq!(signed_tx_len(&ActionBounds::HOST), MAX_SIGNED_TX_LEN);
}

fn limits_are_tight_within(b: &ActionBounds) {
    let (max_action, max_calldata) = (action_len(b), registry_calldata_len(b));
    let max_action_of = |k| tee_tests::max_action_within(k, b);
    let mut largest = 0;
    for &kind in ActionKind::ALL {
        let a = max_action_of(kind);
        assert_eq!(a.kind(), kind);
        let enc = encode(&a);
        assert_eq!(Action::decode(&enc).unwrap(), a, "{kind}");
        largest = largest.max(enc.len());
        assert_eq!(b.check(&a, enc.len()), Ok(()), "{kind}");
        if let Some(call) = a.registry_call() {
            assert!(call.calldata_len() <= max_calldata, "{kind}");
        }
        if a.is_transaction() {
            let sig = SigningKey::from_bytes(&[7; 32]).unwrap().sign(&a).unwrap().signature;
            assert!(tx::signed_len(&a, &sig).unwrap() <= signed_tx_len(b), "{kind}");
        }
    }
    assert_eq!(largest, max_action, "action_len is the largest encoding");
    let worst_calldata = ActionKind::ALL
        .iter()
        .filter_map(|k| max_action_of(*k).registry_call().map(RegistryCall::calldata_len))
        .max()
        .unwrap();
    assert_eq!(worst_calldata, max_calldata);
}

/// One byte (or entry) over a bound in any field of any kind is refused
/// by the bounds check, naming that field, its length and the bound.
#[test]
fn a_field_over_its_bound_is_named() {
    let b = ActionBounds::MCU;
    let x = "x".repeat(70_000);
    let long = |n: u32| &x[..n as usize + 1];
    let bytes = vec![0u8; 70_000];
    let over = |n: u32| &bytes[..n as usize + 1];
    // An action longer than the device takes whole is named as such: the
    // action's length is checked first.
    let mut a = tee_tests::max_action_within(ActionKind::PersonalMessage, &b);
    if let Action::PersonalMessage(m) = &mut a {
        m.message = over(b.action);
    }
    let r = b.check(&a, a.encoded_len()).unwrap_err();
    assert_eq!((r.field, r.len, r.max), (BoundField::Action, a.encoded_len() as u32, b.action));
    // Within the action's bound, the first field over its own.
    let mut a = tee_tests::max_action_within(ActionKind::GiveFeedback, &b);
    if let Some(RegistryCall::GiveFeedback { feedback_uri, .. }) = a.registry_call_mut() {
        *feedback_uri = long(b.uri);
    }
    let r = b.check(&a, a.encoded_len()).unwrap_err();
    assert_eq!((r.field, r.len, r.max), (BoundField::Uri, b.uri + 1, b.uri));
    if let Some(RegistryCall::GiveFeedback { feedback_uri, tag2, .. }) = a.registry_call_mut() {
        *feedback_uri = "";
        *tag2 = long(b.tag);
    }
    let r = b.check(&a, a.encoded_len()).unwrap_err();
    assert_eq!((r.field, r.len, r.max), (BoundField::Tag, b.tag + 1, b.tag));
    let cases: [(ActionKind, BoundField, u32); 5] = [
        (ActionKind::GenericTx, BoundField::Calldata, b.calldata),
        (ActionKind::PersonalMessage, BoundField::Message, b.message),
        (ActionKind::SetAgentUri, BoundField::Uri, b.uri),
        (ActionKind::SetMetadata, BoundField::MetadataValue, b.metadata_value),
        (ActionKind::SetAgentWallet, BoundField::WalletSignature, b.wallet_signature),
    ];
    for (kind, field, bound) in cases {
        let mut a = tee_tests::max_action_within(kind, &b);
        match &mut a {
            Action::Transaction(Transaction { body: TxBody::Generic(t), .. }) => {
                t.data = over(bound);
            }
            Action::PersonalMessage(m) => m.message = over(bound),
            a => match a.registry_call_mut() {
                Some(RegistryCall::SetAgentUri { new_uri, .. }) => *new_uri = long(bound),
                Some(RegistryCall::SetMetadata { value, .. }) => *value = over(bound),
                Some(RegistryCall::SetAgentWallet { signature, .. }) => *signature = over(bound),
                _ => unreachable!(),
            },
        }
        // The action length is checked first; here only the field is over.
        let r = b.check(&a, 0).unwrap_err();
        assert_eq!((r.field, r.len, r.max), (field, bound + 1, bound), "{kind}");
    }
}

#[test]
fn typed_errors() {
    // Variant 2 is PersonalMessage: [tag, varint len, bytes].
    let msg = Action::PersonalMessage(PersonalMessage { message: b"hi" });
    let enc = encode(&msg);
    assert_eq!(enc, [2, 2, b'h', b'i']);
    assert_eq!(Action::decode(&[2, 0x82, 0x00, b'h', b'i']), Err(Error::NonCanonical));
    assert_eq!(Action::decode(&[2, 2, b'h', b'i', 0]), Err(Error::TrailingBytes));
    assert_eq!(Action::decode(&[2, 2, b'h']), Err(Error::Truncated));
    assert_eq!(Action::decode(&[]), Err(Error::Truncated));
    assert_eq!(Action::decode(&[6]), Err(Error::UnknownVariant), "one past the last action");
    assert_eq!(Action::decode(&[0x80, 0x01]), Err(Error::UnknownVariant));
    // More metadata entries than an action holds: register(string,
    // (string,bytes)[]) with five empty entries.
    let e = MetadataEntry { key: "", value: &[] };
    let mut a = max_action(ActionKind::RegisterWithMetadata);
    *a.registry_call_mut().unwrap() = RegistryCall::RegisterWithMetadata {
        agent_uri: "",
        metadata: tee_core::heapless::Vec::from_slice(&[e; 4]).unwrap(),
    };
    let mut enc = encode(&a);
    let at = enc.len() - 4 * 2 - 1;
    assert_eq!(enc[at], 4, "the entry count");
    enc[at] = 5;
    enc.extend_from_slice(&[0, 0]);
    assert_eq!(Action::decode(&enc), Err(Error::TooLong));
    // Invalid UTF-8 in a string field: register(string) with bytes ff fe.
    let a = max_action(ActionKind::RegisterWithUri);
    let mut enc = encode(&a);
    let len = enc.len();
    enc[len - 1] = 0xff;
    assert_eq!(Action::decode(&enc), Err(Error::InvalidUtf8));
}
