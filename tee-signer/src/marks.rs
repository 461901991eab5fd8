//! Marks that move (`marks export`, `marks import`): every key's
//! anti-replay mark, signed by the signer's identity, carried to a state
//! directory put back from a backup, a new host or a new dstack version
//! (`docs/deploy.md`, "Backup, restore and moving a signer").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tee_core::Address;
use tee_core::protocol::DeviceInfo;

use super::{AdminKey, Conn, Failure, client, exit, read, read_admin};
use tee_client::admin::Trust;
use tee_client::marks::MarksExport;

#[derive(Args)]
pub(super) struct Marks {
    #[command(subcommand)]
    command: MarksCommand,
}

#[derive(Subcommand)]
enum MarksCommand {
    /// Print every key's mark (its highest signed sequence and commitment),
    /// each signed by the signer's identity, as the JSON interchange
    /// `marks import` reads.
    Export(Export),
    /// Raise each exported key's mark on this signer (marks only rise). The
    /// signer's own export needs no admin key; another signer's does.
    Import(Import),
}

#[derive(Args)]
struct Export {
    #[command(flatten)]
    conn: Conn,
    /// The signer's identity address (what `attest --slot 255` binds);
    /// without it, the identity that answers is trusted on first use.
    #[arg(long)]
    identity: Option<Address>,
}

#[derive(Args)]
struct Import {
    #[command(flatten)]
    conn: Conn,
    /// The export (`marks export`'s output).
    file: PathBuf,
    /// The admin key, needed for an export of another signer (another
    /// identity: a new state directory, another host).
    #[arg(long)]
    admin_key_file: Option<PathBuf>,
    /// This signer's identity address; without it, trusted on first use.
    #[arg(long)]
    identity: Option<Address>,
    /// Print what became of each mark as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn marks(m: Marks) -> Result<ExitCode, Failure> {
    match m.command {
        MarksCommand::Export(c) => export(&c),
        MarksCommand::Import(c) => import(&c),
    }
}

fn export(c: &Export) -> Result<ExitCode, Failure> {
    let mut client = client(&c.conn)?;
    let device_id = client.call(&DeviceInfo)?.device_id;
    let mut trust = Trust { device_id, identity: c.identity };
    let export = client.export_marks(&mut trust)?;
    super::json(&export)
}

fn import(c: &Import) -> Result<ExitCode, Failure> {
    let export = MarksExport::parse(&read(&c.file)?)
        .map_err(|e| exit::Invalid(format!("{}: {e}", c.file.display())))?;
    let admin = match &c.admin_key_file {
        Some(f) => Some(read_admin(&AdminKey {
            admin_key_file: f.clone(),
            identity: None,
            counter: None,
        })?),
        None => None,
    };
    let mut client = client(&c.conn)?;
    let device_id = client.call(&DeviceInfo)?.device_id;
    let mut trust = Trust { device_id, identity: c.identity };
    let outcomes = client.import_marks(&export, admin.as_ref(), &mut trust)?;
    let missing = outcomes.iter().filter(|o| o.slot.is_none()).count();
    if c.json {
        super::json(&outcomes)?;
    } else {
        for o in &outcomes {
            let show = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
            match o.slot {
                None => println!("{}: in no slot here, not imported", o.key),
                Some(slot) => println!(
                    "slot {slot} {}: mark {} (exported {}){}",
                    o.key,
                    show(o.mark),
                    show(o.imported),
                    if o.raised { ", raised" } else { "" }
                ),
            }
        }
    }
    if missing > 0 {
        return Err(exit::Invalid(format!(
            "{missing} exported key(s) are in no slot of this signer: put each back first \
             (`derive-key` with its path), then import again"
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
