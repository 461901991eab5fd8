//! Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/seed-*`):
//! a typical and the largest action of every kind, the signed and unsigned
//! transactions of every transaction kind, request frames and bodies, and
//! a few device sessions.
//!
//! `cargo run -p tee-tests --example fuzz_seeds`
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use tee_core::limits::{MAX_ACTION_LEN, MAX_SIGNED_TX_LEN};
use tee_core::protocol::{Command, DeviceInfo, Echo, GetAuditLog, MAX_REQUEST_WIRE, Sign};
use tee_core::{ActionKind, SigningKey, codec, device, sample, tx};
use tee_tests::max_action;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    requests(&root);
    sessions(&root);
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

/// Request frames (accumulator) and bodies prefixed with the decoder index
/// the request_decode target uses.
fn requests(root: &Path) {
    let sign = Sign { slot: 0, sequence: 7, action: sample::action(ActionKind::SetAgentUri) };
    let echo = Echo { data: tee_core::heapless::Vec::from_slice(b"\x00hello\x00").unwrap() };
    let mut buf = vec![0u8; MAX_REQUEST_WIRE];
    let mut stream = Vec::new();
    stream.extend_from_slice(device::encode_request(1, &sign, &mut buf).unwrap());
    stream.extend_from_slice(device::encode_request(2, &echo, &mut buf).unwrap());
    stream.extend_from_slice(device::encode_request(3, &DeviceInfo, &mut buf).unwrap());
    // (chunk size, bytes) as the target reads its input.
    let mut input = vec![3u8];
    input.extend_from_slice(&(stream.len() as u64).to_le_bytes());
    input.extend_from_slice(&stream);
    write(&root.join("frame_accumulator"), "seed-stream", &input);

    let mut body = vec![5u8]; // Sign's decoder
    body.extend_from_slice(codec::encode(&sign, &mut buf).unwrap());
    write(&root.join("request_decode"), "seed-sign", &body);
    let mut body = vec![7u8]; // GetAuditLog's decoder
    body.extend_from_slice(codec::encode(&GetAuditLog { from: 300 }, &mut buf).unwrap());
    write(&root.join("request_decode"), "seed-audit", &body);
    let _ = Sign::CODE;
}

/// Session scripts in the session target's operation language.
fn sessions(root: &Path) {
    // generate slot 0, allow all typed kinds, sign twice at colliding
    // sequences, attest, read the log, lose power, sign again.
    let script: &[u8] = &[
        1, 0, // GenerateKey slot 0
        2, 0, 0xfe, 0x1f, 0x00, // SetPolicy slot 0, typed kinds
        3, 0, 1, 4, 0, // Sign slot 0 seq 1 setAgentURI
        3, 0, 1, 4, 0, // exact retry
        3, 0, 1, 8, 1, // other action, same sequence
        5, 0, // Attest slot 0
        6, 0, // audit log
        8, 1, // power loss after the next write
        3, 0, 2, 9, 2, // sign seq 2
        3, 0, 2, 9, 2, // retry after restart
    ];
    write(&root.join("session"), "seed-basic", script);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
    println!("{}/{name}: {} bytes", dir.display(), bytes.len());
}
