//! Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/seed-*`):
//! a typical and the largest action of every kind, and the signed and
//! unsigned transactions of every transaction kind.
//!
//! `cargo run -p tee-tests --example fuzz_seeds`
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use tee_core::limits::{MAX_ACTION_LEN, MAX_SIGNED_TX_LEN};
use tee_core::{ActionKind, SigningKey, sample, tx};
use tee_tests::max_action;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let key = SigningKey::from_bytes(&[7; 32]).unwrap();
    for kind in ActionKind::ALL {
        for (label, a) in [("max", max_action(kind)), ("typ", sample::action(kind))] {
            let name = |what: &str| format!("seed-{what}{label}-{:02}", kind as u8);
            let mut buf = [0u8; MAX_ACTION_LEN];
            write(&root.join("action_decode"), &name(""), a.encode(&mut buf).unwrap());
            if a.tx_params().is_some() {
                // The RLP decoder reads any transaction action's encoding.
                let sig = key.sign(&a).unwrap().signature;
                let mut t = [0u8; MAX_SIGNED_TX_LEN];
                let signed = tx::encode_signed(&a, &sig, &mut t).unwrap().to_vec();
                write(&root.join("rlp_decode"), &name("signed-"), &signed);
                let unsigned = tx::encode_unsigned(&a, &mut t).unwrap();
                write(&root.join("rlp_decode"), &name("unsigned-"), unsigned);
            }
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
    println!("{}/{name}: {} bytes", dir.display(), bytes.len());
}
