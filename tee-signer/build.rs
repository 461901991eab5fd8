//! The commit `tee-signer --version` names: `TEE_SIGNER_COMMIT` if set (a
//! build from a source archive), else the checkout's `git rev-parse HEAD`,
//! else "unknown". Nothing else of the build machine (time, paths) goes in.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TEE_SIGNER_COMMIT");
    // A new commit (HEAD moves, or the branch it names does) rebuilds this.
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("TEE_SIGNER_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let out = Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        out.status.success().then(|| text.trim().to_owned())
    });
    println!("cargo:rustc-env=TEE_SIGNER_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
}
