//! `docs/wire-format.md`'s generated section (hex examples of every message
//! and the error-code table) comes from here; this test fails if the
//! document says anything else. To regenerate after a deliberate change:
//! `UPDATE_WIRE_DOC=1 cargo test -p tee-core --test wire_format`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use tee_core::client::encode_request;
use tee_core::device::Device;
use tee_core::frame::{self, FrameError, Header};
use tee_core::heapless;
use tee_core::protocol::*;
use tee_core::{ActionKind, B256, Error, U256, codec};
use tee_testkit::sample;
use tee_testkit::{MemBackend, Pair};

const BEGIN: &str = "<!-- BEGIN GENERATED: tee-core/tests/wire_format.rs -->";
const END: &str = "<!-- END GENERATED -->";

fn hex_block(out: &mut String, label: &str, bytes: &[u8]) {
    let _ = writeln!(out, "{label} ({} bytes):", bytes.len());
    for line in bytes.chunks(32) {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "    {}", hex.join(" "));
    }
}

struct Doc {
    out: String,
    pair: Pair<MemBackend>,
    next_id: u32,
}

impl Doc {
    /// One request and its response: header, body and whole frame of each.
    fn example<C: Command>(&mut self, title: &str, what: &str, cmd: &C) {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = vec![0u8; MAX_RESPONSE_WIRE];
        let request = encode_request(id, cmd, &mut buf).unwrap().to_vec();
        let responses = self.pair.send_raw(&request);
        let payload = responses.last().unwrap().clone();
        let (h, body) = Header::split(&payload).unwrap();
        assert_eq!(h.request_id, id);
        let response = frame::encode_raw(&h, body, &mut buf).unwrap().to_vec();
        let mut req_body = vec![0u8; MAX_REQUEST_BODY];
        let req_body = codec::encode(cmd, &mut req_body).unwrap().to_vec();

        let o = &mut self.out;
        let _ = writeln!(o, "### `{:#04x}` {title}\n", C::CODE);
        let _ = writeln!(o, "{what}\n\n```text");
        hex_block(
            o,
            "request header",
            &Header { version: PROTOCOL_VERSION, command: C::CODE, request_id: id }.to_bytes(),
        );
        hex_block(o, "request body", &req_body);
        hex_block(o, "request frame", &request);
        hex_block(o, "response header", &h.to_bytes());
        hex_block(o, "response body", body);
        hex_block(o, "response frame", &response);
        let _ = writeln!(o, "```\n");
    }
}

fn encoded<T: Serialize>(v: &T) -> Vec<u8> {
    let mut buf = [0u8; 512];
    codec::encode(v, &mut buf).unwrap().to_vec()
}

/// The Sign request body, field by field; the fields' separate encodings
/// must concatenate to the body itself.
fn walk_through(out: &mut String, sign: &Sign<'_>) {
    use tee_core::Action;
    use tee_core::action::{Envelope, RegistryCall, Transaction, TxBody};
    let Action::Transaction(Transaction { envelope: Envelope::Eip1559(tx), body }) = &sign.action
    else {
        unreachable!()
    };
    let TxBody::Registry(t) = body else { unreachable!() };
    let RegistryCall::SetAgentUri { agent_id, new_uri } = &t.call else { unreachable!() };
    let rows: Vec<(Vec<u8>, String)> = vec![
        (encoded(&sign.slot), "slot 0".into()),
        (encoded(&sign.sequence), "sequence 1".into()),
        (vec![1], "action variant 1: Transaction".into()),
        (vec![0], "envelope variant 0: EIP-1559".into()),
        (encoded(&tx.chain_id), format!("chain id {}", tx.chain_id)),
        (encoded(&tx.nonce), format!("nonce {}", tx.nonce)),
        (
            encoded(&tx.max_priority_fee_per_gas),
            format!("max priority fee {} wei", tx.max_priority_fee_per_gas),
        ),
        (encoded(&tx.max_fee_per_gas), format!("max fee {} wei", tx.max_fee_per_gas)),
        (encoded(&tx.gas_limit), format!("gas limit {}", tx.gas_limit)),
        (vec![0], "body variant 0: a registry call".into()),
        (encoded(&t.registry), format!("registry {}", t.registry)),
        (vec![3], "registry call variant 3: setAgentURI".into()),
        (encoded(agent_id), format!("agent id {agent_id}")),
        (encoded(new_uri), format!("new URI, {} bytes of UTF-8 after the length", new_uri.len())),
    ];
    let mut buf = vec![0u8; MAX_REQUEST_BODY];
    let body = codec::encode(sign, &mut buf).unwrap().to_vec();
    assert_eq!(rows.iter().flat_map(|(b, _)| b.clone()).collect::<Vec<u8>>(), body);
    let _ = writeln!(out, "Walk-through of that request body:\n\n| bytes | meaning |\n|---|---|");
    for (bytes, meaning) in rows {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hex = if hex.len() > 8 {
            format!(
                "{} … {} ({} bytes)",
                hex[..3].join(" "),
                hex[hex.len() - 2..].join(" "),
                hex.len()
            )
        } else {
            hex.join(" ")
        };
        let _ = writeln!(out, "| `{hex}` | {meaning} |");
    }
    let _ = writeln!(out);
}

