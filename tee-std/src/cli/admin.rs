//! What the admin does to a slot: put a key in it (`derive-key`,
//! `generate-key`), set its policy (`set-policy`), read it (`get-policy`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tee_core::heapless;
use tee_core::protocol::{self, AdminAuth, AdminCommand, DeviceInfo, GetPolicy};

use super::{AdminKey, At, Failure, client, read, read_admin};
use crate::service::policyfile::PolicyFile;

#[derive(Args)]
pub(super) struct DeriveKey {
    #[command(flatten)]
    at: At,
    #[command(flatten)]
    admin: AdminKey,
    /// dstack's key derivation path.
    #[arg(long)]
    path: String,
}

#[derive(Args)]
pub(super) struct GenerateKey {
    #[command(flatten)]
    at: At,
    #[command(flatten)]
    admin: AdminKey,
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

/// Authorizes `cmd` with the admin key and sends it with a fresh counter;
/// `done` reports the response.
fn as_admin<C: AdminCommand + Clone>(
    at: &At,
    key: &AdminKey,
    cmd: C,
    done: impl FnOnce(C::Response<'_>),
) -> Result<ExitCode, Failure> {
    let admin = read_admin(key)?;
    let mut client = client(&at.conn)?;
    let device_id = client.call(&DeviceInfo)?.device_id;
    done(client.admin_now(cmd, &admin, &device_id)?);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn derive_key(c: DeriveKey) -> Result<ExitCode, Failure> {
    let slot = c.at.slot;
    let path = heapless::String::try_from(c.path.as_str()).map_err(|_| "path too long")?;
    let cmd = protocol::DeriveKey { slot, path, auth: AdminAuth::UNSIGNED };
    as_admin(&c.at, &c.admin, cmd, |k| {
        println!("slot {slot}: {} (derived; policy is deny-all until set-policy)", k.address);
    })
}

pub(super) fn generate_key(c: GenerateKey) -> Result<ExitCode, Failure> {
    let slot = c.at.slot;
    let cmd = protocol::GenerateKey { slot, auth: AdminAuth::UNSIGNED };
    as_admin(&c.at, &c.admin, cmd, |k| {
        println!("slot {slot}: {} (generated; policy is deny-all until set-policy)", k.address);
    })
}

pub(super) fn set_policy(c: SetPolicy) -> Result<ExitCode, Failure> {
    let slot = c.at.slot;
    let policy = PolicyFile::parse(&read(&c.policy)?)?.to_policy()?;
    let cmd = protocol::SetPolicy { slot, policy, auth: AdminAuth::UNSIGNED };
    as_admin(&c.at, &c.admin, cmd, |r| println!("slot {slot}: policy {} set", r.policy_hash))
}

pub(super) fn get_policy(c: &At) -> Result<ExitCode, Failure> {
    println!("{:#?}", client(&c.conn)?.call(&GetPolicy { slot: c.slot })?);
    Ok(ExitCode::SUCCESS)
}
