//! `tee-signer`: the ERC-8004 TEE signer's command-line tool: run the
//! signer (`serve`), the simulated dstack (`sim-dstack`), talk to a signer
//! as its admin or its agent, verify attestations, and the demo.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tee_core::protocol::{
    AdminAuth, BackendKind, DeriveKey, DeviceInfo, GenerateKey, GetAuditLog, GetPolicy,
    GetPublicKey, SetPolicy, Sign,
};
use tee_core::{Action, ActionKind, Address, B256, SigningKey, heapless};
use tee_std::backend::{SignerConfig, open_device};
use tee_std::client::Client;
use tee_std::endpoint::{Endpoint, Stream, connect};
use tee_std::hexser::HexBytes;
use tee_std::pccs::Pccs;
use tee_std::policyfile::{PolicyFile, kind_by_name};
use tee_std::provider::{Attestation, PhalaDstackProvider, TeeSignature, verify_signature};
use tee_std::server::{Limits, serve};
use tee_std::sim::SimDstack;
use tee_std::simd::{Listen, SimServer};
use tee_std::verify::{Expected, Policy as VerifierPolicy, Verifier};
use tee_std::{demo, dstack};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(version, about = "Sign ERC-8004 agent actions with a key held in a TEE")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Conn {
    /// The signer: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT or serial:PATH[@BAUD].
    #[arg(long, short)]
    connect: Endpoint,
}

#[derive(Args)]
struct At {
    #[command(flatten)]
    conn: Conn,
    /// The key slot.
    #[arg(long, default_value_t = 0)]
    slot: u8,
}