/// Slot 0's key's address, as the device answers it.
fn device_key_address(d: &mut Doc) -> tee_core::Address {
    let mut buf = vec![0u8; MAX_RESPONSE_WIRE];
    let request = encode_request(0xffff, &GetPublicKey { slot: 0 }, &mut buf).unwrap().to_vec();
    let payload = d.pair.send_raw(&request).last().unwrap().clone();
    let (_, body) = Header::split(&payload).unwrap();
    let r: Result<PublicKeyResponse, DeviceError> = codec::decode(body).unwrap();
    r.unwrap().address
}

fn generated() -> String {
    let mut device = Device::open(MemBackend::new(1), tee_testkit::config()).unwrap();
    device.set_identity(tee_core::SigningKey::from_bytes(&[0x1d; 32]).unwrap());
    let mut d = Doc { out: String::new(), pair: Pair::new(device), next_id: 1 };
    let _ = writeln!(
        d.out,
        "Generated from a simulated device (`tee_testkit::MemBackend::new(1)`, device id `0xd1…d1`, \
         admin key `0xad…ad`, identity key `0x1d…1d`, clock at 1767225000), in this order, so each response reflects \
         the requests before it.\n"
    );
    d.example("DeviceInfo", "No body.", &DeviceInfo);
    let mut generate = GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED };
    let admin = tee_core::SigningKey::from_bytes(&tee_testkit::ADMIN_SECRET).unwrap();
    authorize(&mut generate, &admin, &tee_testkit::DEVICE_ID, 1).unwrap();
    d.example("GenerateKey", "Slot 0, admin counter 1.", &generate);
    d.example("GetPublicKey", "Slot 0.", &GetPublicKey { slot: 0 });
    let policy = Policy {
        kinds: KindSet::typed(),
        chains: Allow::Only(heapless::Vec::from_slice(&[sample::CHAIN_ID]).unwrap()),
        contracts: Allow::Only(heapless::Vec::from_slice(&[sample::IDENTITY_REGISTRY]).unwrap()),
        agents: Allow::Any,
        max_value: U256::ZERO,
        max_gas_limit: 500_000,
        max_fee_per_gas: 50_000_000_000,
        max_deadline_ahead_secs: 300,
        rate_limit: Some(RateLimit { max: 60, window_secs: 3600 }),
        eip712_domains: Allow::default(),
        spend_cap: None,
        valid_until: 0,
        tokens: heapless::Vec::new(),
        recipients: Allow::default(),
        unlimited_approvals: false,
        approvals: None,
    };
    let mut set = SetPolicy { slot: 0, policy, auth: AdminAuth::UNSIGNED };
    authorize(&mut set, &admin, &tee_testkit::DEVICE_ID, 2).unwrap();
    d.example(
        "SetPolicy",
        "Slot 0: every typed kind, Base only, the identity registry only, any agent, no value, \
         gas up to 500000, fees up to 50 gwei, deadlines up to 300 s ahead, 60 signatures an \
         hour; admin counter 2.",
        &set,
    );
    d.example("GetPolicy", "Slot 0.", &GetPolicy { slot: 0 });
    let sign = Sign { slot: 0, sequence: 1, action: sample::action(ActionKind::SetAgentUri) };
    d.example(
        "Sign",
        "Slot 0, sequence 1, the sample `setAgentURI(42, \"ipfs://…\")` transaction on Base.",
        &sign,
    );
    walk_through(&mut d.out, &sign);
    d.example("Sign (exact retry)", "The same request again: the same signature.", &sign);
    let replay = Sign { slot: 0, sequence: 1, action: sample::action(ActionKind::Register) };
    d.example("Sign (replay refused)", "Another action at sequence 1.", &replay);
    let denied = Sign { slot: 0, sequence: 2, action: sample::action(ActionKind::GiveFeedback) };
    d.example(
        "Sign (policy refusal)",
        "`giveFeedback` goes to the reputation registry, which the policy does not list.",
        &denied,
    );
    d.example(
        "Attest",
        "Slot 0 with challenge `0x77…77`. The simulated backend's stand-in quote is `SIMQUOTE` \
         followed by the report data; a dstack backend returns a TDX quote.",
        &Attest { slot: 0, challenge: B256([0x77; 32]) },
    );
    d.example("GetAuditLog", "From index 0.", &GetAuditLog { from: 0 });
    d.example(
        "Echo",
        "Four bytes, two of them zero.",
        &Echo { data: heapless::Vec::from_slice(&[0, 1, 0, 2]).unwrap() },
    );
    d.example(
        "AttestAction",
        "Slot 0, sequence 1, the digest of the `setAgentURI` signed above: the slot's last \
         signature, so the quote binds that digest (purpose `02`).",
        &AttestAction { slot: 0, sequence: 1, digest: sign.action.digest() },
    );
    d.example(
        "GetEvidence",
        "Slot 0, the event log of the last quote, from offset 0. The simulated backend's \
         stand-in is `EVENTLOG`; a dstack backend returns dstack's JSON event log.",
        &GetEvidence { slot: 0, part: EvidencePart::EventLog, offset: 0 },
    );
    d.example(
        "AdminState",
        "Slot 0 with nonce `0x4e…4e`: the last admin counter (2, the SetPolicy above), its \
         payload hash, slot 0's key, policy hash and mark (sequence 1 and its commitment), signed \
         by the identity key over the EIP-712 `AdminState` in the admin domain.",
        &AdminState { slot: 0, nonce: B256([0x4e; 32]) },
    );
    d.example(
        "Health",
        "Asked of a device on its own, which answers `Unsupported`: the host service answers it \
         itself, `00` ‖ `dstack` ‖ `marks` ‖ `storage`, each `00` not used, `01` ok, `02` failed.",
        &Health,
    );
    // The device's own statement of slot 0, as `marks export` keeps it,
    // naming a higher mark (what a later export of this device says).
    let identity = tee_core::SigningKey::from_bytes(&[0x1d; 32]).unwrap();
    let key = device_key_address(&mut d);
    let statement = AdminStatement {
        nonce: B256([0xe7; 32]),
        last_counter: 2,
        last_payload: B256::ZERO,
        slot: 0,
        key,
        policy_hash: B256::ZERO,
        sequence: 9,
        commitment: B256([0xc0; 32]),
    };
    // The statement's digest is EIP-712 in the admin domain: signed as
    // pre-hashed typed data.
    let typed = tee_core::Action::Eip712Prehashed(tee_core::action::Eip712Prehashed {
        domain_separator: admin_domain_separator(&tee_testkit::DEVICE_ID),
        struct_hash: statement.struct_hash(),
    });
    let signature = identity.sign(&typed).unwrap().signature;
    d.example(
        "ImportMark",
        "Slot 0, with the device's own statement (nonce `0xe7…e7`) of slot 0's key at sequence 9 \
         (commitment `0xc0…c0`), signed by its identity: no admin authorization needed \
         (`auth` unsigned), the mark rises from 1 to 9.",
        &ImportMark { slot: 0, statement, signature, auth: AdminAuth::UNSIGNED },
    );

    // Approvals: the policy above with an approval rule for `setAgentURI`,
    // a plain `Sign` refused for want of them, then the same action with two
    // approvers' signatures.
    let approvers = [[0xa1; 32], [0xa2; 32]].map(|k| tee_core::SigningKey::from_bytes(&k).unwrap());
    let mut policy = d.pair.call(&GetPolicy { slot: 0 }).unwrap();
    policy.approvals = Some(ApprovalRule {
        approvers: heapless::Vec::from_slice(&approvers.each_ref().map(|k| k.address())).unwrap(),
        threshold: 2,
        kinds: KindSet::NONE.with(ActionKind::SetAgentUri),
        above_value: None,
        above_amount: None,
        max_ttl_secs: 3600,
    });
    let mut set = SetPolicy { slot: 0, policy, auth: AdminAuth::UNSIGNED };
    authorize(&mut set, &admin, &tee_testkit::DEVICE_ID, 3).unwrap();
    d.example(
        "SetPolicy (approvals)",
        "The policy above with an approval rule: `setAgentURI` waits for 2 of the approvers \
         `0xa1…`'s and `0xa2…`'s keys' addresses, each approval good for at most an hour; admin \
         counter 3.",
        &set,
    );
    let flagged = Sign { slot: 0, sequence: 10, action: sample::action(ActionKind::SetAgentUri) };
    d.example(
        "Sign (approvals required)",
        "The sample `setAgentURI` at sequence 10: refused with `ApprovalRequired`, 0 of 2 \
         approvals, the latest expiry the device takes now (its clock plus an hour).",
        &flagged,
    );
    let expires = 1_767_225_000 + 600;
    let approval = approval_action(&key, 10, &flagged.action.digest(), expires);
    let approvals: Vec<u8> =
        approvers.iter().flat_map(|k| k.sign(&approval).unwrap().signature.to_bytes()).collect();
    d.example(
        "SignApproved",
        "The same action at sequence 10 with both approvers' signatures over the EIP-712 \
         `Approval(signer, 10, digest, expires)` (`expires` 600 s after the device's clock): \
         signed, and audited as `Approved(0b11)`.",
        &SignApproved {
            slot: 0,
            sequence: 10,
            expires,
            approvals: &approvals,
            action: flagged.action.clone(),
        },
    );

    // A frame that cannot be read.
    let mut buf = [0u8; 64];
    let mut bad = encode_request(99, &DeviceInfo, &mut buf).unwrap().to_vec();
    bad[4] ^= 0x40;
    let responses = d.pair.send_raw(&bad);
    let (h, body) = Header::split(&responses[0]).unwrap();
    let response = frame::encode_raw(&h, body, &mut buf).unwrap().to_vec();
    let o = &mut d.out;
    let _ = writeln!(
        o,
        "### A damaged frame\n\nThe DeviceInfo request with one bit flipped: answered with request id 0 and command 0.\n\n```text"
    );
    hex_block(o, "request frame", &bad);
    hex_block(o, "response frame", &response);
    let _ = writeln!(o, "```\n");

    // The error codes, from their encodings.
    let _ = writeln!(
        o,
        "### Error codes\n\nA failed command's body is `01` followed by one of these (the variant index is the first byte):\n"
    );
    let _ = writeln!(o, "| encoding | error |\n|---|---|");
    let errors: Vec<(DeviceError, &str)> = vec![
        (
            DeviceError::Frame(FrameError::TooLong),
            "the frame could not be read (here: too long; `00 00..03` = TooLong, BadCobs, TooShort, BadCrc)",
        ),
        (
            DeviceError::UnsupportedVersion { supported: PROTOCOL_VERSION },
            "wrong protocol version; carries the device's",
        ),
        (DeviceError::UnknownCommand, "no command has this code"),
        (
            DeviceError::Malformed(Error::NonCanonical),
            "the body is not the command's canonical encoding; carries why (tee-core `Error`)",
        ),
        (DeviceError::NoSuchSlot, "slot number out of range"),
        (DeviceError::SlotEmpty, "the slot has no key"),
        (
            DeviceError::Denied(PolicyViolation::KindNotAllowed),
            "the policy refuses; carries the rule (`PolicyViolation`)",
        ),
        (
            DeviceError::Replay { high_water: 7 },
            "sequence at or below the high-water mark (here 7)",
        ),
        (DeviceError::Unauthorized, "admin signature wrong for this device or command"),
        (DeviceError::AdminReplay { last: 7 }, "admin counter not above the last (here 7)"),
        (DeviceError::Unsupported, "the backend lacks this capability"),
        (DeviceError::Storage, "durable storage failed; nothing changed"),
        (DeviceError::Entropy, "the RNG failed"),
        (DeviceError::SigningFailed, "signing failed (no detail, by design)"),
        (DeviceError::Backend, "other backend failure"),
        (DeviceError::ResponseTooLarge, "the response does not fit the device's buffer"),
        (
            DeviceError::NotLastSigned,
            "`AttestAction`: not the slot's last signature (digest, sequence or key differ)",
        ),
        (
            DeviceError::SlotOccupied,
            "`GenerateKey`, `DeriveKey`: the slot holds another key and `replace` is not set",
        ),
        (
            DeviceError::OverBound(tee_core::action::OverBound {
                field: tee_core::action::BoundField::Uri,
                len: 300,
                max: 256,
            }),
            "`Sign`: a field over the device's bound; carries the field (`BoundField` index), its length and the bound (here `uri`, 300 > 256)",
        ),
        (
            DeviceError::DeniedAt {
                violation: PolicyViolation::DeadlineTooFar,
                device_time: 1_700_000_000,
            },
            "`Sign`: a rule that reads the time refused; carries the rule and the device's time (unix seconds, varint)",
        ),
        (
            DeviceError::OtherKey,
            "`ImportMark`: the statement's key is not the slot's (or the slot is empty)",
        ),
        (
            DeviceError::OverCap(CapRefusal::new(300, 3_600)),
            "`Sign`: the value would pass the policy's `spend_cap`; carries what the window has left (wei, u128 big-endian, 16 bytes) and the seconds until it ends by the device's clock (varint)",
        ),
        (
            DeviceError::ApprovalRequired(ApprovalNeed {
                have: 1,
                need: 2,
                expires_by_be: 1_767_228_600u64.to_be_bytes(),
            }),
            "`Sign`, `SignApproved`: the action waits for approvals; carries how many verified, how many must, and the latest `expires` the device takes now (unix seconds, u64 big-endian, 8 bytes)",
        ),
    ];
    for (e, what) in errors {
        let hex: Vec<String> = encoded(&e).iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(o, "| `{}` | {what} |", hex.join(" "));
    }
    let mut listed = Vec::new();
    for (i, v) in PolicyViolation::ALL.iter().copied().enumerate() {
        assert_eq!(encoded(&v), [i as u8], "the listed index of {v:?}");
        listed.push(format!("{i} {v:?}"));
    }
    let _ = writeln!(o, "\n`PolicyViolation` indices: {}.", listed.join(", "));
    d.out
}

