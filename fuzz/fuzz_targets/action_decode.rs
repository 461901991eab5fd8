//! Canonical action decoding: never panics, and whatever it accepts is the
//! one encoding of what it returns, with a digest and (for transactions) a
//! transaction encoding. Its fields borrow from the input, and a device's
//! bounds check (the microcontroller's, the host's) answers for any of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_core::Action;
use tee_core::action::{ActionBounds, tx};
use tee_core::limits::{MAX_ACTION_LEN, MAX_SIGNED_TX_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(action) = Action::decode(data) else { return };
    let mut buf = vec![0u8; MAX_ACTION_LEN.max(data.len())];
    let enc = action.encode(&mut buf).expect("a decoded action re-encodes");
    assert_eq!(&enc[..], data, "accepted a non-canonical encoding");
    assert_eq!(action.encoded_len(), data.len());
    for bounds in [ActionBounds::MCU, ActionBounds::HOST] {
        if bounds.check(&action, data.len()).is_ok() {
            assert!(data.len() <= bounds.action as usize);
        }
    }
    let _ = action.digest();
    let _ = action.to_string();
    let mut txbuf = vec![0u8; MAX_SIGNED_TX_LEN.max(2 * data.len() + 512)];
    match tx::encode_unsigned(&action, &mut txbuf) {
        Ok(_) => assert!(action.is_transaction()),
        Err(e) => assert_eq!(e, tee_core::Error::NotATransaction),
    }
});
