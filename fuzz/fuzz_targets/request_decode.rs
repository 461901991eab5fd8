//! Every command's request decoder over arbitrary bodies: never panics, and
//! accepts only canonical encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_core::codec;
use tee_core::protocol::*;

fn check<C: Command>(body: &[u8]) {
    if let Ok(cmd) = C::decode(body) {
        let mut buf = vec![0u8; MAX_REQUEST_BODY + 64];
        let enc = codec::encode(&cmd, &mut buf).expect("re-encodes");
        assert_eq!(&enc[..], body, "command {:#04x} accepted a non-canonical body", C::CODE);
    }
}

fuzz_target!(|input: (u8, &[u8])| {
    let (code, body) = input;
    match code % 12 {
        0 => check::<DeviceInfo>(body),
        1 => check::<GetPublicKey>(body),
        2 => check::<GenerateKey>(body),
        3 => check::<DeriveKey>(body),
        4 => check::<SetPolicy>(body),
        5 => check::<Sign>(body),
        6 => check::<Attest>(body),
        7 => check::<GetAuditLog>(body),
        8 => check::<Echo>(body),
        9 => check::<GetPolicy>(body),
        10 => check::<AttestAction>(body),
        _ => check::<GetEvidence>(body),
    }
});
