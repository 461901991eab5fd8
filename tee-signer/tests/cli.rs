//! The `tee-signer` binary as an operator uses it: `serve --simulated` on a
//! state directory, the admin deriving a key and setting a policy from a
//! file, the agent signing with an attestation, a validator verifying the
//! JSON it printed, and the mistakes an operator makes refused with reasons.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// The state directory holds keys and marks: the signer makes it private,
/// and refuses one that others can read or write.
#[test]
fn state_directory_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("signer.sock");
    let server = serve(&state, &socket, Some(ADMIN));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&socket), 0o600);
    drop(server);
    let _ = std::fs::remove_file(&socket);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let listen = format!("unix:{}", socket.display());
    let e =
        fails(&["serve", "--simulated", "--state", state.to_str().unwrap(), "--listen", &listen]);
    assert!(e.contains("open to others"), "{e}");
    let e = fails(&[
        "serve",
        "--no-tee",
        "--state",
        "/tmp/x",
        "--listen",
        &listen,
        "--socket-mode",
        "666",
    ]);
    assert!(e.contains("600 or 660"), "{e}");
}

#[test]
fn operator_admin_agent_and_validator_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let Paths { state, socket, conn } = paths(dir.path());
    let key_file = &admin_key_file(dir.path());

    // A new state directory needs its admin.
    let e = fails(&["serve", "--simulated", "--state", state.to_str().unwrap(), "--listen", &conn]);
    assert!(e.contains("give the admin address"), "{e}");
    let server = serve(&state, &socket, Some(ADMIN));
    let info = ok(&["info", "-c", &conn]);
    assert!(info.contains("Simulated") && info.contains(ADMIN), "{info}");

    let address = derive_key(&conn, key_file, "erc8004/agent");

    // Deny-all until the policy is set.
    let e = fails(&["sign", "-c", &conn, "--sample", "setAgentURI"]);
    assert!(e.contains("KindNotAllowed"), "{e}");
    let slot_policy = policy_file(dir.path(), "policy.toml", &["AgentWalletSet", "setAgentURI"]);
    set_policy(&conn, key_file, &slot_policy);
    // A policy file with a typo is refused before anything is sent.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&slot_policy).unwrap().replace("setAgentURI", "setAgentUrl"),
    )
    .unwrap();
    let e = fails(&set_policy_args(&conn, key_file, bad.to_str().unwrap()));
    assert!(e.contains("unknown action kind \"setAgentUrl\""), "{e}");
    // An admin key file others can read is refused before anything is sent.
    let shared = dir.path().join("shared.key");
    std::fs::copy(key_file, &shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = fails(&set_policy_args(&conn, shared.to_str().unwrap(), &slot_policy));
    assert!(e.contains("readable or writable by others") && e.contains("chmod 600"), "{e}");
    // A wrong admin key is refused by the signer.
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, "11".repeat(32)).unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = fails(&[
        "generate-key",
        "-c",
        &conn,
        "--admin-key-file",
        wrong.to_str().unwrap(),
        "--slot",
        "1",
    ]);
    assert!(e.contains("Unauthorized"), "{e}");

    // The agent signs; the JSON verifies but for DCAP (simulated).
    let signed = ok(&["sign", "-c", &conn, "--sample", "setAgentURI"]);
    let json: serde_json::Value = serde_json::from_str(&signed).unwrap();
    assert_eq!(json["provider"], "phala-dstack");
    assert_eq!(json["sequence"], 1);
    let sig_file = dir.path().join("sig.json");
    std::fs::write(&sig_file, &signed).unwrap();
    // No verdict without a policy that pins who the signer must be.
    let e = fails(&["verify", sig_file.to_str().unwrap(), "--collateral", COLLATERAL]);
    assert!(e.contains("no verifier policy") && e.contains("compose_hash"), "{e}");
    // The validator pins one to the deployment: an attestation, the
    // app-compose file it reviewed, the KMS root.
    let challenge = format!("0x{}", "ab".repeat(32));
    let att = ok(&["attest", "-c", &conn, "--challenge", &challenge]);
    let att_file = dir.path().join("att.json");
    std::fs::write(&att_file, att).unwrap();
    let compose = dir.path().join("app-compose.json");
    std::fs::write(&compose, tee_sim::deployment::APP_COMPOSE).unwrap();
    let kms_root =
        tee_core::SigningKey::from_bytes(&tee_sim::deployment::KMS_ROOT).unwrap().address();
    let kms_root = kms_root.to_string();
    let policy = dir.path().join("validator.toml");
    let pin = |compose: &Path| {
        run(&[
            "policy",
            "--attestation",
            att_file.to_str().unwrap(),
            "--app-compose",
            compose.to_str().unwrap(),
            "--kms-root",
            &kms_root,
            "--out",
            policy.to_str().unwrap(),
        ])
    };
    let other = dir.path().join("other-compose.json");
    std::fs::write(&other, "{}").unwrap();
    let o = pin(&other);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("hashes to"), "{o:?}");
    assert!(pin(&compose).status.success());
    let pinned = std::fs::read_to_string(&policy).unwrap();
    assert!(pinned.contains("compose_hash") && pinned.contains("mrtd"), "{pinned}");
    // `compose-hash` prints the hash the deployment's event log records
    // (the one just pinned), and the app id dstack derives from it.
    let printed = ok(&["compose-hash", compose.to_str().unwrap()]);
    let hash = printed.trim().trim_start_matches("0x");
    assert!(pinned.contains(hash), "{hash} not in {pinned}");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["compose-hash", compose.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(j["appId"].as_str().unwrap(), &printed.trim()[..42]);
    // `--version` names the commit it was built from.
    let version = ok(&["--version"]);
    assert!(version.contains("(commit "), "{version}");
    let p = policy.to_str().unwrap();
    let args = [
        "verify",
        sig_file.to_str().unwrap(),
        "--policy",
        p,
        "--collateral",
        COLLATERAL,
        "--now",
        "1750809600",
    ];
    let o = run(&args);
    let report = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(5), "not verified: {report}");
    for line in [
        "pass  pinned",
        "pass  JSON fields",
        "pass  binding",
        "pass  event log",
        "pass  signature",
        "pass  collateral",
        "FAIL  DCAP",
        "NOT VERIFIED",
    ] {
        assert!(report.contains(line), "{line}: {report}");
    }
    // A validator that chooses to trust the simulator's DCAP root (and
    // whose collateral the verifier makes for now) sees every check pass,
    // and a verdict that says no hardware was involved.
    let o = run(&["verify", sig_file.to_str().unwrap(), "--policy", p, "--trust-simulator-root"]);
    let report = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(report.contains("VERIFIED (simulated root)"), "{report}");
    assert!(report.contains("pass  DCAP") && report.contains("SIMULATOR's root"), "{report}");
    // The policy bites: a kind it does not list.
    let e = fails(&["sign", "-c", &conn, "--sample", "giveFeedback"]);
    assert!(e.contains("KindNotAllowed"), "{e}");

    // The attestation for the validator's challenge, checked against it.
    let att = att_file.to_str().unwrap();
    let report =
        String::from_utf8(run(&["verify", att, "--policy", p, "--challenge", &challenge]).stdout)
            .unwrap();
    assert!(report.contains("pass  binding") && report.contains("pass  app id"), "{report}");
    let other = format!("0x{}", "cd".repeat(32));
    let report =
        String::from_utf8(run(&["verify", att, "--policy", p, "--challenge", &other]).stdout)
            .unwrap();
    assert!(report.contains("FAIL  binding"), "{report}");
    let e = fails(&["verify", att, "--policy", p]);
    assert!(e.contains("--challenge"), "{e}");
    // Without a policy only on request, and the verdict says so.
    let report = String::from_utf8(
        run(&["verify", att, "--insecure-any-td", "--challenge", &challenge]).stdout,
    )
    .unwrap();
    assert!(report.contains("NOT PINNED"), "{report}");

    // The admin checks the signer's identity key the same way (attested at
    // slot 255, purpose "device") and pins it: each admin command is then
    // confirmed by that key's signed statement, and a policy read is
    // checked against it.
    let id = ok(&["attest", "-c", &conn, "--slot", "255", "--challenge", &challenge]);
    let id_json: serde_json::Value = serde_json::from_str(&id).unwrap();
    assert_eq!(id_json["bound"]["purpose"], "device");
    let id_file = dir.path().join("identity.json");
    std::fs::write(&id_file, &id).unwrap();
    let id_file = id_file.to_str().unwrap();
    let report = String::from_utf8(
        run(&["verify", id_file, "--policy", p, "--challenge", &challenge]).stdout,
    )
    .unwrap();
    assert!(report.contains("pass  binding") && report.contains("pass  app id"), "{report}");
    let identity = id_json["address"].as_str().unwrap().to_owned();
    let set = |identity: &str| {
        let mut args = set_policy_args(&conn, key_file, &slot_policy);
        args.extend(["--identity", identity]);
        run(&args)
    };
    let o = set("0x0000000000000000000000000000000000000001");
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("not the device's identity"), "{e}");
    let o = set(&identity);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("policy 0x"));
    let read = ok(&["get-policy", "-c", &conn, "--verify", "--identity", &identity]);
    assert!(read.contains("verified: policy 0x"), "{read}");
    // What get-policy prints is the policy file set-policy takes back: set
    // again, the slot's policy is the same (the statement's hash too).
    let printed = ok(&["get-policy", "-c", &conn]);
    assert!(printed.contains("kinds = [\"AgentWalletSet\", \"setAgentURI\"]"), "{printed}");
    let again = dir.path().join("printed.toml");
    std::fs::write(&again, &printed).unwrap();
    let mut args = set_policy_args(&conn, key_file, again.to_str().unwrap());
    args.extend(["--identity", &identity]);
    ok(&args);
    assert_eq!(ok(&["get-policy", "-c", &conn]), printed);
    let as_json: serde_json::Value =
        serde_json::from_str(&ok(&["get-policy", "-c", &conn, "--json"])).unwrap();
    assert_eq!(as_json["chains"], serde_json::json!([8453]), "{as_json}");

    // A TCP listener off loopback serves anyone who reaches it: refused
    // unless the operator says the network is trusted.
    let e = fails(&[
        "serve",
        "--simulated",
        "--state",
        dir.path().join("other-state").to_str().unwrap(),
        "--listen",
        "tcp:0.0.0.0:0",
        "--admin",
        ADMIN,
    ]);
    assert!(e.contains("is not a loopback address") && e.contains("--trusted-network"), "{e}");

    // One signer per state directory; a restart keeps the key and the mark.
    let serve_args = |listen: &str| {
        ["serve", "--simulated", "--state", state.to_str().unwrap(), "--listen", listen]
            .map(str::to_owned)
            .to_vec()
    };
    let second = format!("unix:{}", dir.path().join("second.sock").display());
    let e = fails(&serve_args(&second).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("is another signer serving this state directory"), "{e}");
    // The running signer kept its simulated dstack: it still signs with an
    // attestation (a second `serve` used to take its socket away, and it
    // answered attest and sign with a bare Backend refusal).
    let signed: serde_json::Value =
        serde_json::from_str(&ok(&["sign", "-c", &conn, "--sample", "setAgentURI"])).unwrap();
    assert!(signed["attestation"]["quote"].is_string(), "{signed}");
    drop(server);
    let _ = std::fs::remove_file(&socket);
    let mut args = serve_args(&conn);
    args.extend(["--admin".into(), "0x0000000000000000000000000000000000000001".into()]);
    let e = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("the admin is fixed at provisioning"), "{e}");
    let _server = serve(&state, &socket, None);
    let pk = ok(&["pubkey", "-c", &conn]);
    assert!(pk.contains(&address) && pk.contains("Some(2)"), "{pk}");
    let audit = ok(&["audit", "-c", &conn]);
    assert!(audit.starts_with("next index"), "{audit}");
    let e = fails(&["info", "-c", "unix:/nonexistent/signer.sock"]);
    assert!(e.contains("/nonexistent/signer.sock"), "{e}");
    let e = fails(&["info", "-c", "http://x"]);
    assert!(e.contains("expected unix:PATH"), "{e}");
}