#[derive(Args)]
struct Admin {
    /// File holding the admin's secret key (hex), readable by you only.
    #[arg(long)]
    admin_key_file: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// End to end on the built-in simulated TEE: a simulated dstack, the
    /// signer behind a unix socket, a derived key under a policy, an
    /// ERC-8004 action signed through the phala-dstack provider, and the
    /// attestation verified.
    Demo {
        /// Action kind to sign (AgentWalletSet, setAgentURI, giveFeedback,
        /// ...); `--kind list` lists them.
        #[arg(long, default_value = "AgentWalletSet")]
        kind: String,
    },
    /// Run the signer.
    Serve {
        /// State directory (keys, policies, anti-replay counters).
        #[arg(long)]
        state: PathBuf,
        /// Where to listen (repeatable): unix:PATH, tcp:HOST:PORT, vsock:CID:PORT, serial:PATH[@BAUD].
        #[arg(long, required = true)]
        listen: Vec<Endpoint>,
        /// The admin address (required on the first start; checked after).
        #[arg(long)]
        admin: Option<HexBytes<20>>,
        /// dstack's endpoint (socket path or http URL); by default
        /// DSTACK_SIMULATOR_ENDPOINT or dstack's socket paths.
        #[arg(long, conflicts_with_all = ["simulated", "no_tee"])]
        dstack: Option<String>,
        /// Run the built-in simulated dstack and use it (no hardware guarantees).
        #[arg(long, conflicts_with = "no_tee")]
        simulated: bool,
        /// No TEE: generated keys only, no attestation.
        #[arg(long)]
        no_tee: bool,
        /// Connections served at once.
        #[arg(long, default_value_t = 64)]
        max_connections: usize,
    },
    /// Run the simulated dstack guest agent (dstack's HTTP API).
    SimDstack {
        /// unix:PATH or tcp:HOST:PORT.
        #[arg(long)]
        listen: Endpoint,
    },
    /// What the signer is.
    Info(Conn),
    /// A slot's public key, address and high-water mark.
    Pubkey(At),
    /// (admin) Put dstack's key for PATH in a slot.
    DeriveKey {
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        admin: Admin,
        #[arg(long)]
        path: String,
    },
    /// (admin) Put a fresh random key in a slot.
    GenerateKey {
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        admin: Admin,
    },
    /// (admin) Set a slot's policy from a TOML or JSON policy file.
    SetPolicy {
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        admin: Admin,
        #[arg(long)]
        policy: PathBuf,
    },
    /// A slot's policy.
    GetPolicy(At),
    /// Sign an action (its canonical encoding in hex, or a sample kind) at
    /// the next sequence, with a per-action attestation; prints JSON.
    Sign {
        #[command(flatten)]
        at: At,
        /// The action's canonical (postcard) encoding, hex.
        #[arg(long, conflicts_with = "sample")]
        action: Option<String>,
        /// A sample action of this kind (for trying a signer out).
        #[arg(long)]
        sample: Option<String>,
        /// Sign only, without the attestation (for a signer without a TEE).
        #[arg(long)]
        no_attest: bool,
    },
    /// A quote binding a slot's key to a challenge, with its evidence; prints JSON.
    Attest {
        #[command(flatten)]
        at: At,
        /// The verifier's challenge (32 bytes hex); random if absent.
        #[arg(long)]
        challenge: Option<HexBytes<32>>,
    },
    /// Verify an attestation (from `attest`) or a signature (from `sign`).
    Verify {
        /// The JSON from `attest` or `sign`.
        file: PathBuf,
        /// The verifier policy (TOML or JSON): measurements, compose hash, app id, KMS root.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// DCAP collateral (dcap-qvl JSON).
        #[arg(long, conflicts_with = "pccs")]
        collateral: Option<PathBuf>,
        /// A PCCS to fetch collateral from.
        #[arg(long)]
        pccs: Option<String>,
        /// For an attestation: the challenge it must bind.
        #[arg(long)]
        challenge: Option<HexBytes<32>>,
        /// Unix time to verify at (default: now).
        #[arg(long)]
        now: Option<u64>,
    },
    /// The signer's hash-chained audit log.
    Audit {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
}

type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tee-signer: {e}");
            ExitCode::FAILURE
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn client(c: &Conn) -> Result<Client<Box<dyn Stream>>, Failure> {
    let stream = connect(&c.connect, TIMEOUT).map_err(|e| format!("{}: {e}", c.connect))?;
    Ok(Client::new(stream))
}

fn read_admin(a: &Admin) -> Result<SigningKey, Failure> {
    let text = Zeroizing::new(
        std::fs::read_to_string(&a.admin_key_file)
            .map_err(|e| format!("{}: {e}", a.admin_key_file.display()))?,
    );
    let digits = text.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(digits, &mut key[..])
        .map_err(|_| format!("{}: not a 32-byte hex key", a.admin_key_file.display()))?;
    Ok(SigningKey::from_bytes(&key)?)
}

fn json(v: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Demo { kind } => {
            if kind == "list" {
                for &k in ActionKind::ALL {
                    println!("{:<36} {}", k.name(), if k.is_blind() { "blind" } else { "typed" });
                }
                return Ok(ExitCode::SUCCESS);
            }
            let Some(kind) = kind_by_name(&kind) else {
                eprintln!("unknown action kind {kind:?}; `--kind list` lists them");
                return Ok(ExitCode::from(2));
            };
            print!("{}", demo::run(kind)?);
        }
        Command::Serve { state, listen, admin, dstack, simulated, no_tee, max_connections } => {
            init_logging();
            let mut sim = None;
            let (endpoint, kind) = if no_tee {
                // No hardware guarantees, and no quotes to show for it.
                (None, BackendKind::Simulated)
            } else if simulated {
                let s = SimDstack::new(
                    &demo::DEMO_KMS_ROOT,
                    demo::DEMO_APP_ID,
                    demo::DEMO_COMPOSE_HASH,
                )?;
                std::fs::create_dir_all(&state)?;
                let server = SimServer::start(s, &Listen::Unix(state.join("sim-dstack.sock")))?;
                let e = server.endpoint().to_owned();
                sim = Some(server);
                (Some(e), BackendKind::Simulated)
            } else {
                let e = dstack::resolve_endpoint(dstack.as_deref()).ok_or(
                    "no dstack found (--dstack, DSTACK_SIMULATOR_ENDPOINT or /var/run/dstack.sock); \
                     --simulated runs the built-in simulator, --no-tee runs without a TEE",
                )?;
                (Some(e), BackendKind::Dstack)
            };
            let device = open_device(&SignerConfig {
                state,
                dstack: endpoint,
                kind,
                admin: admin.map(|a| Address(a.0)),
            })?;
            let limits = Limits { max_connections, ..Limits::default() };
            let server = serve(Arc::new(Mutex::new(device)), &listen, limits)?;
            tracing::info!(simulated = sim.is_some(), "signer running");
            server.wait();
        }
        Command::SimDstack { listen } => {
            init_logging();
            let listen = match listen {
                Endpoint::Unix(p) => Listen::Unix(p),
                Endpoint::Tcp(a) => Listen::Tcp(a),
                other => {
                    return Err(
                        format!("{other}: the simulated dstack listens on unix or tcp").into()
                    );
                }
            };
            let s =
                SimDstack::new(&demo::DEMO_KMS_ROOT, demo::DEMO_APP_ID, demo::DEMO_COMPOSE_HASH)?;
            let server = SimServer::start(s, &listen)?;
            println!(
                "simulated dstack at {} (DSTACK_SIMULATOR_ENDPOINT={})",
                server.endpoint(),
                server.endpoint()
            );
            server.wait();
        }
        Command::Info(c) => {
            let i = client(&c)?.call(&DeviceInfo)?;
            println!("protocol      {}", i.protocol_version);
            println!("firmware      {}", i.firmware);
            println!("backend       {:?}", i.backend);
            println!(
                "capabilities  {:#06b} (attest, derive, generate, clock = 1, 2, 4, 8)",
                i.capabilities
            );
            println!("slots         {}", i.slots);
            println!("device id     {}", i.device_id);
            println!("admin         {}", i.admin);
        }
        Command::Pubkey(At { conn, slot }) => {
            let k = client(&conn)?.call(&GetPublicKey { slot })?;
            println!("slot          {}", k.slot);
            println!("address       {}", k.address);
            println!("public key    {}", tee_core::primitives::Hex(&k.public_key.0));
            println!("origin        {:?}", k.origin);
            println!("high water    {:?}", k.high_water);
        }
        Command::DeriveKey { at: At { conn, slot }, admin, path } => {
            let admin = read_admin(&admin)?;
            let mut c = client(&conn)?;
            let info = c.call(&DeviceInfo)?;
            let path = heapless::String::try_from(path.as_str()).map_err(|_| "path too long")?;
            let k = c.admin_now(
                DeriveKey { slot, path, auth: AdminAuth::UNSIGNED },
                &admin,
                &info.device_id,
            )?;
            println!("slot {slot}: {} (derived; policy is deny-all until set-policy)", k.address);
        }
        Command::GenerateKey { at: At { conn, slot }, admin } => {
            let admin = read_admin(&admin)?;
            let mut c = client(&conn)?;
            let info = c.call(&DeviceInfo)?;
            let k = c.admin_now(
                GenerateKey { slot, auth: AdminAuth::UNSIGNED },
                &admin,
                &info.device_id,
            )?;
            println!("slot {slot}: {} (generated; policy is deny-all until set-policy)", k.address);
        }
        Command::SetPolicy { at: At { conn, slot }, admin, policy } => {
            let admin = read_admin(&admin)?;
            let text = std::fs::read_to_string(&policy)
                .map_err(|e| format!("{}: {e}", policy.display()))?;
            let policy = PolicyFile::parse(&text)?.to_policy()?;
            let mut c = client(&conn)?;
            let info = c.call(&DeviceInfo)?;
            let r = c.admin_now(
                SetPolicy { slot, policy, auth: AdminAuth::UNSIGNED },
                &admin,
                &info.device_id,
            )?;
            println!("slot {slot}: policy {} set", r.policy_hash);
        }
        Command::GetPolicy(At { conn, slot }) => {
            println!("{:#?}", client(&conn)?.call(&GetPolicy { slot })?);
        }
        Command::Sign { at: At { conn, slot }, action, sample, no_attest } => {
            let action = match (action, sample) {
                (Some(hex), _) => {
                    let bytes = hex::decode(hex.trim().trim_start_matches("0x"))?;
                    Action::decode(&bytes)?
                }
                (None, Some(kind)) => {
                    let kind =
                        kind_by_name(&kind).ok_or(format!("unknown action kind {kind:?}"))?;
                    let mut c = client(&conn)?;
                    let address = c.call(&GetPublicKey { slot })?.address;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs();
                    demo::demo_action(kind, address, now)
                }
                (None, None) => return Err("give --action HEX or --sample KIND".into()),
            };
            if no_attest {
                let mut c = client(&conn)?;
                let sequence = c.call(&GetPublicKey { slot })?.high_water.map_or(1, |h| h + 1);
                let r = c.call(&Sign { slot, sequence, action })?;
                println!("sequence      {}", r.sequence);
                println!("digest        {}", r.digest);
                println!("signature     {}", r.signature);
            } else {
                let p = PhalaDstackProvider::new(conn.connect, Verifier::default());
                json(&p.sign_slot(slot, &action)?)?;
            }
        }
        Command::Attest { at: At { conn, slot }, challenge } => {
            let challenge = match challenge {
                Some(c) => B256(c.0),
                None => tee_std::sim::random_challenge()?,
            };
            let p = PhalaDstackProvider::new(conn.connect, Verifier::default());
            json(&p.get_attestation_report(slot, challenge)?)?;
        }
        Command::Verify { file, policy, collateral, pccs, challenge, now } => {
            let verifier = Verifier {
                policy: match policy {
                    Some(p) => VerifierPolicy::load(&p)?,
                    None => VerifierPolicy::default(),
                },
                collateral: match collateral {
                    Some(c) => Some(serde_json::from_str(&read(&c)?)?),
                    None => None,
                },
                pccs: pccs.map(|url| Pccs::new(&url, None)).transpose()?,
            };
            let now = match now {
                Some(t) => t,
                None => {
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs()
                }
            };
            let text = read(&file)?;
            let report = if let Ok(s) = serde_json::from_str::<TeeSignature>(&text) {
                verify_signature(&verifier, &s, now)
            } else {
                let a: Attestation = serde_json::from_str(&text).map_err(|e| {
                    format!("{}: neither a signature nor an attestation: {e}", file.display())
                })?;
                let expected = match (challenge, a.bound) {
                    (Some(c), _) => Expected::Challenge(B256(c.0)),
                    (None, tee_std::provider::Bound::ActionDigest(d)) => {
                        Expected::ActionDigest(B256(d.0))
                    }
                    (None, tee_std::provider::Bound::Challenge(_)) => {
                        return Err("an attestation bound to a challenge: give the challenge you sent (--challenge)".into());
                    }
                };
                verifier.verify(&a.evidence(), &Address(a.address.0), &expected, now)
            };
            println!("{report}");
            if !report.verified() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Audit { conn, from } => {
            let mut c = client(&conn)?;
            let log = c.call(&GetAuditLog { from })?;
            println!(
                "next index {}, head {}, overwritten unread {}",
                log.next_index, log.head_hash, log.overwritten_unread
            );
            for e in &log.entries {
                println!(
                    "#{:<4} command {:#04x} slot {} seq {:<20} digest {} {:?}",
                    e.index, e.command, e.slot, e.sequence, e.digest, e.outcome
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read(p: &Path) -> Result<String, Failure> {
    Ok(std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?)
}
