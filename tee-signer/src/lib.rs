//! `tee-signer`, the command-line tool, as a tree: one file per group of
//! subcommands, in tmkms's style.
//!
//! - `run`: the signer (`serve`), the simulated dstack (`sim-dstack`), the
//!   end-to-end `demo`;
//! - `admin`: what the admin does to a slot (`derive-key`, `generate-key`,
//!   `set-policy`, `get-policy`);
//! - `agent`: what an agent asks of the signer (`info`, `pubkey`, `sign`,
//!   `attest`, `audit`);
//! - `verify`: what a validator does (`policy`, `verify`);
//! - `onchain`: TEE trust on the ERC-8004 registries (`agent-bundle`,
//!   `registration-file`, `validate`, `verdict`, `reputation`);
//! - `rpc`: the Ethereum JSON-RPC endpoint for tools that speak to a node.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)]

/// `println!` for a command-line tool whose output may go to a reader that
/// stops early (`tee-signer audit | head`): std's panics when standard
/// output is a closed pipe; this one ends the process as a killed-by-SIGPIPE
/// tool would, quietly, with status 141 (`docs/cli.md`). Every module below
/// uses it in place of std's.
macro_rules! println {
    () => { $crate::out::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}

/// `print!`, as [`println!`] is.
macro_rules! print {
    ($($arg:tt)*) => { $crate::out::text(format_args!($($arg)*)) };
}

pub mod demo;
pub mod exit;

mod admin;
mod agent;
mod approve;
mod marks;
mod onchain;
mod out;
mod rpc;
mod run;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tee_core::SigningKey;
use zeroize::Zeroizing;

use tee_client::Client;
use tee_transport::{Endpoint, Stream, connect};

/// The version and the commit it was built from (`--version`): what ties a
/// binary, and the image holding it, to the source.
const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TEE_SIGNER_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "tee-signer",
    version = VERSION,
    about = "Sign ERC-8004 agent actions with a key held in a TEE"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the signer is.
#[derive(Args)]
struct Conn {
    /// The signer: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT or serial:PATH[@BAUD].
    #[arg(long, short)]
    connect: Endpoint,
}

/// A slot of a signer.
#[derive(Args)]
struct At {
    #[command(flatten)]
    conn: Conn,
    /// The key slot.
    #[arg(long, default_value_t = 0)]
    slot: u8,
}

/// The admin's key, and whom to trust to confirm the command.
#[derive(Args)]
struct AdminKey {
    /// File holding the admin's secret key (hex), readable by you only.
    #[arg(long)]
    admin_key_file: PathBuf,
    /// The signer's identity address (what `attest --slot 255` binds to the
    /// TEE), which must sign the statements confirming the command; without
    /// it, the identity that answers is trusted on first use.
    #[arg(long)]
    identity: Option<tee_core::Address>,
    /// Send at this counter without confirmation: for a signer without an
    /// identity key (an MCU), whose admin keeps the counter.
    #[arg(long, conflicts_with = "identity")]
    counter: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// End to end on the built-in simulated TEE: a simulated dstack, the
    /// signer behind a unix socket, a derived key under a policy, an
    /// ERC-8004 action signed through the phala-dstack provider, and the
    /// attestation verified.
    Demo(run::Demo),
    /// Run the signer.
    Serve(run::Serve),
    /// Run the simulated dstack guest agent (dstack's HTTP API).
    SimDstack(run::SimDstack),
    /// What the signer is.
    Info(agent::Info),
    /// Every slot that holds a key: address, origin, high-water mark, the
    /// kinds its policy allows.
    Slots(agent::Slots),
    /// A slot's public key, address and high-water mark.
    Pubkey(agent::Pubkey),
    /// (admin) Put dstack's key for PATH in a slot.
    DeriveKey(admin::DeriveKey),
    /// (admin) Put a fresh random key in a slot.
    GenerateKey(admin::GenerateKey),
    /// (admin) Set a slot's policy from a TOML or JSON policy file.
    SetPolicy(admin::SetPolicy),
    /// A slot's policy (with --verify, checked against the signer's signed
    /// statement).
    GetPolicy(admin::GetPolicy),
    /// Sign an action (its canonical encoding in hex, or a sample kind) at
    /// the next sequence, with a per-action attestation; prints JSON.
    Sign(agent::Sign),
    /// (approver) Approve an action a slot's policy holds for approval:
    /// reads the approval request `sign` printed, shows the action, checks
    /// it hashes to the request's digest, and prints your EIP-712 approval.
    Approve(approve::Approve),
    /// A quote binding a slot's key to a challenge, with its evidence; prints JSON.
    Attest(agent::Attest),
    /// Write a verifier policy pinned to a deployment (its compose hash, app
    /// id, image measurements and KMS root), from an attestation or dstack's
    /// Info, checking the app-compose file you reviewed against it.
    Policy(verify::PinPolicy),
    /// Print the compose hash dstack computes for an app-compose file (what
    /// a deployment's event log records and `policy --app-compose` pins).
    ComposeHash(verify::ComposeHash),
    /// Verify an attestation (from `attest`) or a signature (from `sign`)
    /// under a pinned policy.
    Verify(verify::Verify),
    /// A platform's TCB (from a quote, an attestation, a signature or a
    /// running signer): status, advisories, FMSPC, TCB evaluation number,
    /// and how long its DCAP collateral lasts.
    Tcb(verify::Tcb),
    /// The signer's hash-chained audit log.
    Audit(agent::Audit),
    /// Export every key's anti-replay mark, or import another export's.
    Marks(marks::Marks),
    /// An attestation bundle for an ERC-8004 agent: a slot's attestation
    /// bound to (chain id, identity registry, agent id); its hash is the
    /// validation request's requestHash.
    AgentBundle(onchain::AgentBundle),
    /// The agent's ERC-8004 registration file, trusting tee-attestation and
    /// naming its TEE signer and attestation bundle.
    RegistrationFile(onchain::RegistrationFile),
    /// (validator) Check a validation request's bundle under your pinned
    /// policy and answer it (100 pass, 0 fail) with your slot's key.
    Validate(onchain::Validate),
    /// Read an agent's tee-attestation verdict from the Validation Registry.
    Verdict(onchain::Verdict),
    /// An agent's feedback on the Reputation Registry: all of it, and the
    /// TEE-verified part (feedback files carrying the agent's TaskReceipt,
    /// signed and attested in its TEE), each left out with its reason.
    Reputation(onchain::Reputation),
    /// An Ethereum JSON-RPC endpoint for the served slots (eth_accounts,
    /// personal_sign, eth_signTypedData_v4, eth_signTransaction,
    /// eth_sendTransaction, tee_getAttestation); every other method is
    /// forwarded to --upstream. No admin command.
    Rpc(rpc::Rpc),
}

/// Why a command failed, as the user reads it.
type Failure = Box<dyn std::error::Error>;

/// The tool: parses the command line, runs the command, and prints why it
/// failed (exit 1) if it did.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Demo(c) => run::demo(c),
        Command::Serve(c) => run::serve(c),
        Command::SimDstack(c) => run::sim_dstack(c),
        Command::Info(c) => agent::info(&c),
        Command::Slots(c) => agent::slots(&c),
        Command::Pubkey(c) => agent::pubkey(&c),
        Command::DeriveKey(c) => admin::derive_key(c),
        Command::GenerateKey(c) => admin::generate_key(c),
        Command::SetPolicy(c) => admin::set_policy(c),
        Command::GetPolicy(c) => admin::get_policy(c),
        Command::Sign(c) => agent::sign(c),
        Command::Approve(c) => approve::approve(&c),
        Command::Attest(c) => agent::attest(c),
        Command::Policy(c) => verify::pin_policy(c),
        Command::ComposeHash(c) => verify::compose_hash(&c),
        Command::Verify(c) => verify::verify(c),
        Command::Tcb(c) => verify::tcb(c),
        Command::Audit(c) => agent::audit(&c),
        Command::Marks(c) => marks::marks(c),
        Command::AgentBundle(c) => onchain::agent_bundle(c),
        Command::RegistrationFile(c) => onchain::registration_file(c),
        Command::Validate(c) => onchain::validate(c),
        Command::Verdict(c) => onchain::verdict(c),
        Command::Reputation(c) => onchain::reputation(c),
        Command::Rpc(c) => rpc::rpc(c),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tee-signer: {e}");
            exit::status(exit::code_of(e.as_ref()))
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn client(c: &Conn) -> Result<Client<Box<dyn Stream>>, Failure> {
    let stream = connect(&c.connect, TIMEOUT)
        .map_err(|source| exit::Unreachable { what: c.connect.to_string(), source })?;
    Ok(Client::new(stream))
}

fn read_admin(a: &AdminKey) -> Result<SigningKey, Failure> {
    // The key that rules every slot: a file others can read is a key others
    // may have.
    read_secret_key(&a.admin_key_file, "admin key")
}

/// A secret key (hex) from a file only its owner may read or write.
fn read_secret_key(path: &Path, what: &str) -> Result<SigningKey, Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(exit::Invalid(format!(
                "{}: the {what} file is readable or writable by others (mode {:o}); \
                 chmod 600 it",
                path.display(),
                mode & 0o777
            ))
            .into());
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let digits = text.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(digits, &mut key[..])
        .map_err(|_| exit::Invalid(format!("{}: not a 32-byte hex key", path.display())))?;
    Ok(SigningKey::from_bytes(&key)?)
}

fn json(v: &impl serde::Serialize) -> Result<ExitCode, Failure> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

fn read(p: &Path) -> Result<String, Failure> {
    Ok(std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?)
}

fn now_secs() -> Result<u64, Failure> {
    Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
