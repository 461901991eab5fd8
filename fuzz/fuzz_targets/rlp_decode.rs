//! Strict transaction decoding (EIP-1559 and legacy with EIP-155): never
//! panics, whatever it accepts re-encodes to exactly the input, and the
//! verifier's reading of a signed transaction (`signing_hash_of_signed`)
//! agrees with the decoder's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_core::Action;
use tee_core::action::Transaction;
use tee_core::action::tx;
use tee_core::limits::MAX_SIGNED_TX_LEN;

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; MAX_SIGNED_TX_LEN];
    if let Ok(t) = Transaction::decode_unsigned(data) {
        let action = Action::Transaction(t);
        let enc = tx::encode_unsigned(&action, &mut buf).expect("re-encodes");
        assert_eq!(&enc[..], data, "accepted a non-canonical unsigned transaction");
    }
    if let Ok((t, sig)) = Transaction::decode_signed(data) {
        let action = Action::Transaction(t);
        let enc = tx::encode_signed(&action, &sig, &mut buf).expect("re-encodes");
        assert_eq!(&enc[..], data, "accepted a non-canonical signed transaction");
        assert_eq!(tx::signing_hash_of_signed(data), Ok((action.digest(), sig)));
        let _ = sig.recover_address(&action.digest());
    }
    // Any calldata length: the verifier's reader never panics.
    let _ = tx::signing_hash_of_signed(data);
});
