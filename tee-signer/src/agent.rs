//! What an agent asks of the signer: what it is (`info`), a slot's key
//! (`pubkey`), a signature (`sign`), an attestation (`attest`), and the
//! audit log (`audit`).

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use clap::Args;
use tee_core::B256;
use tee_core::protocol::{
    DeviceInfo, GetAuditLog, GetPublicKey, Health, HealthResponse, KeyOrigin, Probe, Replication,
};

use super::exit::Invalid;
use super::{At, Conn, Failure, client, json, now_secs};
use crate::demo::demo_action;
use tee_client::actions::OwnedAction;
use tee_client::approval::{ApprovalRequest, Approvals, signature_from_hex};
use tee_client::policyfile::kind_by_name;
use tee_client::provider::{PhalaDstackProvider, ProviderError};
use tee_core::protocol::DeviceError;
use tee_verify::Verifier;

#[derive(Args)]
pub(super) struct Sign {
    #[command(flatten)]
    at: At,
    /// The action as a wallet receives it, JSON, from a file or `-`
    /// (stdin): an `eth_signTransaction` request (EIP-1559; a registry
    /// call is decoded), or `{"method": "personal_sign", "params": [msg]}`.
    #[arg(long, conflicts_with_all = ["action", "sample"])]
    json: Option<PathBuf>,
    /// The action's canonical (postcard) encoding, hex.
    #[arg(long, conflicts_with = "sample")]
    action: Option<String>,
    /// A sample action of this kind (for trying a signer out).
    #[arg(long)]
    sample: Option<String>,
    /// The sequence to sign at (default: the one after the slot's mark).
    #[arg(long)]
    sequence: Option<u64>,
    /// Sign only, without the attestation (for a signer without a TEE): the
    /// same JSON without `attestation`.
    #[arg(long)]
    no_attest: bool,
    /// With `--json`: the approval request this action got (what `sign`
    /// printed when the slot's policy held it), to sign it with the
    /// approvals below, at the request's sequence.
    #[arg(long, requires_all = ["json", "approval"], conflicts_with_all = ["sequence", "no_attest"])]
    request: Option<PathBuf>,
    /// An approver's signature over the request (`approve`'s `signature`,
    /// or a wallet's over its `typedData`), hex; once per approver.
    #[arg(long, requires = "request")]
    approval: Vec<String>,
}

/// The approvals `--request` and `--approval` give.
fn approvals_of(c: &Sign) -> Result<Option<Approvals>, Failure> {
    let Some(path) = &c.request else { return Ok(None) };
    let text: serde_json::Value = serde_json::from_str(&super::read(path)?)?;
    let inner = text.get("approvalRequest").cloned().unwrap_or(text);
    let request: ApprovalRequest = serde_json::from_value(inner)?;
    let signatures = c
        .approval
        .iter()
        .map(|a| {
            signature_from_hex(a)
                .ok_or_else(|| Invalid(format!("--approval {a}: not a 65-byte hex signature")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Approvals::of(&request, signatures)))
}

/// A `sign` the policy held for approval prints the request (with the
/// typed data its approvers sign) and exits refused; anything else is the
/// failure it was.
fn held(r: Result<ExitCode, Failure>) -> Result<ExitCode, Failure> {
    match r {
        Err(e) => match e.downcast::<ProviderError>() {
            Ok(p) => match *p {
                ProviderError::ApprovalRequired(request) => {
                    json(&serde_json::json!({
                        "approvalRequest": request,
                        "typedData": request.typed_data(),
                    }))?;
                    eprintln!("tee-signer: {}", ProviderError::ApprovalRequired(request));
                    Ok(super::exit::status(super::exit::REFUSED))
                }
                other => Err(other.into()),
            },
            Err(e) => Err(e),
        },
        ok => ok,
    }
}

/// The JSON action in `path` (`-`: stdin).
fn read_json(path: &Path) -> Result<String, Failure> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        super::read(path)
    }
}

#[derive(Args)]
pub(super) struct Attest {
    #[command(flatten)]
    at: At,
    /// The verifier's challenge (32 bytes hex); random if absent.
    #[arg(long)]
    challenge: Option<B256>,
}

#[derive(Args)]
pub(super) struct Audit {
    #[command(flatten)]
    conn: Conn,
    /// The first entry wanted.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Print JSON (camelCase keys; numbers above 2^53 as decimal strings).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct Info {
    #[command(flatten)]
    conn: Conn,
    /// Print JSON (camelCase keys).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct Slots {
    #[command(flatten)]
    conn: Conn,
    /// Print JSON (camelCase keys; numbers above 2^53 as decimal strings).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct Pubkey {
    #[command(flatten)]
    at: At,
    /// Print JSON (camelCase keys; numbers above 2^53 as decimal strings).
    #[arg(long)]
    json: bool,
}

/// A JSON number, or a decimal string above 2^53 (what JavaScript reads
/// exactly).
fn int(v: u64) -> serde_json::Value {
    if v <= 1 << 53 { v.into() } else { v.to_string().into() }
}

