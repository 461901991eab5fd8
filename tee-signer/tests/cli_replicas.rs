//! Replicas of one app sharing their marks in PostgreSQL, as processes:
//! what one signed the other refuses, across a SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::*;

/// Two `serve --simulated --marks` processes are replicas of one app (the
/// built-in simulator is one app: the same derived keys), sharing their
/// marks in PostgreSQL (TEE_SIGNER_TEST_PG; `.ci/run` starts one). What one
/// signs at a sequence the other refuses, but for the exact same request;
/// killed with SIGKILL and started again, a replica still refuses it, also
/// when it was killed in the middle of many clients' requests.
#[test]
fn replicas_share_their_marks_across_processes_and_a_kill() {
    let pg = std::env::var("TEE_SIGNER_TEST_PG")
        .expect("TEE_SIGNER_TEST_PG is not set (bash .ci/run starts PostgreSQL; by hand: source .ci/postgres)");
    let mut db = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    db.batch_execute("DROP SCHEMA IF EXISTS cli_replicas CASCADE; CREATE SCHEMA cli_replicas")
        .unwrap();
    let marks = format!("{pg} options='-c search_path=cli_replicas'");
    let dir = tempfile::tempdir().unwrap();
    let key_file = &admin_key_file(dir.path());
    let policy = open_policy_file(dir.path(), "policy.toml", &["personal_sign"]);
    let message = |text: &str| {
        let file = dir.path().join(format!("{text}.json"));
        let request = serde_json::json!({ "method": "personal_sign", "params": [text] });
        std::fs::write(&file, request.to_string()).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let (hello, other) = (message("hello"), message("other"));
    let replica = |name: &str| {
        let state = dir.path().join(name);
        let socket = dir.path().join(format!("{name}.sock"));
        let server = serve_with(&state, &socket, Some(ADMIN), &["--marks", &marks]);
        (
            server,
            state,
            socket,
            format!("unix:{}", dir.path().join(format!("{name}.sock")).display()),
        )
    };
    let (a, state_a, socket_a, conn_a) = replica("a");
    let (_b, _, _, conn_b) = replica("b");
    let mut key = String::new();
    for conn in [&conn_a, &conn_b] {
        let address = derive_key(conn, key_file, "agent/1");
        assert!(key.is_empty() || key == address, "one app, one key: {key} {address}");
        key = address;
        set_policy(conn, key_file, &policy);
    }
    let sign = |conn: &str, file: &str, seq: &str| {
        run(&["sign", "-c", conn, "--json", file, "--sequence", seq])
    };
    let first = sign(&conn_a, &hello, "3");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let signature = |o: &Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["signature"].as_str().unwrap().to_owned()
    };
    // Another message at 3 on b: refused, naming the shared mark.
    let refused = sign(&conn_b, &other, "3");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Replay"), "{refused:?}");
    // The same request on b (a client retrying elsewhere): the same signature.
    let again = sign(&conn_b, &hello, "3");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(signature(&again), signature(&first));
    // a is killed (SIGKILL) and started again on its state and the marks.
    drop(a);
    let _a = serve_with(&state_a, &socket_a, None, &["--marks", &marks]);
    let refused = sign(&conn_a, &other, "3");
    assert!(!refused.status.success(), "a restarted replica must not sign at a used sequence");
    assert!(sign(&conn_a, &other, "4").status.success());
    assert!(!sign(&conn_b, &hello, "4").status.success());
    // The database ends every signer session (a restart or failover): the
    // next request on a replica is refused, never signed on local marks
    // alone, and the one after it signs again.
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tee-signer'",
        &[],
    )
    .unwrap();
    assert!(!sign(&conn_b, &other, "5").status.success(), "refused while the session is gone");
    let resumed = sign(&conn_b, &other, "6");
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));

    // Mid-run: eight clients on each replica sign colliding sequences
    // (a's own messages on a, b's on b, all at once), and a is killed with
    // SIGKILL as soon as one of them has its answer, with the others'
    // marks possibly raised in the database but not yet on a's disk, or on
    // its disk and not yet sent. Whatever left either replica: one
    // signature per sequence; after a's restart, the other message at its
    // sequence is refused on both replicas, and the exact request gets the
    // same signature (at the mark) or a replay (below it).
    let sequences: Vec<String> = (20..28).map(|s| s.to_string()).collect();
    let mut clients = Vec::new();
    for seq in &sequences {
        for (who, conn) in [("a", &conn_a), ("b", &conn_b)] {
            let file = message(&format!("{who}{seq}"));
            let child = Command::new(BIN)
                .args(["sign", "-c", conn, "--json", &file, "--sequence", seq])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            clients.push((who, seq.clone(), file, child));
        }
    }
    let mut answers = Vec::new();
    let (who, seq, file, first) = clients.remove(0);
    answers.push((who, seq, file, first.wait_with_output().unwrap()));
    drop(_a);
    for (who, seq, file, child) in clients {
        answers.push((who, seq, file, child.wait_with_output().unwrap()));
    }
    let _a = serve_with(&state_a, &socket_a, None, &["--marks", &marks]);
    let mut released: std::collections::BTreeMap<String, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for (_, seq, file, out) in &answers {
        if out.status.success() {
            released.entry(seq.clone()).or_default().push((file.clone(), signature(out)));
        }
    }
    assert!(
        released.values().all(|r| r.len() == 1),
        "two signatures at one sequence: {released:?}"
    );
    assert!(!released.is_empty(), "some client was answered before the kill");
    for (seq, r) in &released {
        let (file, sig) = &r[0];
        // The exact request again: the same signature, or (a mark above it
        // now) refused; never anything else.
        let again = sign(&conn_a, file, seq);
        if again.status.success() {
            assert_eq!(&signature(&again), sig, "the exact retry at {seq} after the kill");
        } else {
            assert!(String::from_utf8_lossy(&again.stderr).contains("Replay"), "{again:?}");
        }
        let other_file = answers
            .iter()
            .find(|(_, s, f, _)| s == seq && f != file)
            .map(|(_, _, f, _)| f.clone())
            .unwrap();
        assert!(!sign(&conn_a, &other_file, seq).status.success(), "another message at {seq}");
        assert!(!sign(&conn_b, &other_file, seq).status.success(), "another message at {seq}");
    }
    assert!(sign(&conn_a, &hello, "100").status.success(), "a signs again after its restart");
}
