//! Strict EIP-1559 decoding: never panics, and whatever it accepts
//! re-encodes to exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_core::Action;
use tee_core::action::GenericTx;
use tee_core::action::tx;
use tee_core::limits::MAX_SIGNED_TX_LEN;

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; MAX_SIGNED_TX_LEN];
    if let Ok(t) = GenericTx::decode_unsigned(data) {
        let enc = tx::encode_unsigned(&Action::GenericTx(t), &mut buf).expect("re-encodes");
        assert_eq!(&enc[..], data, "accepted a non-canonical unsigned transaction");
    }
    if let Ok((t, sig)) = GenericTx::decode_signed(data) {
        let action = Action::GenericTx(t);
        let enc = tx::encode_signed(&action, &sig, &mut buf).expect("re-encodes");
        assert_eq!(&enc[..], data, "accepted a non-canonical signed transaction");
        let _ = sig.recover_address(&action.digest());
    }
});