/// A script tells what happened from the exit status alone (`docs/cli.md`):
/// 3 refused by the signer's policy, 4 unreachable, 2 invalid input, 5 not
/// verified, 0 done. Before, every failure exited 1.
#[test]
fn exit_codes_tell_refused_unreachable_invalid_and_not_verified_apart() {
    let code = |args: &[&str]| run(args).status.code().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let Paths { state, socket, conn } = paths(dir.path());
    let _server = serve(&state, &socket, Some(ADMIN));
    let key_file = &admin_key_file(dir.path());
    derive_key(&conn, key_file, "erc8004/agent");
    // Deny-all until a policy is set: refused.
    assert_eq!(code(&["sign", "-c", &conn, "--sample", "setAgentURI"]), 3);
    // Nobody listens there: unreachable.
    let nobody = format!("unix:{}", dir.path().join("nobody.sock").display());
    assert_eq!(code(&["info", "-c", &nobody]), 4);
    assert_eq!(code(&["sign", "-c", &nobody, "--sample", "setAgentURI"]), 4);
    // Input that cannot be used: invalid.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"method": "personal_sign", "params": ["a"], "extra": 1}"#).unwrap();
    assert_eq!(code(&["sign", "-c", &conn, "--json", bad.to_str().unwrap()]), 2);
    assert_eq!(code(&["sign", "-c", &conn, "--sample", "noSuchKind"]), 2);
    assert_eq!(code(&["sign", "-c", "nowhere", "--sample", "setAgentURI"]), 2);
    // The JSON-RPC endpoint: a signer that does not answer, a port beyond
    // loopback without a token, a token file others can read.
    assert_eq!(code(&["rpc", "-c", &nobody, "--listen", "tcp:127.0.0.1:0"]), 4);
    assert_eq!(code(&["rpc", "-c", &conn, "--listen", "tcp:0.0.0.0:0"]), 2);
    let token = dir.path().join("token");
    std::fs::write(&token, "a-token-of-sixteen-chars").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let token = token.to_str().unwrap();
    assert_eq!(code(&["rpc", "-c", &conn, "--token-file", token, "--listen", "tcp:0.0.0.0:0"]), 2);
    // Signed, then checked under a policy that does not trust the
    // simulator's root: DCAP fails under Intel's, so not verified.
    set_policy(&conn, key_file, &open_policy_file(dir.path(), "p.toml", &["setAgentURI"]));
    // A plain transfer is refused naming what it was read as and what the
    // policy allows (it said a bare KindNotAllowed).
    let transfer = dir.path().join("transfer.json");
    let tx = serde_json::json!({"to": "0x1111111111111111111111111111111111111111", "data": "0x",
        "value": "0x1", "nonce": "0x0", "gas": "0x5208", "maxFeePerGas": "0x1",
        "maxPriorityFeePerGas": "0x1", "chainId": "0x2105"});
    std::fs::write(&transfer, tx.to_string()).unwrap();
    let o = run(&["sign", "-c", &conn, "--json", transfer.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("read as generic-tx") && e.contains("[\"setAgentURI\"]"), "{e}");
    assert_eq!(o.status.code(), Some(3), "{e}");
    let signed = dir.path().join("signed.json");
    std::fs::write(&signed, ok(&["sign", "-c", &conn, "--sample", "setAgentURI"])).unwrap();
    let signed = signed.to_str().unwrap();
    assert_eq!(code(&["verify", signed, "--insecure-any-td"]), 5);
    // Without a policy every other check may pass: still not verified
    // (it exited 0 on NOT PINNED before).
    let unpinned = run(&["verify", signed, "--insecure-any-td", "--trust-simulator-root"]);
    assert!(String::from_utf8_lossy(&unpinned.stdout).contains("NOT PINNED"));
    assert_eq!(unpinned.status.code(), Some(5));

    // The data commands print JSON for scripts, and the audit log whole
    // (it pages through the device's answers: a page holds fewer entries
    // than the log keeps).
    for _ in 0..20 {
        // Without the attestation, a transaction still comes out signed.
        let out = ok(&["sign", "-c", &conn, "--sample", "setAgentURI", "--no-attest"]);
        let signed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(signed["rawTransaction"].as_str().unwrap().starts_with("0x02"), "{signed}");
        assert!(signed.get("attestation").is_none(), "{signed}");
    }
    let value = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&ok(args)).unwrap() };
    let info = value(&["info", "-c", &conn, "--json"]);
    assert_eq!(info["backend"], "Simulated", "{info}");
    assert!(info["bounds"]["uri"].as_u64().unwrap() >= 256, "{info}");
    // The simulated dstack answers, no shared marks, the journal takes commits.
    let health = serde_json::json!({"dstack": "ok", "marks": "notUsed", "storage": "ok", "replication": "notUsed"});
    assert_eq!(info["health"], health, "{info}");
    let key = value(&["pubkey", "-c", &conn, "--json"]);
    assert_eq!(key["highWater"], 21, "{key}");
    assert_eq!(key["origin"]["derived"], "erc8004/agent", "{key}");
    // The operator sees every key the signer holds, and loses none by
    // mistake: another key in an occupied slot needs --replace.
    let slots = value(&["slots", "-c", &conn, "--json"]);
    assert_eq!(slots.as_array().unwrap().len(), 1, "{slots}");
    assert_eq!(slots[0]["origin"]["derived"], "erc8004/agent", "{slots}");
    assert_eq!(slots[0]["kinds"], serde_json::json!(["setAgentURI"]), "{slots}");
    let generate = ["generate-key", "-c", &conn, "--admin-key-file", key_file];
    let e = fails(&generate);
    assert!(e.contains("SlotOccupied"), "{e}");
    assert_eq!(code(&generate), 3);
    assert_eq!(value(&["slots", "-c", &conn, "--json"]), slots, "nothing changed");
    ok(&[&generate[..], &["--replace"]].concat());
    let replaced = value(&["slots", "-c", &conn, "--json"]);
    assert_eq!(replaced[0]["origin"], "generated", "{replaced}");
    assert_eq!(replaced[0]["highWater"], 21, "the mark stays: {replaced}");
    let audit = value(&["audit", "-c", &conn, "--json"]);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len() as u64, audit["nextIndex"].as_u64().unwrap(), "{audit}");
    assert!(entries.len() > 20, "{audit}");
}

/// A signer that signs but cannot attest (here: no TEE) says which sequence
/// it spent, so the caller retries there instead of losing it; the exact
/// retry signs.
#[test]
fn a_failed_attestation_names_the_sequence_it_spent() {
    let dir = tempfile::tempdir().unwrap();
    let Paths { state, socket, conn } = paths(dir.path());
    let _server = serve_no_tee(&state, &socket);
    let key_file = &admin_key_file(dir.path());
    ok(&["generate-key", "-c", &conn, "--admin-key-file", key_file]);
    set_policy(&conn, key_file, &open_policy_file(dir.path(), "p.toml", &["personal_sign"]));
    let request = dir.path().join("hello.json");
    std::fs::write(&request, r#"{"method": "personal_sign", "params": ["hello"]}"#).unwrap();
    let request = request.to_str().unwrap();
    let o = run(&["sign", "-c", &conn, "--json", request]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("signed at sequence 1; attestation failed"), "{e}");
    assert!(e.contains("retry with --sequence 1"), "{e}");
    assert_eq!(o.status.code(), Some(3), "{e}");
    let again = ok(&["sign", "-c", &conn, "--json", request, "--sequence", "1", "--no-attest"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["sequence"], 1, "{again}");
}
