//! The client's side of the wire: a response payload (header and body) for
//! any command either fails to decode with a typed error or is the one
//! canonical encoding of what it decodes to. A host never acts on a response
//! whose bytes could mean something else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_core::codec;
use tee_core::device::decode_response;
use tee_core::frame::Header;
use tee_core::protocol::*;

fn check<C: Command>(payload: &[u8]) {
    let Ok((header, response)) = decode_response::<C>(payload) else { return };
    assert!(header.command == C::CODE || header.command == 0, "a response to another command");
    let (_, body) = Header::split(payload).expect("the header decoded once");
    let mut buf = vec![0u8; MAX_RESPONSE_BODY + 64];
    let enc = codec::encode(&response, &mut buf).expect("a decoded response re-encodes");
    assert_eq!(&enc[..], body, "command {:#04x}: a non-canonical response accepted", C::CODE);
}

fuzz_target!(|input: (u8, &[u8])| {
    let (code, payload) = input;
    match code % 12 {
        0 => check::<DeviceInfo>(payload),
        1 => check::<GetPublicKey>(payload),
        2 => check::<GenerateKey>(payload),
        3 => check::<DeriveKey>(payload),
        4 => check::<SetPolicy>(payload),
        5 => check::<Sign>(payload),
        6 => check::<Attest>(payload),
        7 => check::<GetAuditLog>(payload),
        8 => check::<Echo>(payload),
        9 => check::<GetPolicy>(payload),
        10 => check::<AttestAction>(payload),
        _ => check::<GetEvidence>(payload),
    }
});
