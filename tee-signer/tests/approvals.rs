//! m-of-n approvals through the command line, as an agent and its
//! approvers use it: `sign` prints the approval request and exits refused,
//! each approver runs `approve` on it with a key of its own (which checks
//! the action hashes to the digest it approves), and `sign --request
//! --approval --approval` signs; one approval, an approval of another
//! action, or a request edited to show an approver something else does not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
use common::*;

use std::path::Path;

/// Approver keys A, B, C and their addresses.
const APPROVERS: [(&str, &str); 3] = [
    (
        "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ),
    (
        "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    ),
    (
        "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    ),
];

fn key_file(dir: &Path, name: &str, hex: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("0x{hex}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A transfer of `value` wei on Base, as a wallet sends it.
fn transfer(value: u64, nonce: u64) -> String {
    format!(
        r#"{{"type": "0x2", "chainId": "0x2105", "nonce": "{nonce:#x}", "to": "0x5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
            "value": "{value:#x}", "gas": "0x5208", "maxFeePerGas": "0x3b9aca00",
            "maxPriorityFeePerGas": "0x1", "data": "0x"}}"#
    )
}

#[test]
fn two_of_three_approve_with_the_cli_and_nothing_less_signs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Paths { state, socket, conn } = paths(d);
    let _server = serve(&state, &socket, Some(ADMIN));
    let admin = &admin_key_file(d);
    ok(&["generate-key", "-c", &conn, "--admin-key-file", admin]);
    let approvers = APPROVERS.map(|(_, a)| format!("{a:?}")).join(", ");
    let policy = write(
        d,
        "p.toml",
        &format!(
            "kinds = [\"generic-tx\"]\nchains = [8453]\ncontracts = \"any\"\nagents = \"any\"\n\
             max_value_wei = \"1000000000000000000\"\nmax_gas_limit = 100000\n\
             max_fee_per_gas_wei = \"100000000000\"\nmax_deadline_ahead_secs = 300\n\
             approvals = {{ approvers = [{approvers}], threshold = 2, \
             above_value_wei = \"100000000000000000\", max_ttl_secs = 3600 }}\n"
        ),
    );
    set_policy(&conn, admin, &policy);
    // The rule reads back as it was written.
    let read = ok(&["get-policy", "-c", &conn]);
    assert!(read.contains("threshold = 2") && read.contains(APPROVERS[2].1), "{read}");

    // Below the bound: signed without approvals.
    let small = write(d, "small.json", &transfer(1_000, 0));
    ok(&["sign", "-c", &conn, "--json", &small]);

    // Above it: refused (exit 3), the request on stdout.
    let big = write(d, "big.json", &transfer(500_000_000_000_000_000, 1));
    let o = run(&["sign", "-c", &conn, "--json", &big]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let held: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let request = &held["approvalRequest"];
    assert_eq!((request["need"].as_u64(), request["have"].as_u64()), (Some(2), Some(0)));
    assert_eq!(request["sequence"], 2);
    assert_eq!(held["typedData"]["primaryType"], "Approval");
    let request_file = write(d, "request.json", &serde_json::to_string(&held).unwrap());

    // Each approver approves with its own key.
    let approve = |i: usize, request: &str| {
        let key = key_file(d, &format!("approver{i}.key"), APPROVERS[i].0);
        let out = ok(&["approve", "--request", request, "--key-file", &key]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["approver"], APPROVERS[i].1);
        v["signature"].as_str().unwrap().to_owned()
    };
    let (a, c) = (approve(0, &request_file), approve(2, &request_file));
    let sign_with = |sigs: &[&str]| {
        let mut args = vec!["sign", "-c", &conn, "--json", &big, "--request", &request_file];
        for s in sigs {
            args.extend(["--approval", s]);
        }
        run(&args)
    };
    // One approval, or the same one twice: still held.
    for sigs in [&[a.as_str()][..], &[&a, &a]] {
        let o = sign_with(sigs);
        assert_eq!(o.status.code(), Some(3));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["approvalRequest"]["have"], 1, "{v}");
    }
    // Two: signed at the request's sequence.
    let signed = sign_with(&[&a, &c]);
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let signed: serde_json::Value = serde_json::from_slice(&signed.stdout).unwrap();
    assert_eq!(signed["sequence"], 2);
    // The approvals sign nothing else: another transfer at the next sequence.
    let other = write(d, "other.json", &transfer(500_000_000_000_000_000, 2));
    let o = run(&[
        "sign",
        "-c",
        &conn,
        "--json",
        &other,
        "--request",
        &request_file,
        "--approval",
        &a,
        "--approval",
        &c,
    ]);
    assert_eq!(o.status.code(), Some(3));
    // The audit log says who approved.
    let audit = ok(&["audit", "-c", &conn, "--json"]);
    assert!(audit.contains("pproved"), "{audit}");

    // An approver shown another action than the digest it would approve
    // refuses (exit 2), as does one given only a digest.
    let mut edited = held.clone();
    edited["approvalRequest"]["action"] = serde_json::from_str(&transfer(1, 1)).unwrap();
    let edited = write(d, "edited.json", &serde_json::to_string(&edited).unwrap());
    let key = key_file(d, "b.key", APPROVERS[1].0);
    let o = run(&["approve", "--request", &edited, "--key-file", &key]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let mut bare = held.clone();
    bare["approvalRequest"].as_object_mut().unwrap().remove("action");
    let bare = write(d, "bare.json", &serde_json::to_string(&bare).unwrap());
    let o = run(&["approve", "--request", &bare, "--key-file", &key]);
    assert_eq!(o.status.code(), Some(2));
}