/// A probe's name in `info`'s output.
fn probe(p: Probe) -> &'static str {
    match p {
        Probe::NotUsed => "notUsed",
        Probe::Ok => "ok",
        Probe::Failed => "failed",
    }
}

fn replication(r: Replication) -> &'static str {
    match r {
        Replication::NotUsed => "notUsed",
        Replication::NoStandby => "noStandby",
        Replication::Synchronous => "synchronous",
        Replication::Asynchronous => "asynchronous",
        Replication::Hidden => "hidden",
    }
}

/// How the shared marks database replicates, for people.
fn replication_text(r: Replication) -> &'static str {
    match r {
        Replication::NotUsed => "no shared marks",
        Replication::NoStandby => "marks database without standbys",
        Replication::Synchronous => {
            "marks database with synchronous standbys (a failover keeps every mark)"
        }
        Replication::Asynchronous => {
            "marks database with asynchronous standbys (a failover can lose marks)"
        }
        Replication::Hidden => "marks database hides its standbys from the signer's role",
    }
}

/// What `info` reports and how it exits: 0, or [`super::exit::UNREACHABLE`]
/// when something the signer needs (dstack, the shared marks, its storage)
/// failed its probe. A device alone (a microcontroller) reports no health.
pub(super) fn info(c: &Info) -> Result<ExitCode, Failure> {
    let mut client = client(&c.conn)?;
    let i = client.call(&DeviceInfo)?;
    let health: Option<HealthResponse> = match client.call(&Health) {
        Ok(h) => Some(h),
        Err(tee_client::ClientError::Device(
            DeviceError::Unsupported | DeviceError::UnknownCommand,
        )) => None,
        Err(e) => return Err(e.into()),
    };
    let code = match health {
        Some(h) if !h.healthy() => super::exit::UNREACHABLE,
        _ => super::exit::OK,
    };
    if c.json {
        let b = &i.bounds;
        json(&serde_json::json!({
            "protocolVersion": i.protocol_version,
            "firmware": i.firmware.as_str(),
            "backend": format!("{:?}", i.backend),
            "capabilities": i.capabilities,
            "slots": i.slots,
            "maxRequestFrame": i.max_request_frame,
            "deviceId": i.device_id.to_string(),
            "admin": i.admin.to_string(),
            "bounds": {
                "uri": b.uri, "tag": b.tag, "metadataKey": b.metadata_key,
                "metadataValue": b.metadata_value, "metadataEntries": b.metadata_entries,
                "walletSignature": b.wallet_signature, "calldata": b.calldata,
                "message": b.message, "action": b.action,
            },
            "health": health.map(|h| serde_json::json!({
                "dstack": probe(h.dstack), "marks": probe(h.marks), "storage": probe(h.storage),
                "replication": replication(h.replication),
            })),
        }))?;
        return Ok(super::exit::status(code));
    }
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
    match health {
        Some(h) => {
            println!(
                "health        dstack {}, marks {}, storage {}",
                probe(h.dstack),
                probe(h.marks),
                probe(h.storage)
            );
            if h.replication != Replication::NotUsed {
                println!("replication   {}", replication_text(h.replication));
            }
        }
        None => println!("health        not reported (a device without a host service)"),
    }
    Ok(super::exit::status(code))
}

pub(super) fn pubkey(c: &Pubkey) -> Result<ExitCode, Failure> {
    let mut client = client(&c.at.conn)?;
    let k = client.call(&GetPublicKey { slot: c.at.slot })?;
    if c.json {
        return json(&serde_json::json!({
            "slot": k.slot,
            "address": k.address.to_string(),
            "publicKey": k.public_key.to_string(),
            "origin": match &k.origin {
                KeyOrigin::Generated => serde_json::json!("generated"),
                KeyOrigin::Derived(path) => serde_json::json!({ "derived": path.as_str() }),
            },
            "highWater": k.high_water.map(int),
        }));
    }
    println!("slot          {}", k.slot);
    println!("address       {}", k.address);
    println!("public key    {}", k.public_key);
    println!("origin        {:?}", k.origin);
    println!("high water    {:?}", k.high_water);
    Ok(ExitCode::SUCCESS)
}

/// One provider, so one connection, for the whole command.
pub(super) fn sign(c: Sign) -> Result<ExitCode, Failure> {
    held(sign_held(c))
}

