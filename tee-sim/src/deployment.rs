//! The built-in simulated deployment: the app `serve --simulated` runs
//! as (its KMS root secret, app id and app-compose file), which the demo,
//! the tests and a validator's pinned policy for a simulated signer share.

/// The simulated KMS root secret.
pub const KMS_ROOT: [u8; 32] = [0x4b; 32];
/// The simulated app's id.
pub const APP_ID: [u8; 20] = [0xa9; 20];
/// The simulated app's app-compose file (dstack's format: the agent and the
/// signer beside it, as `docs/deploy.md` deploys them), in the
/// deterministic JSON dstack's SDKs hash (`get_compose_hash`: keys sorted,
/// no spaces).
pub const APP_COMPOSE: &str = r#"{"allowed_envs":[],"docker_compose_file":"services:\n  agent:\n    image: example/erc8004-agent:1.0\n    volumes:\n      - signer:/run/signer\n  signer:\n    image: example/tee-signer:0.1\n    command: serve --state /data --listen unix:/run/signer/signer.sock\n    volumes:\n      - /var/run/dstack.sock:/var/run/dstack.sock\n      - signer:/run/signer\n      - state:/data\nvolumes:\n  signer: {}\n  state: {}\n","gateway_enabled":false,"kms_enabled":true,"manifest_version":2,"name":"erc8004-agent","no_instance_id":false,"public_logs":false,"public_sysinfo":true,"runner":"docker-compose"}"#;

/// The simulated app's compose hash: SHA-256 of [`APP_COMPOSE`], as dstack
/// measures it.
#[must_use]
pub fn compose_hash() -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(APP_COMPOSE.as_bytes()).into()
}

/// The app id the simulator gives another app-compose file
/// (`serve --simulated-app-compose`): the first 20 bytes of its compose
/// hash, as dstack derives an app id from the first deployment's.
#[must_use]
pub fn app_id_of(app_compose: &str) -> [u8; 20] {
    use sha2::Digest;
    let hash: [u8; 32] = sha2::Sha256::digest(app_compose.as_bytes()).into();
    let mut id = [0u8; 20];
    id.iter_mut().zip(hash).for_each(|(d, s)| *d = s);
    id
}
