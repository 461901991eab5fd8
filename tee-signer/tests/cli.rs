//! The `tee-signer` binary as an operator uses it: `serve --simulated` on a
//! state directory, the admin deriving a key and setting a policy from a
//! file, the agent signing with an attestation, a validator verifying the
//! JSON it printed, and the mistakes an operator makes refused with reasons.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tee-signer");
const ADMIN_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ADMIN: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const COLLATERAL: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/dcap-qvl/tdx_quote_collateral.json");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(state: &Path, socket: &Path, admin: Option<&str>) -> Server {
    serve_with(state, socket, admin, &[])
}

fn serve_with(state: &Path, socket: &Path, admin: Option<&str>, extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--simulated", "--state", state.to_str().unwrap()];
    args.extend(extra);
    let listen = format!("unix:{}", socket.display());
    args.extend(["--listen", &listen]);
    if let Some(a) = admin {
        args.extend(["--admin", a]);
    }
    let mut child =
        Command::new(BIN).args(&args).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Ready when it logs "signer running" (after binding every endpoint);
    // its stderr ending first means it exited, and says why. The rest of
    // its log is drained so it never blocks on a full pipe.
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut log, &mut line).unwrap();
        assert!(n > 0, "the signer exited before it was running:\n{seen}");
        seen.push_str(&line);
        if line.contains("signer running") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    assert!(socket.exists());
    Server(child)
}

/// The state directory holds keys and marks: the signer makes it private,
/// and refuses one that others can read or write.
#[test]
fn state_directory_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("signer.sock");
    let server = serve(&state, &socket, Some(ADMIN));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&socket), 0o600);
    drop(server);
    let _ = std::fs::remove_file(&socket);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let listen = format!("unix:{}", socket.display());
    let e =
        fails(&["serve", "--simulated", "--state", state.to_str().unwrap(), "--listen", &listen]);
    assert!(e.contains("open to others"), "{e}");
    let e = fails(&[
        "serve",
        "--no-tee",
        "--state",
        "/tmp/x",
        "--listen",
        &listen,
        "--socket-mode",
        "666",
    ]);
    assert!(e.contains("600 or 660"), "{e}");
}