fn sign_held(c: Sign) -> Result<ExitCode, Failure> {
    let slot = c.at.slot;
    let p = PhalaDstackProvider::new(c.at.conn.connect.clone(), Verifier::default());
    if let Some(path) = &c.json
        && !c.no_attest
    {
        let request = read_json(path)?;
        // A policy refusal's message says what the action was read as and
        // the limit it met (`ProviderError::Denied`).
        let signed = match approvals_of(&c)? {
            Some(approvals) => p.sign_json_approved(slot, &request, &approvals)?,
            None => p.sign_json(slot, &request, c.sequence)?,
        };
        return json(&signed.to_json());
    }
    let owned: OwnedAction = match (c.json, c.action, c.sample) {
        (Some(path), _, _) => p.json_action(slot, &read_json(&path)?)?,
        (None, Some(hex), _) => {
            OwnedAction::from_bytes(&hex::decode(hex.trim().trim_start_matches("0x"))?)?
        }
        (None, None, Some(kind)) => {
            let kind = kind_by_name(&kind)
                .ok_or_else(|| Invalid(format!("unknown action kind {kind:?}")))?;
            demo_action(kind, p.address(slot)?, now_secs()?).into()
        }
        (None, None, None) => {
            return Err(Invalid("give --json FILE, --action HEX or --sample KIND".into()).into());
        }
    };
    let action = owned.view();
    if c.no_attest {
        // As `sign` prints it, without the attestation (a signer without a
        // TEE): a transaction still comes out signed.
        let r = p.sign_unattested(slot, &action, c.sequence)?;
        let tx = r.transaction(&action)?;
        let mut out = serde_json::json!({
            "slot": slot,
            "sequence": r.sequence,
            "digest": r.digest.to_string(),
            "signature": tee_core::primitives::Hex(&r.signature.to_bytes()).to_string(),
            "kind": action.kind().name(),
            "action": action.to_string(),
        });
        if let (Some(o), Some((raw, hash))) = (out.as_object_mut(), tx) {
            o.insert("rawTransaction".into(), tee_core::primitives::Hex(&raw).to_string().into());
            o.insert("transactionHash".into(), hash.to_string().into());
        }
        if let (Some(o), Some(request)) =
            (out.as_object_mut(), tee_client::actions::to_json(&action))
        {
            o.insert("request".into(), request);
        }
        return json(&out);
    }
    let signature = p.sign_slot_at(slot, &action, c.sequence)?;
    // The action as decoded, for people, beside the signature.
    json(&tee_client::provider::SignedJson { action: owned.clone(), signature }.to_json())
}

pub(super) fn attest(c: Attest) -> Result<ExitCode, Failure> {
    let challenge = match c.challenge {
        Some(c) => c,
        None => tee_verify::random_challenge()?,
    };
    let p = PhalaDstackProvider::new(c.at.conn.connect, Verifier::default());
    json(&p.get_attestation_report(c.at.slot, challenge)?)
}

/// Every entry from `--from` on, page by page (a page holds what fits a
/// response frame: on a microcontroller fewer than the log keeps).
pub(super) fn audit(c: &Audit) -> Result<ExitCode, Failure> {
    let mut client = client(&c.conn)?;
    let mut from = c.from;
    let mut entries = Vec::new();
    let (next_index, head, oldest_kept) = loop {
        let page = client.call(&GetAuditLog { from })?;
        entries.extend(page.entries.iter().copied());
        let done = (page.next_index, page.head_hash, page.oldest_kept);
        match page.entries.last() {
            Some(last) if last.index + 1 < page.next_index => from = last.index + 1,
            _ => break done,
        }
    };
    if c.json {
        let entries: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "index": int(e.index),
                    "command": e.command,
                    "slot": e.slot,
                    "sequence": int(e.sequence),
                    "digest": e.digest.to_string(),
                    "outcome": format!("{:?}", e.outcome),
                })
            })
            .collect();
        return json(&serde_json::json!({
            "nextIndex": int(next_index),
            "head": head.to_string(),
            "oldestKept": int(oldest_kept),
            "entries": entries,
        }));
    }
    println!("next index {next_index}, head {head}, oldest kept {oldest_kept}");
    for e in &entries {
        println!(
            "#{:<4} command {:#04x} slot {} seq {:<20} digest {} {:?}",
            e.index, e.command, e.slot, e.sequence, e.digest, e.outcome
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every slot that holds a key: its address, where the key came from, its
/// high-water mark and the kinds its policy allows (deny-all: none).
pub(super) fn slots(c: &Slots) -> Result<ExitCode, Failure> {
    let mut client = client(&c.conn)?;
    let mut held = Vec::new();
    for key in client.keys()? {
        let slot = key.slot;
        let policy = client.call(&tee_core::protocol::GetPolicy { slot })?;
        let kinds: Vec<&str> = tee_core::ActionKind::ALL
            .iter()
            .filter(|k| policy.kinds.contains(**k))
            .map(|k| k.name())
            .collect();
        held.push(serde_json::json!({
            "slot": slot,
            "address": key.address.to_string(),
            "origin": match &key.origin {
                KeyOrigin::Generated => serde_json::json!("generated"),
                KeyOrigin::Derived(path) => serde_json::json!({ "derived": path.as_str() }),
            },
            "highWater": key.high_water.map(int),
            "kinds": kinds,
        }));
    }
    if c.json {
        return json(&held);
    }
    for h in &held {
        let origin = match &h["origin"] {
            serde_json::Value::String(s) => s.clone(),
            other => format!("derived {}", other["derived"]),
        };
        let kinds = h["kinds"].as_array().map_or(0, Vec::len);
        println!(
            "slot {:<3} {}  {:<32} high water {:<8} {}",
            h["slot"],
            h["address"].as_str().unwrap_or_default(),
            origin,
            h["highWater"],
            if kinds == 0 { "deny-all".to_owned() } else { format!("{kinds} kinds allowed") }
        );
    }
    Ok(ExitCode::SUCCESS)
}
