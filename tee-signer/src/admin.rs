//! What the admin does to a slot: put a key in it (`derive-key`,
//! `generate-key`), set its policy (`set-policy`), read it (`get-policy`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tee_core::primitives::keccak256;
use tee_core::protocol::{self, AdminAuth, AdminStatement, DeviceError, DeviceInfo};
use tee_core::{Address, heapless};

use super::{AdminKey, At, Failure, client, read, read_admin};
use tee_client::ClientError;
use tee_client::admin::{Confirm, Trust};
use tee_client::policyfile::PolicyFile;

#[derive(Args)]
pub(super) struct DeriveKey {
    #[command(flatten)]
    at: At,
    #[command(flatten)]
    admin: AdminKey,
    /// dstack's key derivation path.
    #[arg(long)]
    path: String,
    /// Replace the key the slot holds if it is not this path's: that key
    /// is lost (deriving the same path again needs no --replace).
    #[arg(long)]
    replace: bool,
}

#[derive(Args)]
pub(super) struct GenerateKey {
    #[command(flatten)]
    at: At,
    #[command(flatten)]
    admin: AdminKey,
    /// Replace the key the slot holds: that key is lost.
    #[arg(long)]
    replace: bool,
}

#[derive(Args)]
pub(super) struct GetPolicy {
    #[command(flatten)]
    at: At,
    /// Check the policy read against the device's signed statement of it.
    #[arg(long)]
    verify: bool,
    /// The signer's identity address (what `attest --slot 255` binds);
    /// without it, the identity that answers is trusted on first use.
    #[arg(long, requires = "verify")]
    identity: Option<Address>,
    /// Print the policy as JSON (the policy file's fields) instead of the
    /// TOML policy file `set-policy` takes back.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct SetPolicy {
    #[command(flatten)]
    at: At,
    #[command(flatten)]
    admin: AdminKey,
    /// The policy file (TOML or JSON).
    #[arg(long)]
    policy: PathBuf,
}

/// Authorizes `cmd` with the admin key at the counter the device's signed
/// statement gives, sends it and confirms it from a second statement
/// (`Client::admin_confirmed`); `done` reports what the device states.
/// With `--counter`, for a device without an identity key, sends at that
/// counter and says it is unconfirmed.
fn as_admin<C: Confirm>(
    at: &At,
    key: &AdminKey,
    cmd: C,
    done: impl FnOnce(&AdminStatement),
) -> Result<ExitCode, Failure> {
    let admin = read_admin(key)?;
    let mut client = client(&at.conn)?;
    let device_id = client.call(&DeviceInfo)?.device_id;
    if let Some(counter) = key.counter {
        let r = client.admin(cmd, &admin, &device_id, counter)?;
        println!("{r:?}");
        eprintln!(
            "warning: sent at counter {counter} and not confirmed: the answer above is not \
             authenticated (only a signer with an identity key can confirm; drop --counter)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut trust = Trust { device_id, identity: key.identity };
    let state = client.admin_confirmed(cmd, &admin, &mut trust).map_err(|e| match e {
        ClientError::Device(DeviceError::Unsupported) => {
            "the signer has no identity key to confirm admin commands with (an MCU?): give \
             --counter N, the counter after the last one you used"
                .into()
        }
        e => Failure::from(e),
    })?;
    done(&state.statement);
    unpinned(key.identity, state.identity);
    Ok(ExitCode::SUCCESS)
}

/// Warns when the identity was trusted on first use.
fn unpinned(pinned: Option<Address>, identity: Address) {
    if pinned.is_none() {
        eprintln!(
            "note: confirmed by identity {identity}, trusted on first use; check that it is the \
             signer's (`tee-signer attest --slot 255`, then `tee-signer verify`) and pass \
             --identity {identity} from now on"
        );
    }
}

pub(super) fn derive_key(c: DeriveKey) -> Result<ExitCode, Failure> {
    let slot = c.at.slot;
    let path = heapless::String::try_from(c.path.as_str()).map_err(|_| "path too long")?;
    let cmd = protocol::DeriveKey { slot, path, replace: c.replace, auth: AdminAuth::UNSIGNED };
    as_admin(&c.at, &c.admin, cmd, |s| {
        println!("slot {slot}: {} (derived; policy is deny-all until set-policy)", s.key);
    })
}

pub(super) fn generate_key(c: GenerateKey) -> Result<ExitCode, Failure> {
    let slot = c.at.slot;
    let cmd = protocol::GenerateKey { slot, replace: c.replace, auth: AdminAuth::UNSIGNED };
    as_admin(&c.at, &c.admin, cmd, |s| {
        println!("slot {slot}: {} (generated; policy is deny-all until set-policy)", s.key);
    })
}

pub(super) fn set_policy(c: SetPolicy) -> Result<ExitCode, Failure> {
    let slot = c.at.slot;
    let policy = PolicyFile::parse(&read(&c.policy)?)?.to_policy()?;
    let cmd = protocol::SetPolicy { slot, policy, auth: AdminAuth::UNSIGNED };
    as_admin(&c.at, &c.admin, cmd, |s| println!("slot {slot}: policy {} set", s.policy_hash))
}

pub(super) fn get_policy(c: GetPolicy) -> Result<ExitCode, Failure> {
    let mut client = client(&c.at.conn)?;
    let policy = client.call(&protocol::GetPolicy { slot: c.at.slot })?;
    // The policy file that makes this policy: what set-policy takes back.
    let file = PolicyFile::from_policy(&policy)?;
    if c.json {
        println!("{}", serde_json::to_string_pretty(&file)?);
    } else {
        print!("{}", file.to_toml()?);
    }
    if !c.verify {
        return Ok(ExitCode::SUCCESS);
    }
    // The policy read is the one the device's identity states the slot
    // holds.
    let mut buf = vec![0u8; tee_core::limits::MAX_SLOT_RECORD];
    let hash = keccak256(tee_core::codec::encode(&policy, &mut buf)?);
    let device_id = client.call(&DeviceInfo)?.device_id;
    let mut trust = Trust { device_id, identity: c.identity };
    let state = client.admin_state(c.at.slot, &mut trust)?;
    if state.statement.policy_hash != hash {
        return Err(format!(
            "the policy read (hash {hash}) is not the one the device states slot {} holds ({})",
            c.at.slot, state.statement.policy_hash
        )
        .into());
    }
    println!("verified: policy {hash}, stated by identity {}", state.identity);
    unpinned(c.identity, state.identity);
    Ok(ExitCode::SUCCESS)
}
