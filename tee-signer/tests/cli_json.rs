//! Actions as users write them, through `tee-signer sign --json`: an
//! `eth_signTransaction` request signs ready to broadcast, personal_sign
//! and eth_signTypedData_v4 likewise; wrong requests refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::process::Command;

use common::*;

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
    let Paths { state, socket, conn } = paths(dir.path());
    let key_file = &admin_key_file(dir.path());
    let _server = serve(&state, &socket, Some(ADMIN));
    let address = derive_key(&conn, key_file, "erc8004/agent");
    let kinds = ["setAgentURI", "personal_sign", "AgentWalletSet"];
    set_policy(&conn, key_file, &policy_file(dir.path(), "policy.toml", &kinds));

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
    let typed = tee_client::actions::to_json(&tee_core::Action::AgentWalletSet(
        tee_core::action::AgentWalletSet {
            chain_id: 8453,
            identity_registry: tee_core::sample::IDENTITY_REGISTRY,
            agent_id: tee_core::U256::from_u64(42),
            new_wallet: address.parse().unwrap(),
            owner: tee_core::sample::OWNER,
            deadline,
        },
    ))
    .unwrap();
    let envelope =
        serde_json::json!({"method": "eth_signTypedData_v4", "params": [address, typed]});
    std::fs::write(&file, envelope.to_string()).unwrap();
    let out = ok(&["sign", "-c", &conn, "--json", file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["kind"], "AgentWalletSet", "{out}");
    let td: alloy_dyn_abi::TypedData = serde_json::from_value(typed.clone()).unwrap();
    let hash = td.eip712_signing_hash().unwrap();
    assert_eq!(json["digest"].as_str().unwrap(), hash.to_string());
    let sig: alloy_primitives::Signature = json["signature"].as_str().unwrap().parse().unwrap();
    assert_eq!(sig.recover_address_from_prehash(&hash).unwrap().to_string(), address);
    // A deadline further ahead than the policy's 300 s: the refusal names
    // the deadline, how far ahead of the device's time it is, that time
    // (the device's, not this machine's) and the limit.
    let mut far = typed.clone();
    far["message"]["deadline"] = (deadline + 100_000).into();
    let envelope = serde_json::json!({"method": "eth_signTypedData_v4", "params": [address, far]});
    std::fs::write(&file, envelope.to_string()).unwrap();
    let e = fails(&["sign", "-c", &conn, "--json", file.to_str().unwrap()]);
    let named = format!(
        "DeadlineTooFar): the action was read as AgentWalletSet; deadline {}",
        deadline + 100_000
    );
    assert!(e.contains(&named) && e.contains("max_deadline_ahead_secs (300 s)"), "{e}");
    let device_time: u64 = e
        .split("after the device's time ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no device time in {e}"));
    assert!((deadline - 120..=deadline + 5).contains(&device_time), "{e}");

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
