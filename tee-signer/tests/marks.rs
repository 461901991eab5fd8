//! Marks that move (`marks export`, `marks import`), as an operator and an
//! attacker use them: a state directory put back from a backup older than
//! its last signatures, a fresh state directory on another host, an export
//! changed on the way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::path::Path;

use common::*;

/// Signs `file` (a JSON request) at `seq` on the signer at `conn`.
fn sign(conn: &str, file: &str, seq: &str) -> std::process::Output {
    run(&["sign", "-c", conn, "--json", file, "--sequence", seq, "--no-attest"])
}

fn message(dir: &Path, text: &str) -> String {
    let file = dir.join(format!("{text}.json"));
    let request = serde_json::json!({ "method": "personal_sign", "params": [text] });
    std::fs::write(&file, request.to_string()).unwrap();
    file.to_str().unwrap().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if kind.is_file() {
            // (The simulated dstack's socket is not state.)
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn refused_as_replay(o: &std::process::Output, mark: u64) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(e.contains("Replay") && e.contains(&mark.to_string()), "{e}");
}

/// The backup case: a state directory copied before some signatures and
/// put back signs at used sequences (what the export is for); importing
/// the signer's own export, without the admin key, refuses every used
/// sequence again, re-serves the exact last signature, and signs above.
#[test]
fn an_own_export_restores_the_marks_of_a_directory_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let Paths { state, socket, conn } = paths(dir.path());
    let key_file = &admin_key_file(dir.path());
    let (hello, other) = (message(dir.path(), "hello"), message(dir.path(), "other"));
    let server = serve(&state, &socket, Some(ADMIN));
    derive_key(&conn, key_file, "agent/1");
    set_policy(&conn, key_file, &open_policy_file(dir.path(), "p.toml", &["personal_sign"]));
    drop(server);
    let backup = dir.path().join("backup");
    copy_dir(&state, &backup);
    let server = serve(&state, &socket, Some(ADMIN));
    for seq in ["1", "2", "5"] {
        assert!(sign(&conn, &hello, seq).status.success());
    }
    let last = sign(&conn, &hello, "5");
    let export = ok(&["marks", "export", "-c", &conn]);
    let json: serde_json::Value = serde_json::from_str(&export).unwrap();
    assert_eq!(json["format"], "erc8004-tee-signer/marks/1");
    assert_eq!(json["marks"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["marks"][0]["sequence"], "5", "{json}");
    let file = dir.path().join("marks.json");
    std::fs::write(&file, &export).unwrap();
    let file = file.to_str().unwrap();
    drop(server);

    // The old copy put back: it would sign another action at 5.
    std::fs::remove_dir_all(&state).unwrap();
    copy_dir(&backup, &state);
    let _server = serve(&state, &socket, Some(ADMIN));
    let imported = ok(&["marks", "import", "-c", &conn, file, "--json"]);
    let outcomes: serde_json::Value = serde_json::from_str(&imported).unwrap();
    assert_eq!(outcomes[0]["slot"], 0, "{outcomes}");
    assert_eq!(outcomes[0]["mark"], "5", "{outcomes}");
    assert_eq!(outcomes[0]["raised"], true, "{outcomes}");
    for seq in [1u64, 2, 3, 4, 5] {
        refused_as_replay(&sign(&conn, &other, &seq.to_string()), 5);
    }
    // The exact last action: the same signature again, nothing new.
    let again = sign(&conn, &hello, "5");
    assert!(again.status.success());
    let sig = |o: &std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["signature"].as_str().unwrap().to_owned()
    };
    assert_eq!(sig(&again), sig(&last));
    assert!(sign(&conn, &other, "6").status.success());
    // Importing again changes nothing: marks only rise.
    let again = ok(&["marks", "import", "-c", &conn, file, "--json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again[0]["mark"], "6", "{again}");
    assert_eq!(again[0]["raised"], false, "{again}");
}

/// Moving to a fresh state directory (a new host: a new identity): the
/// import needs the admin key, refuses an export changed on the way and
/// one for a key no slot holds, then refuses every used sequence there.
#[test]
fn another_signers_export_needs_the_admin_and_an_intact_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = &admin_key_file(dir.path());
    let policy = open_policy_file(dir.path(), "p.toml", &["personal_sign"]);
    let (hello, other) = (message(dir.path(), "hello"), message(dir.path(), "other"));
    let old = paths(&dir.path().join("old"));
    std::fs::create_dir_all(dir.path().join("old")).unwrap();
    let server = serve(&old.state, &old.socket, Some(ADMIN));
    derive_key(&old.conn, key_file, "agent/1");
    set_policy(&old.conn, key_file, &policy);
    for seq in ["3", "9"] {
        assert!(sign(&old.conn, &hello, seq).status.success());
    }
    let export = ok(&["marks", "export", "-c", &old.conn]);
    drop(server);
    let file = dir.path().join("marks.json");
    std::fs::write(&file, &export).unwrap();
    let file = file.to_str().unwrap();

    let new = paths(&dir.path().join("new"));
    std::fs::create_dir_all(dir.path().join("new")).unwrap();
    let _server = serve(&new.state, &new.socket, Some(ADMIN));
    // No slot holds the key yet: nothing imported, and it says so.
    let o = run(&["marks", "import", "-c", &new.conn, file, "--admin-key-file", key_file]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("in no slot of this signer"), "{e}");
    derive_key(&new.conn, key_file, "agent/1");
    set_policy(&new.conn, key_file, &policy);
    // Another identity's export without the admin key: refused before
    // anything is sent.
    let o = run(&["marks", "import", "-c", &new.conn, file]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("needs the admin key"), "{e}");
    // A mark changed on the way (lowered to let 4..9 sign again): its
    // signature no longer holds.
    let mut changed: serde_json::Value = serde_json::from_str(&export).unwrap();
    changed["marks"][0]["sequence"] = "3".into();
    let changed_file = dir.path().join("changed.json");
    std::fs::write(&changed_file, changed.to_string()).unwrap();
    let o = run(&[
        "marks",
        "import",
        "-c",
        &new.conn,
        changed_file.to_str().unwrap(),
        "--admin-key-file",
        key_file,
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("not signed by the export's identity"), "{e}");
    // With the admin key: imported, and every used sequence refused.
    let out = ok(&["marks", "import", "-c", &new.conn, file, "--admin-key-file", key_file]);
    assert!(out.contains("mark 9 (exported 9), raised"), "{out}");
    for seq in [1u64, 3, 8, 9] {
        refused_as_replay(&sign(&new.conn, &other, &seq.to_string()), 9);
    }
    assert!(sign(&new.conn, &other, "10").status.success());
}
