//! The chain from source to pin, as the deploy guide writes it down: the
//! guide's compose file is `deploy/docker-compose.yml` byte for byte, which
//! `deploy/app-compose.json` carries as dstack deploys it; the signer's
//! image is named by a digest the guide states (the image of the commit it
//! names, `image/reproduce`), and the compose hash the guide states is the
//! one `tee-signer compose-hash` prints for that file (what `policy
//! --app-compose` pins: `image/check` pins it against a signer served from
//! the image).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_deploy_guide_the_compose_file_and_the_app_compose_file_agree() {
    let compose = read("deploy/docker-compose.yml");
    let app: serde_json::Value = serde_json::from_str(&read("deploy/app-compose.json")).unwrap();
    assert_eq!(
        app["docker_compose_file"].as_str(),
        Some(compose.as_str()),
        "deploy/app-compose.json must carry deploy/docker-compose.yml as it is"
    );
    assert_eq!(app["runner"], "docker-compose");

    let guide = read("docs/deploy.md");
    let block = guide
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("docs/deploy.md has a yaml block");
    assert_eq!(block, compose, "the guide's first yaml block must be deploy/docker-compose.yml");

    let image = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: registry.example/erc8004-tee-signer@"))
        .expect("the compose file names the signer's image by digest");
    let digest = image.split_whitespace().next().unwrap();
    let hex_part = digest.strip_prefix("sha256:").expect("a sha256 digest");
    assert_eq!(hex_part.len(), 64, "{digest}");
    assert!(hex::decode(hex_part).is_ok(), "{digest}");
    assert_ne!(hex_part, "0".repeat(64), "a real digest, not a placeholder");
    assert!(
        guide.matches(digest).count() >= 2,
        "the guide states the image's digest ({digest}) beside its rebuild, not only in the compose file"
    );

    // The compose hash, as the command prints it.
    let out = Command::new(env!("CARGO_BIN_EXE_tee-signer"))
        .args(["compose-hash", "--json"])
        .arg(repo("deploy/app-compose.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = printed["composeHash"].as_str().unwrap();
    assert!(guide.contains(hash), "the guide must state the compose hash {hash}");
}