#[test]
fn operator_admin_agent_and_validator_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("signer.sock");
    let conn = format!("unix:{}", socket.display());
    let key_file = dir.path().join("admin.key");
    std::fs::write(&key_file, format!("0x{ADMIN_KEY}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();

    // A new state directory needs its admin.
    let e = fails(&["serve", "--simulated", "--state", state.to_str().unwrap(), "--listen", &conn]);
    assert!(e.contains("give the admin address"), "{e}");
    let server = serve(&state, &socket, Some(ADMIN));
    let info = ok(&["info", "-c", &conn]);
    assert!(info.contains("Simulated") && info.contains(ADMIN), "{info}");

    let derived =
        ok(&["derive-key", "-c", &conn, "--admin-key-file", key_file, "--path", "erc8004/agent"]);
    let address = derived.split_whitespace().nth(2).unwrap().to_owned();
    assert!(address.starts_with("0x") && address.len() == 42, "{derived}");

    // Deny-all until the policy is set.
    let e = fails(&["sign", "-c", &conn, "--sample", "setAgentURI"]);
    assert!(e.contains("KindNotAllowed"), "{e}");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
kinds = ["AgentWalletSet", "setAgentURI"]
chains = [8453]
contracts = ["0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"]
agents = [42]
max_value_wei = "0"
max_gas_limit = 500000
max_fee_per_gas_wei = "100000000000"
max_deadline_ahead_secs = 300
"#,
    )
    .unwrap();
    ok(&[
        "set-policy",
        "-c",
        &conn,
        "--admin-key-file",
        key_file,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    // A policy file with a typo is refused before anything is sent.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&policy).unwrap().replace("setAgentURI", "setAgentUrl"),
    )
    .unwrap();
    let e = fails(&[
        "set-policy",
        "-c",
        &conn,
        "--admin-key-file",
        key_file,
        "--policy",
        bad.to_str().unwrap(),
    ]);
    assert!(e.contains("unknown action kind \"setAgentUrl\""), "{e}");
    // A wrong admin key is refused by the signer.
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, "11".repeat(32)).unwrap();
    let e = fails(&[
        "generate-key",
        "-c",
        &conn,
        "--admin-key-file",
        wrong.to_str().unwrap(),
        "--slot",
        "1",
    ]);
    assert!(e.contains("Unauthorized"), "{e}");

    // The agent signs; the JSON verifies but for DCAP (simulated).
    let signed = ok(&["sign", "-c", &conn, "--sample", "setAgentURI"]);
    let json: serde_json::Value = serde_json::from_str(&signed).unwrap();
    assert_eq!(json["provider"], "phala-dstack");
    assert_eq!(json["sequence"], 1);
    let sig_file = dir.path().join("sig.json");
    std::fs::write(&sig_file, &signed).unwrap();
    // No verdict without a policy that pins who the signer must be.
    let e = fails(&["verify", sig_file.to_str().unwrap(), "--collateral", COLLATERAL]);
    assert!(e.contains("no verifier policy") && e.contains("compose_hash"), "{e}");
    // The validator pins one to the deployment: an attestation, the
    // app-compose file it reviewed, the KMS root.
    let challenge = format!("0x{}", "ab".repeat(32));
    let att = ok(&["attest", "-c", &conn, "--challenge", &challenge]);
    let att_file = dir.path().join("att.json");
    std::fs::write(&att_file, att).unwrap();
    let compose = dir.path().join("app-compose.json");
    std::fs::write(&compose, tee_sim::deployment::APP_COMPOSE).unwrap();
    let kms_root =
        tee_core::SigningKey::from_bytes(&tee_sim::deployment::KMS_ROOT).unwrap().address();
    let kms_root = kms_root.to_string();
    let policy = dir.path().join("validator.toml");
    let pin = |compose: &Path| {
        run(&[
            "policy",
            "--attestation",
            att_file.to_str().unwrap(),
            "--app-compose",
            compose.to_str().unwrap(),
            "--kms-root",
            &kms_root,
            "--out",
            policy.to_str().unwrap(),
        ])
    };
    let other = dir.path().join("other-compose.json");
    std::fs::write(&other, "{}").unwrap();
    let o = pin(&other);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("hashes to"), "{o:?}");
    assert!(pin(&compose).status.success());
    let pinned = std::fs::read_to_string(&policy).unwrap();
    assert!(pinned.contains("compose_hash") && pinned.contains("mrtd"), "{pinned}");
    let p = policy.to_str().unwrap();
    let args = [
        "verify",
        sig_file.to_str().unwrap(),
        "--policy",
        p,
        "--collateral",
        COLLATERAL,
        "--now",
        "1750809600",
    ];
    let o = run(&args);
    let report = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "not verified: {report}");
    for line in [
        "pass  pinned",
        "pass  JSON fields",
        "pass  binding",
        "pass  event log",
        "pass  signature",
        "pass  collateral",
        "FAIL  DCAP",
        "NOT VERIFIED",
    ] {
        assert!(report.contains(line), "{line}: {report}");
    }
    // A validator that chooses to trust the simulator's DCAP root (and
    // whose collateral the verifier makes for now) sees every check pass,
    // and a verdict that says no hardware was involved.
    let o = run(&["verify", sig_file.to_str().unwrap(), "--policy", p, "--trust-simulator-root"]);
    let report = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(report.contains("VERIFIED (simulated root)"), "{report}");
    assert!(report.contains("pass  DCAP") && report.contains("SIMULATOR's root"), "{report}");
    // The policy bites: a kind it does not list.
    let e = fails(&["sign", "-c", &conn, "--sample", "giveFeedback"]);
    assert!(e.contains("KindNotAllowed"), "{e}");

    // The attestation for the validator's challenge, checked against it.
    let att = att_file.to_str().unwrap();
    let report =
        String::from_utf8(run(&["verify", att, "--policy", p, "--challenge", &challenge]).stdout)
            .unwrap();
    assert!(report.contains("pass  binding") && report.contains("pass  app id"), "{report}");
    let other = format!("0x{}", "cd".repeat(32));
    let report =
        String::from_utf8(run(&["verify", att, "--policy", p, "--challenge", &other]).stdout)
            .unwrap();
    assert!(report.contains("FAIL  binding"), "{report}");
    let e = fails(&["verify", att, "--policy", p]);
    assert!(e.contains("--challenge"), "{e}");
    // Without a policy only on request, and the verdict says so.
    let report = String::from_utf8(
        run(&["verify", att, "--insecure-any-td", "--challenge", &challenge]).stdout,
    )
    .unwrap();
    assert!(report.contains("NOT PINNED"), "{report}");

    // The admin checks the signer's identity key the same way (attested at
    // slot 255, purpose "device") and pins it: each admin command is then
    // confirmed by that key's signed statement, and a policy read is
    // checked against it.
    let id = ok(&["attest", "-c", &conn, "--slot", "255", "--challenge", &challenge]);
    let id_json: serde_json::Value = serde_json::from_str(&id).unwrap();
    assert_eq!(id_json["bound"]["purpose"], "device");
    let id_file = dir.path().join("identity.json");
    std::fs::write(&id_file, &id).unwrap();
    let id_file = id_file.to_str().unwrap();
    let report = String::from_utf8(
        run(&["verify", id_file, "--policy", p, "--challenge", &challenge]).stdout,
    )
    .unwrap();
    assert!(report.contains("pass  binding") && report.contains("pass  app id"), "{report}");
    let identity = id_json["address"].as_str().unwrap().to_owned();
    let policy_file = dir.path().join("policy.toml");
    let set = |identity: &str| {
        run(&[
            "set-policy",
            "-c",
            &conn,
            "--admin-key-file",
            key_file,
            "--policy",
            policy_file.to_str().unwrap(),
            "--identity",
            identity,
        ])
    };
    let o = set("0x0000000000000000000000000000000000000001");
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("not the device's identity"), "{e}");
    let o = set(&identity);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("policy 0x"));
    let read = ok(&["get-policy", "-c", &conn, "--verify", "--identity", &identity]);
    assert!(read.contains("verified: policy 0x"), "{read}");

    // One signer per state directory; a restart keeps the key and the mark.
    let e = fails(&[
        "serve",
        "--simulated",
        "--state",
        state.to_str().unwrap(),
        "--listen",
        &format!("unix:{}", dir.path().join("second.sock").display()),
    ]);
    assert!(e.contains("in use by another signer"), "{e}");
    drop(server);
    let _ = std::fs::remove_file(&socket);
    let e = fails(&[
        "serve",
        "--simulated",
        "--state",
        state.to_str().unwrap(),
        "--listen",
        &conn,
        "--admin",
        "0x0000000000000000000000000000000000000001",
    ]);
    assert!(e.contains("the admin is fixed at provisioning"), "{e}");
    let _server = serve(&state, &socket, None);
    let pk = ok(&["pubkey", "-c", &conn]);
    assert!(pk.contains(&address) && pk.contains("Some(1)"), "{pk}");
    let audit = ok(&["audit", "-c", &conn]);
    assert!(audit.starts_with("next index"), "{audit}");
    let e = fails(&["info", "-c", "unix:/nonexistent/signer.sock"]);
    assert!(e.contains("/nonexistent/signer.sock"), "{e}");
    let e = fails(&["info", "-c", "http://x"]);
    assert!(e.contains("expected unix:PATH"), "{e}");
}

