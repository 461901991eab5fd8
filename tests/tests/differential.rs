//! Differential test against alloy, an independent implementation.
//!
//! For generated actions of every kind (1,000 cases per kind), tee-core's
//! calldata, digest, signature, signed transaction and transaction hash
//! equal alloy's, alloy recovers the signer's address, alloy decodes the
//! signed transaction tee-core produced, and tee-core's strict decoder reads
//! alloy's encoding back.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use alloy_consensus::{Transaction, TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use proptest::prelude::*;
use tee_core::action::tx;
use tee_core::limits::{MAX_REGISTRY_CALLDATA_LEN, MAX_SIGNED_TX_LEN};
use tee_core::{Action, ActionKind, SigningKey};
use tee_tests::{alloy_calldata, alloy_digest, alloy_tx, arb_action_of, arb_secret};

fn check(action: &Action<'_>, secret: &[u8; 32]) -> Result<(), TestCaseError> {
    let key = SigningKey::from_bytes(secret).unwrap();
    let reference = PrivateKeySigner::from_slice(secret).unwrap();
    prop_assert_eq!(key.address().0, reference.address().0.0);

    // Calldata of typed registry calls.
    if let Some(call) = action.registry_call() {
        let mut buf = [0u8; MAX_REGISTRY_CALLDATA_LEN];
        let ours = call.calldata(&mut buf).unwrap();
        prop_assert_eq!(&ours[..], &alloy_calldata(call)[..]);
        prop_assert_eq!(ours.len(), call.calldata_len());
    }

    // Digest.
    let signed = key.sign(action).unwrap();
    let digest = alloy_digest(action);
    prop_assert_eq!(signed.digest.0, digest.0);

    // Signature: RFC 6979 on both sides, so byte-identical.
    let theirs = reference.sign_hash_sync(&digest).unwrap();
    prop_assert_eq!(signed.signature.r, theirs.r().to_be_bytes::<32>());
    prop_assert_eq!(signed.signature.s, theirs.s().to_be_bytes::<32>());
    prop_assert_eq!(signed.signature.y_parity, theirs.v());
    prop_assert_eq!(&signed.signature.to_bytes()[..], &theirs.as_bytes()[..]);
    prop_assert_eq!(theirs.recover_address_from_prehash(&digest).unwrap(), reference.address());
    // And ours recovers it too.
    let ours = signed.signature.recover_address(&signed.digest).unwrap();
    prop_assert_eq!(ours.0, reference.address().0.0);

    // Signed transaction and its hash.
    if let Some(atx) = alloy_tx(action) {
        let env: TxEnvelope = atx.into_envelope(theirs);
        let alloy_raw = env.encoded_2718();
        let mut buf = [0u8; MAX_SIGNED_TX_LEN];
        let ours = tx::encode_signed(action, &signed.signature, &mut buf).unwrap().to_vec();
        prop_assert_eq!(&ours, &alloy_raw);
        prop_assert_eq!(tx::signed_len(action, &signed.signature).unwrap(), ours.len());
        prop_assert_eq!(tx::tx_hash(action, &signed.signature).unwrap().0, env.tx_hash().0);
        // alloy reads our bytes and recovers our signer.
        let decoded = TxEnvelope::decode_2718(&mut &ours[..]).unwrap();
        prop_assert_eq!(decoded.recover_signer().unwrap(), reference.address());
        prop_assert_eq!(decoded.chain_id(), action.chain_id());
        // Our strict decoder reads alloy's bytes back (either envelope),
        // for generic txs; a registry or token call's calldata reads back
        // as bytes.
        let (back, sig) = tee_core::action::Transaction::decode_signed(&alloy_raw).unwrap();
        prop_assert_eq!(sig, signed.signature);
        prop_assert_eq!(back.envelope, action.envelope().copied().unwrap());
        if action.kind() == ActionKind::GenericTx {
            prop_assert_eq!(&Action::Transaction(back), action);
        }
    }
    Ok(())
}

macro_rules! differential {
    ($($name:ident => $kind:expr),* $(,)?) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
            $(
                #[test]
                fn $name(action in arb_action_of($kind), secret in arb_secret()) {
                    prop_assert_eq!(action.kind(), $kind);
                    check(&action, &secret)?;
                }
            )*
        }
    };
}

differential! {
    agent_wallet_set => ActionKind::AgentWalletSet,
    register => ActionKind::Register,
    register_with_uri => ActionKind::RegisterWithUri,
    register_with_metadata => ActionKind::RegisterWithMetadata,
    set_agent_uri => ActionKind::SetAgentUri,
    set_metadata => ActionKind::SetMetadata,
    set_agent_wallet => ActionKind::SetAgentWallet,
    unset_agent_wallet => ActionKind::UnsetAgentWallet,
    give_feedback => ActionKind::GiveFeedback,
    revoke_feedback => ActionKind::RevokeFeedback,
    append_response => ActionKind::AppendResponse,
    validation_request => ActionKind::ValidationRequest,
    validation_response => ActionKind::ValidationResponse,
    generic_tx => ActionKind::GenericTx,
    personal_message => ActionKind::PersonalMessage,
    eip712_prehashed => ActionKind::Eip712Prehashed,
    task_receipt => ActionKind::TaskReceipt,
    token_transfer => ActionKind::TokenTransfer,
    token_approve => ActionKind::TokenApprove,
    token_transfer_from => ActionKind::TokenTransferFrom,
    transfer_with_authorization => ActionKind::TransferWithAuthorization,
    receive_with_authorization => ActionKind::ReceiveWithAuthorization,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Recovery from any signature tee-core accepts (in range, low `s`):
    /// the same address as alloy's, or refused by both (an `r` that is no
    /// point's x, a product at infinity). Half the cases use a real
    /// signature with one byte of its digest or signature flipped.
    #[test]
    fn recovery_agrees_with_alloy(
        secret in arb_secret(),
        digest in any::<[u8; 32]>(),
        raw in any::<[u8; 64]>(),
        parity in any::<bool>(),
        (real, flip) in (any::<bool>(), 0usize..96),
    ) {
        let (mut r, mut s) = (raw[..32].try_into().unwrap(), raw[32..].try_into().unwrap());
        let mut digest = digest;
        let mut parity = parity;
        if real {
            let key = SigningKey::from_bytes(&secret).unwrap();
            let message = tee_core::action::PersonalMessage { message: &digest };
            let signed = key.sign(&Action::PersonalMessage(message)).unwrap();
            let sig = signed.signature;
            (digest, r, s, parity) = (signed.digest.0, sig.r, sig.s, sig.y_parity);
            match flip {
                0..32 => digest[flip] ^= 1,
                32..64 => r[flip - 32] ^= 1,
                _ => s[flip - 64] ^= 1,
            }
        }
        let sig = tee_core::Signature { r, s, y_parity: parity };
        // Only what tee-core takes as a signature (a flipped `s` may be high).
        prop_assume!(tee_core::Signature::from_bytes(&sig.to_bytes()).is_ok());
        let theirs = alloy_primitives::Signature::new(
            alloy_primitives::U256::from_be_bytes(r),
            alloy_primitives::U256::from_be_bytes(s),
            parity,
        )
        .recover_address_from_prehash(&alloy_primitives::B256::from(digest))
        .ok()
        .map(|a| a.0.0);
        let ours = sig.recover_address(&tee_core::B256(digest)).ok().map(|a| a.0);
        prop_assert_eq!(ours, theirs);
    }
}

/// Every kind has a test above: a new kind without one fails here.
#[test]
fn every_kind_is_covered() {
    assert_eq!(ActionKind::ALL.len(), 22);
}
