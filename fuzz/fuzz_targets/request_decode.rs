//! Every command's request decoder over arbitrary bodies: never panics, and
//! accepts only canonical encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_core::codec;
use tee_core::protocol::*;

/// Decodes the body as command `C` and, if that succeeds, checks it
/// re-encodes to the same bytes.
struct Check<'a>(&'a [u8]);

impl CommandVisitor for Check<'_> {
    type Output = ();
    fn visit<C: Command>(self) {
        let body = self.0;
        if let Ok(cmd) = C::decode(body) {
            let mut buf = vec![0u8; MAX_REQUEST_BODY + 64];
            let enc = codec::encode(&cmd, &mut buf).expect("re-encodes");
            assert_eq!(&enc[..], body, "command {:#04x} accepted a non-canonical body", C::CODE);
        }
    }
}

fuzz_target!(|input: (u8, &[u8])| {
    // Every command of the table, chosen by the first byte.
    let (pick, body) = input;
    let code = COMMAND_CODES[usize::from(pick) % COMMAND_CODES.len()];
    with_command(code, Check(body));
});