/// A transaction as a user writes it (an `eth_signTransaction` request to
/// the identity registry on Base), signed through `sign --json`: the printed
/// raw transaction decodes (alloy) to the request and recovers to the
/// slot's address; a personal_sign message likewise; a request from another
/// address, an unknown field or a legacy transaction is refused by name.
#[test]
fn a_user_written_transaction_signs_ready_to_broadcast() {
    use alloy_consensus::Transaction as _;
    use alloy_consensus::transaction::SignerRecoverable;
    use alloy_eips::eip2718::Decodable2718;
    use alloy_sol_types::{SolCall, sol};
    sol! {
        function setAgentURI(uint256 agentId, string newURI) external;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("signer.sock");
    let conn = format!("unix:{}", socket.display());
    let key_file = dir.path().join("admin.key");
    std::fs::write(&key_file, format!("0x{ADMIN_KEY}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();
    let _server = serve(&state, &socket, Some(ADMIN));
    let derived =
        ok(&["derive-key", "-c", &conn, "--admin-key-file", key_file, "--path", "erc8004/agent"]);
    let address = derived.split_whitespace().nth(2).unwrap().to_owned();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
kinds = ["setAgentURI", "personal_sign", "AgentWalletSet"]
chains = [8453]
contracts = ["0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"]
agents = [42]
max_value_wei = "0"
max_gas_limit = 500000
max_fee_per_gas_wei = "100000000000"
max_deadline_ahead_secs = 300
"#,
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    ok(&["set-policy", "-c", &conn, "--admin-key-file", key_file, "--policy", policy]);

    let data = setAgentURICall {
        agentId: alloy_primitives::U256::from(42),
        newURI: "https://agent.example/.well-known/agent.json".into(),
    }
    .abi_encode();
    let request = serde_json::json!({
        "from": address,
        "to": "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432",
        "data": format!("0x{}", hex::encode(&data)),
        "value": "0x0",
        "nonce": "0x7",
        "gas": "0x30d40",
        "chainId": "0x2105",
        "maxFeePerGas": "30000000000",
        "maxPriorityFeePerGas": 1000000000u64,
        "type": "0x2",
    });
    let file = dir.path().join("tx.json");
    std::fs::write(&file, request.to_string()).unwrap();
    let out = ok(&["sign", "-c", &conn, "--json", file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["kind"], "setAgentURI", "decoded as the registry call: {out}");
    assert!(json["action"].as_str().unwrap().contains("setAgentURI"), "{out}");
    // The action as decoded, in the request's own form.
    assert_eq!(json["request"]["data"], request["data"]);
    assert_eq!(json["request"]["nonce"], "0x7");
    let raw =
        hex::decode(json["rawTransaction"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let env = alloy_consensus::TxEnvelope::decode_2718(&mut &raw[..]).unwrap();
    assert_eq!(env.recover_signer().unwrap().to_string(), address);
    assert_eq!(env.to().unwrap().to_string(), "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432");
    assert_eq!(env.input().as_ref(), &data[..]);
    assert_eq!((env.nonce(), env.gas_limit(), env.chain_id()), (7, 200_000, Some(8453)));
    assert_eq!(env.max_fee_per_gas(), 30_000_000_000);
    assert_eq!(env.max_priority_fee_per_gas(), Some(1_000_000_000));
    assert_eq!(json["transactionHash"].as_str().unwrap(), env.tx_hash().to_string());

    // From stdin, at a chosen sequence: personal_sign.
    let mut child = Command::new(BIN)
        .args(["sign", "-c", &conn, "--json", "-", "--sequence", "5"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let msg = serde_json::json!({"method": "personal_sign", "params": ["hello, agent", address]});
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), msg.to_string().as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["sequence"], 5);
    assert_eq!(json["kind"], "personal_sign");
    let digest = alloy_primitives::eip191_hash_message(b"hello, agent");
    assert_eq!(json["digest"].as_str().unwrap(), digest.to_string());
    assert!(json.get("rawTransaction").is_none());

    // Typed data as eth_signTypedData_v4 sends it: the registry's
    // AgentWalletSet, the key proving it controls the new wallet.
    let deadline =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 120;
    let typed = serde_json::json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "AgentWalletSet": [
                {"name": "agentId", "type": "uint256"}, {"name": "newWallet", "type": "address"},
                {"name": "owner", "type": "address"}, {"name": "deadline", "type": "uint256"}
            ]
        },
        "primaryType": "AgentWalletSet",
        "domain": {"name": "ERC8004IdentityRegistry", "version": "1", "chainId": 8453,
                   "verifyingContract": "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"},
        "message": {"agentId": 42, "newWallet": address,
                    "owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "deadline": deadline}
    });
    let envelope =
        serde_json::json!({"method": "eth_signTypedData_v4", "params": [address, typed]});
    std::fs::write(&file, envelope.to_string()).unwrap();
    let out = ok(&["sign", "-c", &conn, "--json", file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["kind"], "AgentWalletSet", "{out}");
    let td: alloy_dyn_abi::TypedData = serde_json::from_value(typed).unwrap();
    let hash = td.eip712_signing_hash().unwrap();
    assert_eq!(json["digest"].as_str().unwrap(), hash.to_string());
    let sig: alloy_primitives::Signature = json["signature"].as_str().unwrap().parse().unwrap();
    assert_eq!(sig.recover_address_from_prehash(&hash).unwrap().to_string(), address);

    // Refusals name what is wrong.
    let mut other = request.clone();
    other["from"] = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into();
    std::fs::write(&file, other.to_string()).unwrap();
    let e = fails(&["sign", "-c", &conn, "--json", file.to_str().unwrap()]);
    assert!(e.contains("the request is from"), "{e}");
    let mut typo = request.clone();
    typo["maxFeePerGass"] = "1".into();
    std::fs::write(&file, typo.to_string()).unwrap();
    let e = fails(&["sign", "-c", &conn, "--json", file.to_str().unwrap()]);
    assert!(e.contains("unknown field \"maxFeePerGass\""), "{e}");
    let mut both = request.clone();
    both["gasPrice"] = "0x1".into();
    std::fs::write(&file, both.to_string()).unwrap();
    let e = fails(&["sign", "-c", &conn, "--json", file.to_str().unwrap()]);
    assert!(e.contains("field \"gasPrice\""), "{e}");

    // The same call as a legacy (type 0, EIP-155) transaction, as the agent
    // SDKs that set gasPrice build it: alloy reads it back, chain id and all.
    let mut legacy = request.clone();
    let o = legacy.as_object_mut().unwrap();
    o.remove("maxFeePerGas");
    o.remove("maxPriorityFeePerGas");
    o.insert("type".into(), "0x0".into());
    o.insert("gasPrice".into(), "0x2540be400".into());
    o.insert("nonce".into(), "0x8".into());
    std::fs::write(&file, legacy.to_string()).unwrap();
    let out = ok(&["sign", "-c", &conn, "--json", file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["kind"], "setAgentURI", "{out}");
    assert!(json["action"].as_str().unwrap().starts_with("legacy tx"), "{out}");
    assert_eq!(json["request"]["gasPrice"], "0x2540be400");
    let raw =
        hex::decode(json["rawTransaction"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let env = alloy_consensus::TxEnvelope::decode_2718(&mut &raw[..]).unwrap();
    assert!(env.is_legacy());
    assert_eq!(env.recover_signer().unwrap().to_string(), address);
    assert_eq!(env.input().as_ref(), &data[..]);
    assert_eq!(
        (env.nonce(), env.chain_id(), env.gas_price()),
        (8, Some(8453), Some(10_000_000_000))
    );
    assert_eq!(json["transactionHash"].as_str().unwrap(), env.tx_hash().to_string());
}

/// Two `serve --simulated --marks` processes are replicas of one app (the
/// built-in simulator is one app: the same derived keys), sharing their
/// marks in PostgreSQL (TEE_SIGNER_TEST_PG; `.ci/run` starts one). What one
/// signs at a sequence the other refuses, but for the exact same request;
/// killed with SIGKILL and started again, a replica still refuses it, also
/// when it was killed in the middle of many clients' requests.
#[test]
fn replicas_share_their_marks_across_processes_and_a_kill() {
    let pg = std::env::var("TEE_SIGNER_TEST_PG")
        .expect("TEE_SIGNER_TEST_PG is not set (bash .ci/run starts PostgreSQL; by hand: source .ci/postgres)");
    let mut db = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    db.batch_execute("DROP SCHEMA IF EXISTS cli_replicas CASCADE; CREATE SCHEMA cli_replicas")
        .unwrap();
    let marks = format!("{pg} options='-c search_path=cli_replicas'");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("admin.key");
    std::fs::write(&key_file, format!("0x{ADMIN_KEY}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "kinds = [\"personal_sign\"]\nchains = \"any\"\ncontracts = \"any\"\nagents = \"any\"\n\
         max_value_wei = \"0\"\nmax_gas_limit = 0\nmax_fee_per_gas_wei = \"0\"\nmax_deadline_ahead_secs = 300\n",
    )
    .unwrap();
    let message = |text: &str| {
        let file = dir.path().join(format!("{text}.json"));
        let request = serde_json::json!({ "method": "personal_sign", "params": [text] });
        std::fs::write(&file, request.to_string()).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let (hello, other) = (message("hello"), message("other"));
    let replica = |name: &str| {
        let state = dir.path().join(name);
        let socket = dir.path().join(format!("{name}.sock"));
        let server = serve_with(&state, &socket, Some(ADMIN), &["--marks", &marks]);
        (
            server,
            state,
            socket,
            format!("unix:{}", dir.path().join(format!("{name}.sock")).display()),
        )
    };
    let (a, state_a, socket_a, conn_a) = replica("a");
    let (_b, _, _, conn_b) = replica("b");
    let mut key = String::new();
    for conn in [&conn_a, &conn_b] {
        let derived =
            ok(&["derive-key", "-c", conn, "--admin-key-file", key_file, "--path", "agent/1"]);
        let address = derived.split_whitespace().nth(2).unwrap().to_owned();
        assert!(key.is_empty() || key == address, "one app, one key: {key} {address}");
        key = address;
        ok(&[
            "set-policy",
            "-c",
            conn,
            "--admin-key-file",
            key_file,
            "--policy",
            policy.to_str().unwrap(),
        ]);
    }
    let sign = |conn: &str, file: &str, seq: &str| {
        run(&["sign", "-c", conn, "--json", file, "--sequence", seq])
    };
    let first = sign(&conn_a, &hello, "3");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let signature = |o: &Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["signature"].as_str().unwrap().to_owned()
    };
    // Another message at 3 on b: refused, naming the shared mark.
    let refused = sign(&conn_b, &other, "3");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Replay"), "{refused:?}");
    // The same request on b (a client retrying elsewhere): the same signature.
    let again = sign(&conn_b, &hello, "3");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(signature(&again), signature(&first));
    // a is killed (SIGKILL) and started again on its state and the marks.
    drop(a);
    let _a = serve_with(&state_a, &socket_a, None, &["--marks", &marks]);
    let refused = sign(&conn_a, &other, "3");
    assert!(!refused.status.success(), "a restarted replica must not sign at a used sequence");
    assert!(sign(&conn_a, &other, "4").status.success());
    assert!(!sign(&conn_b, &hello, "4").status.success());
    // The database ends every signer session (a restart or failover): the
    // next request on a replica is refused, never signed on local marks
    // alone, and the one after it signs again.
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tee-signer'",
        &[],
    )
    .unwrap();
    assert!(!sign(&conn_b, &other, "5").status.success(), "refused while the session is gone");
    let resumed = sign(&conn_b, &other, "6");
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));

    // Mid-run: eight clients on each replica sign colliding sequences
    // (a's own messages on a, b's on b, all at once), and a is killed with
    // SIGKILL as soon as one of them has its answer, with the others'
    // marks possibly raised in the database but not yet on a's disk, or on
    // its disk and not yet sent. Whatever left either replica: one
    // signature per sequence; after a's restart, the other message at its
    // sequence is refused on both replicas, and the exact request gets the
    // same signature (at the mark) or a replay (below it).
    let sequences: Vec<String> = (20..28).map(|s| s.to_string()).collect();
    let mut clients = Vec::new();
    for seq in &sequences {
        for (who, conn) in [("a", &conn_a), ("b", &conn_b)] {
            let file = message(&format!("{who}{seq}"));
            let child = Command::new(BIN)
                .args(["sign", "-c", conn, "--json", &file, "--sequence", seq])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            clients.push((who, seq.clone(), file, child));
        }
    }
    let mut answers = Vec::new();
    let (who, seq, file, first) = clients.remove(0);
    answers.push((who, seq, file, first.wait_with_output().unwrap()));
    drop(_a);
    for (who, seq, file, child) in clients {
        answers.push((who, seq, file, child.wait_with_output().unwrap()));
    }
    let _a = serve_with(&state_a, &socket_a, None, &["--marks", &marks]);
    let mut released: std::collections::BTreeMap<String, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for (_, seq, file, out) in &answers {
        if out.status.success() {
            released.entry(seq.clone()).or_default().push((file.clone(), signature(out)));
        }
    }
    assert!(
        released.values().all(|r| r.len() == 1),
        "two signatures at one sequence: {released:?}"
    );
    assert!(!released.is_empty(), "some client was answered before the kill");
    for (seq, r) in &released {
        let (file, sig) = &r[0];
        // The exact request again: the same signature, or (a mark above it
        // now) refused; never anything else.
        let again = sign(&conn_a, file, seq);
        if again.status.success() {
            assert_eq!(&signature(&again), sig, "the exact retry at {seq} after the kill");
        } else {
            assert!(String::from_utf8_lossy(&again.stderr).contains("Replay"), "{again:?}");
        }
        let other_file = answers
            .iter()
            .find(|(_, s, f, _)| s == seq && f != file)
            .map(|(_, _, f, _)| f.clone())
            .unwrap();
        assert!(!sign(&conn_a, &other_file, seq).status.success(), "another message at {seq}");
        assert!(!sign(&conn_b, &other_file, seq).status.success(), "another message at {seq}");
    }
    assert!(sign(&conn_a, &hello, "100").status.success(), "a signs again after its restart");
}