#[test]
fn wire_format_doc_matches_the_bytes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/wire-format.md");
    let doc = std::fs::read_to_string(&path).expect("docs/wire-format.md exists");
    let (head, rest) = doc.split_once(BEGIN).expect("the document has the BEGIN marker");
    let (_, tail) = rest.split_once(END).expect("the document has the END marker");
    use tee_core::action::ActionBounds;
    use tee_core::limits::MCU_REQUEST_FRAME;
    let (mcu, host) = (ActionBounds::MCU, ActionBounds::HOST);
    for quoted in [
        format!("`MAX_REQUEST_FRAME` = {MAX_REQUEST_FRAME}"),
        format!("`MCU_REQUEST_FRAME` = {MCU_REQUEST_FRAME}"),
        format!("| `uri` | {} | {} |", mcu.uri, host.uri),
        format!("| `tag` | {} | {} |", mcu.tag, host.tag),
        format!("| `metadata_key` | {} | {} |", mcu.metadata_key, host.metadata_key),
        format!("| `metadata_value` | {} | {} |", mcu.metadata_value, host.metadata_value),
        format!("| `metadata_entries` | {} | {} |", mcu.metadata_entries, host.metadata_entries),
        format!("| `wallet_signature` | {} | {} |", mcu.wallet_signature, host.wallet_signature),
        format!("| `calldata` | {} | {} |", mcu.calldata, host.calldata),
        format!("| `message` | {} | {} |", mcu.message, host.message),
        format!("| `action` | {} | {} |", mcu.action, host.action),
        format!("`MAX_RESPONSE_FRAME` = {MAX_RESPONSE_FRAME}"),
        format!("(now **{PROTOCOL_VERSION}**)"),
    ] {
        assert!(doc.contains(&quoted), "docs/wire-format.md should say {quoted}");
    }
    let want = generated();
    let fresh = format!("{head}{BEGIN}\n\n{want}{END}{tail}");
    if std::env::var_os("UPDATE_WIRE_DOC").is_some() {
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    assert!(
        doc == fresh,
        "docs/wire-format.md differs from the bytes; rerun with UPDATE_WIRE_DOC=1 and review the diff"
    );
}
