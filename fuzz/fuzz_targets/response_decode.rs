//! The client's side of the wire: a response payload (header and body) for
//! any command either fails to decode with a typed error or is the one
//! canonical encoding of what it decodes to. A host never acts on a response
//! whose bytes could mean something else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_core::client::decode_response;
use tee_core::codec;
use tee_core::frame::Header;
use tee_core::protocol::*;

/// Decodes the payload as a response to command `C` and, if that
/// succeeds, checks it re-encodes to the same bytes.
struct Check<'a>(&'a [u8]);

impl CommandVisitor for Check<'_> {
    type Output = ();
    fn visit<C: Command>(self) {
        let payload = self.0;
        let Ok((header, response)) = decode_response::<C>(payload) else { return };
        assert!(header.command == C::CODE || header.command == 0, "a response to another command");
        let (_, body) = Header::split(payload).expect("the header decoded once");
        let mut buf = vec![0u8; MAX_RESPONSE_BODY + 64];
        let enc = codec::encode(&response, &mut buf).expect("a decoded response re-encodes");
        assert_eq!(&enc[..], body, "command {:#04x}: a non-canonical response accepted", C::CODE);
    }
}

fuzz_target!(|input: (u8, &[u8])| {
    // Every command of the table, chosen by the first byte.
    let (pick, payload) = input;
    let code = COMMAND_CODES[usize::from(pick) % COMMAND_CODES.len()];
    with_command(code, Check(payload));
});
