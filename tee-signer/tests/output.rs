//! A reader that stops early (`tee-signer demo | head -1`): the tool ends
//! as a killed-by-SIGPIPE tool does (status 141), without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::BIN;

#[test]
fn a_closed_pipe_ends_the_tool_quietly() {
    // `demo --kind list` prints a line per action kind, to a pipe whose
    // reader is already gone.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(BIN)
        .args(["demo", "--kind", "list"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
