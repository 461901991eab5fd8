//! Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/seed-*`):
//! a typical and the largest action of every kind (and the typical one as a
//! legacy transaction), as its canonical encoding and as the JSON wallets send, the signed and unsigned transactions of every
//! transaction kind, request frames and bodies,
//! response payloads from a real session, a few device sessions, and flash
//! patches for the boot target.
//!
//! `cargo run -p tee-tests --example fuzz_seeds`
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use tee_core::action::tx;
use tee_core::device::Device;
use tee_core::limits::{MAX_ACTION_LEN, MAX_SIGNED_TX_LEN};
use tee_core::protocol::{APPROVAL_LEN, AdminAuth, SignApproved};
use tee_core::protocol::{
    Command, DeviceInfo, Echo, GenerateKey, GetAuditLog, GetPolicy, GetPublicKey, MAX_REQUEST_WIRE,
    SetPolicy, Sign,
};
use tee_core::{ActionKind, SigningKey, codec};
use tee_testkit::sample;
use tee_testkit::{MemBackend, Pair};
use tee_tests::max_action;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    requests(&root);
    responses(&root);
    sessions(&root);
    flash(&root);
    evidence(&root);
    attestations(&root);
    state(&root);
    let key = SigningKey::from_bytes(&[7; 32]).unwrap();
    for &kind in ActionKind::ALL {
        let typical = sample::action(kind);
        let legacy = sample::legacy(&typical).map(|l| ("legacy", l));
        for (label, a) in [("max", max_action(kind)), ("typ", typical)].into_iter().chain(legacy) {
            let name = |what: &str| format!("seed-{what}{label}-{:02}", kind as u8);
            let mut buf = [0u8; MAX_ACTION_LEN];
            write(&root.join("action_decode"), &name(""), a.encode(&mut buf).unwrap());
            // The JSON a wallet sends for it (none for the pre-hashed kind;
            // the typical ones: the largest are tens of KiB of hex).
            if label != "max"
                && let Some(json) = tee_client::actions::to_json(&a)
            {
                write(&root.join("json_action"), &name("json-"), json.to_string().as_bytes());
            }
            if a.is_transaction() {
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
    stream.extend_from_slice(tee_core::client::encode_request(1, &sign, &mut buf).unwrap());
    stream.extend_from_slice(tee_core::client::encode_request(2, &echo, &mut buf).unwrap());
    stream.extend_from_slice(tee_core::client::encode_request(3, &DeviceInfo, &mut buf).unwrap());
    // (chunk size, bytes) as the target reads its input.
    let mut input = vec![3u8];
    input.extend_from_slice(&(stream.len() as u64).to_le_bytes());
    input.extend_from_slice(&stream);
    write(&root.join("frame_accumulator"), "seed-stream", &input);

    let mut body = vec![5u8]; // Sign's decoder
    body.extend_from_slice(codec::encode(&sign, &mut buf).unwrap());
    write(&root.join("request_decode"), "seed-sign", &body);
    let approved = SignApproved {
        slot: 0,
        sequence: 7,
        expires: 1_767_225_600,
        approvals: &[0x11; 2 * APPROVAL_LEN],
        action: sample::action(ActionKind::GenericTx),
    };
    let mut body = vec![15u8]; // SignApproved's decoder
    body.extend_from_slice(codec::encode(&approved, &mut buf).unwrap());
    write(&root.join("request_decode"), "seed-sign-approved", &body);
    let mut body = vec![7u8]; // GetAuditLog's decoder
    body.extend_from_slice(codec::encode(&GetAuditLog { from: 300 }, &mut buf).unwrap());
    write(&root.join("request_decode"), "seed-audit", &body);
    let _ = Sign::CODE;
}

/// Response payloads (header and body) of a real session, each prefixed
/// with the decoder index the response_decode target uses.
fn responses(root: &Path) {
    let mut p = Pair::new(Device::open(MemBackend::new(1), tee_testkit::config()).unwrap());
    p.admin(GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED }).unwrap();
    p.admin(SetPolicy { slot: 0, policy: tee_testkit::typed_policy(), auth: AdminAuth::UNSIGNED })
        .unwrap();
    let sign = Sign { slot: 0, sequence: 1, action: sample::action(ActionKind::SetAgentUri) };
    let seeds: [(&str, u8, Vec<u8>); 7] = [
        ("info", 0, p.request(&DeviceInfo)),
        ("key", 1, p.request(&GetPublicKey { slot: 0 })),
        ("empty-slot", 1, p.request(&GetPublicKey { slot: 5 })),
        ("sign", 5, p.request(&sign)),
        (
            "replay",
            5,
            p.request(&Sign { action: sample::action(ActionKind::GiveFeedback), ..sign.clone() }),
        ),
        ("audit", 7, p.request(&GetAuditLog { from: 0 })),
        ("policy", 9, p.request(&GetPolicy { slot: 0 })),
    ];
    for (name, index, payload) in seeds {
        let mut input = vec![index];
        input.extend_from_slice(&payload);
        write(&root.join("response_decode"), &format!("seed-{name}"), &input);
    }
}

/// Inputs of the flash_boot target: the good image as it is, one byte
/// overwritten in a page header and in a record, a page erased.
fn flash(root: &Path) {
    let dir = root.join("flash_boot");
    write(&dir, "seed-good", &[0]);
    write(&dir, "seed-header", &[0, 0x04, 0x00, 0x00]);
    write(&dir, "seed-record", &[0, 0x18, 0x04, 0x5a]);
    write(&dir, "seed-erased", &[2, 1]);
}

/// Inputs of the evidence target: the sample quote untouched and with a
/// report byte changed, each with a dstack-style event log; and the shapes
/// an attacker's log takes (identity emitted after `system-ready`, twice
/// before it, no `system-ready`, v2 events with a preimage, a lying one).
fn evidence(root: &Path) {
    use tee_verify::eventlog::Event;
    let boot = || {
        vec![
            Event::runtime("system-preparing", &[]),
            Event::runtime("app-id", &[0x11; 20]),
            Event::runtime("compose-hash", &[0x22; 32]),
            Event::runtime("key-provider", b"{\"name\":\"kms\"}"),
            Event::runtime("system-ready", &[]),
        ]
    };
    let json = |log: &[Event]| serde_json::to_vec(log).unwrap();
    let dir = root.join("evidence");
    write(&dir, "seed-clean", &[[0u8].as_slice(), &json(&boot())].concat());
    write(&dir, "seed-report-byte", &[[1u8, 0x00, 0x01, 0x5a].as_slice(), &json(&boot())].concat());
    write(&dir, "seed-no-log", &[0]);
    let mut after = boot();
    after.push(Event::runtime("compose-hash", &[0; 32]));
    after.push(Event::runtime("app-id", &[0; 20]));
    write(&dir, "seed-identity-after-ready", &[[0u8].as_slice(), &json(&after)].concat());
    let mut twice = boot();
    twice.insert(2, Event::runtime("app-id", &[0; 20]));
    write(&dir, "seed-identity-twice", &[[0u8].as_slice(), &json(&twice)].concat());
    let mut unready = boot();
    unready.pop();
    write(&dir, "seed-no-system-ready", &[[0u8].as_slice(), &json(&unready)].concat());
    let mut v2 = boot();
    for e in &mut v2 {
        e.version = Some(2);
        e.preimage = Some(hex::encode(e.preimage_bytes(0).unwrap()));
        e.digest = e.computed_digest(0).unwrap().to_vec();
    }
    write(&dir, "seed-v2-preimage", &[[0u8].as_slice(), &json(&v2)].concat());
    if let Some(e) = v2.get_mut(1) {
        e.preimage = Some(hex::encode(b"not the content"));
    }
    write(&dir, "seed-v2-lying-preimage", &[[0u8].as_slice(), &json(&v2)].concat());
}

/// Inputs of the dstack_attestation target: the simulated guest agent's
/// `Attest` in both encodings (V0 SCALE, V1 MessagePack), with an event
/// the app emitted.
fn attestations(root: &Path) {
    let sim = tee_sim::SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap();
    sim.emit_event("agent-config", b"v2").unwrap();
    let dir = root.join("dstack_attestation");
    write(&dir, "seed-v0", &sim.attest(&[7; 64]));
    write(&dir, "seed-v1", &sim.attest_v1(&[7; 64]));
}

/// Inputs of the state_file target: a journal as the store writes it
/// (raw mode), and records behind a valid MAC chain (structured mode).
fn state(root: &Path) {
    use tee_core::device::{CounterId, HighWater};
    use tee_store::store::{FileStore, JOURNAL, StateKey};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let key = zeroize::Zeroizing::new([0x5e; 32]);
    let admin = tee_core::Address([0xad; 20]);
    let mut store = FileStore::open(&dir, StateKey::Tee(key), Some(admin)).unwrap();
    let mark = HighWater { value: 7, digest: tee_core::B256([0x5a; 32]) };
    store.commit_counter(CounterId::Slot(1), &mark).unwrap();
    store.store_slot(1, b"a slot record").unwrap();
    drop(store);
    let journal = fs::read(dir.join(JOURNAL)).unwrap();
    let out = root.join("state_file");
    write(&out, "seed-journal", &[[0u8].as_slice(), &journal].concat());
    let mut buf = [0u8; 64];
    let counter = codec::encode(&(CounterId::Slot(2), mark), &mut buf).unwrap().to_vec();
    let len = u8::try_from(counter.len()).unwrap();
    write(&out, "seed-records", &[[1u8, 3, len].as_slice(), &counter].concat());
    write(&out, "seed-empty", &[0]);
}

/// Session scripts in the session target's operation language.
fn sessions(root: &Path) {
    // generate slot 0, allow all typed kinds, sign twice at colliding
    // sequences, attest, read the log, lose power, sign again.
    let script: &[u8] = &[
        1, 0, // GenerateKey slot 0
        2, 0, 0xfe, 0x1f, 0x00, 0x00, // SetPolicy slot 0, typed kinds
        3, 0, 1, 4, 0, // Sign slot 0 seq 1 setAgentURI
        3, 0, 1, 4, 0, // exact retry
        3, 0, 1, 8, 1, // other action, same sequence
        5, 0, // Attest slot 0
        5, 0x84, 1, // AttestAction slot 0 seq 1 (the digest signed), event log
        6, 0, // audit log
        8, 1, // power loss after the next write
        3, 0, 2, 9, 2, // sign seq 2
        3, 0, 2, 9, 2, // retry after restart
    ];
    write(&root.join("session"), "seed-basic", script);
    // An approval rule (bit 26): setAgentURI refused alone, then with a
    // stranger's approval, an expired one, and an approver's.
    let script: &[u8] = &[
        1, 0, // GenerateKey slot 0
        2, 0, 0xfe, 0x1f, 0x00, 0x04, // SetPolicy slot 0, typed kinds, approvals
        3, 0, 1, 4, 0, // Sign slot 0 seq 1 setAgentURI: ApprovalRequired
        4, 0, 1, 4, 0, 0x0c, // SignApproved by the stranger, 1 min
        4, 0, 1, 4, 0, 0x81, // SignApproved by approver 0, expired
        4, 0, 1, 4, 0, 0x09, // SignApproved by approver 0, 1 min: signed
        3, 0, 1, 4, 0, // the exact retry, without approvals
        6, 0, // audit log
    ];
    write(&root.join("session"), "seed-approvals", script);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
    println!("{}/{name}: {} bytes", dir.display(), bytes.len());
}
