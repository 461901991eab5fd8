//! `tee-signer tcb`: a platform's TCB from a raw quote, an attestation or a
//! running signer, with the exit codes a monitoring script reads: 0 while
//! the TCB is accepted and its collateral valid, 5 once not, 4 when the
//! PCCS does not answer, 2 for a file that is no quote.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;

const QUOTE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/dcap-qvl/tdx_quote");
/// Inside the sample collateral's window (it ends 2025-07-19T10:16:03Z).
const NOW: &str = "1750809600";
const AFTER: &str = "1752924000"; // 2025-07-19T11:20:00Z

fn tcb(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["tcb", "--json"];
    all.extend(args);
    let o = run(&all);
    let code = o.status.code().unwrap();
    (code, serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null))
}

#[test]
fn the_sample_platform_its_collateral_and_the_exit_codes() {
    let (code, t) = tcb(&[QUOTE, "--collateral", COLLATERAL, "--now", NOW]);
    assert_eq!(code, 0, "{t}");
    assert_eq!(t["status"], "UpToDate");
    assert_eq!(t["advisoryIds"], serde_json::json!([]));
    assert_eq!(t["fmspc"], "b0c06f000000");
    assert_eq!(t["tcbEvaluationDataNumber"], 17);
    assert_eq!(t["nextUpdate"], "2025-07-19T10:16:03Z");
    assert_eq!(t["accepted"], true);
    assert!(t["secondsLeft"].as_i64().unwrap() > 20 * 86_400, "{t}");
    let text = ok(&["tcb", QUOTE, "--collateral", COLLATERAL, "--now", NOW]);
    assert!(
        text.contains("fmspc         b0c06f000000") && text.contains("valid for 24 d"),
        "{text}"
    );

    // After nextUpdate: not verified.
    let (code, t) = tcb(&[QUOTE, "--collateral", COLLATERAL, "--now", AFTER]);
    assert_eq!((code, &t["accepted"]), (5, &serde_json::json!(false)), "{t}");
    assert!(t["secondsLeft"].as_i64().unwrap() < 0);
    let text =
        String::from_utf8(run(&["tcb", QUOTE, "--collateral", COLLATERAL, "--now", AFTER]).stdout)
            .unwrap();
    assert!(text.contains("EXPIRED"), "{text}");

    // A policy that names other statuses: reported, exit 5.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("v.toml");
    std::fs::write(&policy, "tcb_status = [\"SWHardeningNeeded\"]\n").unwrap();
    let (code, t) = tcb(&[
        QUOTE,
        "--collateral",
        COLLATERAL,
        "--now",
        NOW,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(
        (code, &t["status"], &t["accepted"]),
        (5, &serde_json::json!("UpToDate"), &serde_json::json!(false))
    );

    // A PCCS that does not answer: 4. A file that is no quote: 2. No collateral: 2.
    let (code, _) = tcb(&[QUOTE, "--pccs", "http://127.0.0.1:1", "--now", NOW]);
    assert_eq!(code, 4);
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a quote").unwrap();
    let (code, _) = tcb(&[junk.to_str().unwrap(), "--collateral", COLLATERAL]);
    assert_eq!(code, 2);
    assert!(fails(&["tcb", QUOTE]).contains("--collateral"));
}

/// A running (simulated) signer: its identity's quote, under the
/// simulator's root with collateral made for the time.
#[test]
fn a_running_signer_s_tcb() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let _server = serve(&dir.path().join("state"), &socket, Some(ADMIN));
    let conn = format!("unix:{}", socket.display());
    let (code, t) = tcb(&["-c", &conn, "--trust-simulator-root"]);
    assert_eq!(code, 0, "{t}");
    assert_eq!(
        (&t["status"], &t["accepted"]),
        (&serde_json::json!("UpToDate"), &serde_json::json!(true))
    );
    // Without the simulator's root: Intel's rejects its PKI.
    let (code, t) = tcb(&["-c", &conn, "--collateral", COLLATERAL]);
    assert_eq!(code, 5, "{t}");
}
