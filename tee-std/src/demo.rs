//! The end-to-end demo: sign one ERC-8004 action and show everything a
//! verifier would check.

use std::fmt::Write as _;

use tee_core::limits::MAX_SIGNED_TX_LEN;
use tee_core::primitives::Hex;
use tee_core::{ActionKind, SigningKey, sample, tx};

/// The demo key: anvil/hardhat account 0, public knowledge. Never fund it.
pub const DEMO_KEY: [u8; 32] = [
    0xac, 0x09, 0x74, 0xbe, 0xc3, 0x9a, 0x17, 0xe3, 0x6b, 0xa4, 0xa6, 0xb4, 0xd2, 0x38, 0xff, 0x94,
    0x4b, 0xac, 0xb4, 0x78, 0xcb, 0xed, 0x5e, 0xfc, 0xae, 0x78, 0x4d, 0x7b, 0xf4, 0xf2, 0xff, 0x80,
];

pub use crate::policyfile::kind_by_name;

/// Signs the sample action of `kind` with the demo key; returns the report.
pub fn run(kind: ActionKind) -> Result<String, tee_core::Error> {
    let key = SigningKey::from_bytes(&DEMO_KEY)?;
    let action = sample::action(kind);
    let signed = key.sign(&action)?;
    let recovered = signed.signature.recover_address(&signed.digest)?;

    let mut out = String::new();
    let mut line = |label: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{label:<18} {value}");
    };
    line("signer", &key.address());
    line("action kind", &kind);
    line("action", &action);
    line("digest", &signed.digest);
    line("signature", &signed.signature);
    line("recovered address", &recovered);
    if action.tx_params().is_some() {
        let mut buf = [0u8; MAX_SIGNED_TX_LEN];
        let raw = tx::encode_signed(&action, &signed.signature, &mut buf)?;
        line("signed tx", &Hex(raw));
        line("tx hash", &tx::tx_hash(&action, &signed.signature)?);
    }
    let ok = recovered == key.address();
    line("verified", &if ok { "yes: recovered address is the signer" } else { "NO" });
    if !ok {
        return Err(tee_core::Error::InvalidSignature);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn demo_signs_and_verifies_every_kind() {
        for kind in ActionKind::ALL {
            let report = run(kind).unwrap();
            assert!(report.contains("verified           yes"), "{report}");
            assert_eq!(
                report.contains("signed tx"),
                kind.registry().is_some() || kind == ActionKind::GenericTx
            );
            assert_eq!(kind_by_name(kind.name()), Some(kind));
        }
        assert_eq!(kind_by_name("setagenturi"), Some(ActionKind::SetAgentUri));
        assert_eq!(kind_by_name("nope"), None);
    }
}
