//! The JSON-RPC endpoint (`tee-rpc`) as a hostile caller meets it: in front
//! of a signer on a simulated dstack and an upstream node that records every
//! request it receives, so "never forwarded" is checked, not assumed. The
//! real chain (eth-tester behind HTTP, the ERC-8004 contracts) is the
//! Python and TypeScript tests' (python/tests/test_rpc_endpoint.py, js/).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tee_client::provider::PhalaDstackProvider;
use tee_core::{ActionKind, SigningKey};
use tee_rpc::http::{Options, RpcServer, StartError};
use tee_rpc::{Config, Gateway};
use tee_testkit::{ADMIN_SECRET, sample};
use tee_tests::signer::{Setup, setup, verifier};
use tee_transport::Endpoint;

/// A node that answers `eth_chainId` with the samples' chain, any other
/// method with `0x1`, and records each request it receives.
struct Recorder {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let request: Value = serde_json::from_slice(&body).unwrap();
                let result = match request["method"].as_str() {
                    Some("eth_chainId") => json!(format!("0x{:x}", sample::CHAIN_ID)),
                    Some("eth_getBlockByNumber") => json!({ "baseFeePerGas": "0x7" }),
                    _ => json!("0x1"),
                };
                log.lock().unwrap().push(request.clone());
                let answer = json!({ "jsonrpc": "2.0", "id": request["id"], "result": result });
                let out = answer.to_string();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
            }
        });
        Recorder { url, seen }
    }

    fn methods(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|r| r["method"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

/// A signer with dstack's key for `agent/rpc` in slot 0 under the typed
/// policy (registry calls and `AgentWalletSet`; no `personal_sign`, no
/// generic transaction), the recorder, and the endpoint in front of both.
struct Rig {
    _signer: Setup,
    node: Recorder,
    server: RpcServer,
    address: String,
}

fn rig_with(options: impl FnOnce(&mut Options)) -> Rig {
    rig_under(&tee_testkit::typed_policy(), options)
}

/// [`rig_with`], slot 0 under `policy`.
fn rig_under(policy: &tee_core::protocol::Policy, options: impl FnOnce(&mut Options)) -> Rig {
    let signer = setup();
    let endpoint = signer.server.endpoints()[0].clone();
    let admin = PhalaDstackProvider::new(endpoint.clone(), verifier(signer.kms_root))
        .with_admin(SigningKey::from_bytes(&ADMIN_SECRET).unwrap());
    let key = admin.generate_key(0, "agent/rpc", policy).unwrap();
    let node = Recorder::start();
    let config =
        Config { signer: endpoint, slots: vec![0], upstream: Some(node.url.clone()), keep: 8 };
    let gateway = Gateway::open(&config).unwrap();
    let mut o = Options::new(Endpoint::Tcp("127.0.0.1:0".into()));
    options(&mut o);
    let server = RpcServer::start(Arc::new(gateway), o).unwrap();
    Rig { _signer: signer, node, server, address: key.address.to_string() }
}

fn rig() -> Rig {
    rig_with(|_| {})
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
}

/// POSTs `body` with `headers` (content type JSON unless one is given):
/// the status and the JSON answer (`null` for none).
fn post_with(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut req = agent().post(url);
    if !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case("content-type")) {
        req = req.header("content-type", "application/json");
    }
    for (h, v) in headers {
        req = req.header(*h, *v);
    }
    let mut resp = req.send(body.to_owned()).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn call(url: &str, method: &str, params: Value) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": method, "params": params });
    let (status, answer) = post_with(url, &[], &body.to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], 7, "{answer}");
    answer
}

/// `AgentWalletSet` typed data (the sample's) making `wallet` (the
/// signer's own address, as the policy requires) the agent's wallet, its
/// deadline a minute ahead.
fn wallet_set(wallet: &str) -> Value {
    let mut data =
        tee_client::actions::to_json(&sample::action(ActionKind::AgentWalletSet)).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    data["message"]["deadline"] = json!(now.as_secs() + 60);
    data["message"]["newWallet"] = json!(wallet);
    data
}

fn recover(signature: &Value, digest: &Value) -> String {
    let sig: [u8; 65] = hex::decode(&signature.as_str().unwrap()[2..]).unwrap().try_into().unwrap();
    let digest: alloy_primitives::B256 = serde_json::from_value(digest.clone()).unwrap();
    let sig = alloy_primitives::Signature::from_raw_array(&sig).unwrap();
    sig.recover_address_from_prehash(&digest).unwrap().to_checksum(None)
}

#[test]
fn a_tool_signs_typed_data_and_reads_the_attestation_back() {
    let r = rig();
    let url = r.server.url();
    assert_eq!(call(url, "eth_accounts", json!([]))["result"], json!([r.address]));
    assert_eq!(call(url, "eth_requestAccounts", json!([]))["result"], json!([r.address]));

    let signed = call(url, "eth_signTypedData_v4", json!([r.address, wallet_set(&r.address)]));
    let signature = &signed["result"];
    // The attestation, by the signature: bound to the digest the key signed.
    let kept = call(url, "tee_getAttestation", json!([signature]))["result"].clone();
    assert_eq!(&kept["signature"], signature);
    assert_eq!(recover(signature, &kept["digest"]), r.address);
    assert_eq!(kept["attestation"]["bound"]["purpose"], "action_digest", "{kept:#}");
    assert_eq!(kept["attestation"]["bound"]["value"], kept["digest"], "{kept:#}");
    // Typed data given as a JSON string (as MetaMask-style callers send it),
    // the address in lowercase: the same action, a new sequence.
    let text = wallet_set(&r.address).to_string();
    let again = call(url, "eth_signTypedData_v4", json!([r.address.to_lowercase(), text]));
    assert!(again["result"].is_string(), "{again}");
    // An unknown signature: null, not an error.
    assert_eq!(
        call(url, "tee_getAttestation", json!([format!("0x{}", "00".repeat(65))]))["result"],
        Value::Null
    );
    assert!(r.node.methods().is_empty(), "nothing signed went upstream: {:?}", r.node.methods());
}

#[test]
fn the_policy_refuses_with_the_device_reason_and_nothing_is_forwarded() {
    let r = rig();
    let url = r.server.url();
    // personal_sign is not in the policy: 4001, the rule named.
    let refused = call(url, "personal_sign", json!(["0x68656c6c6f", r.address]));
    assert_eq!(refused["error"]["code"], 4001, "{refused}");
    assert_eq!(refused["error"]["data"]["reason"], "KindNotAllowed", "{refused}");
    let eth_sign = call(url, "eth_sign", json!([r.address, "0x68656c6c6f"]));
    assert_eq!(eth_sign["error"]["data"]["reason"], "KindNotAllowed", "{eth_sign}");
    // A generic (blind) transaction with value: refused before any send.
    let tx = json!({
        "from": r.address, "to": "0x000000000000000000000000000000000000dEaD", "value": "0x1",
        "gas": "0x5208", "nonce": "0x0", "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1",
    });
    let sent = call(url, "eth_sendTransaction", json!([tx]));
    assert_eq!(sent["error"]["code"], 4001, "{sent}");
    assert_eq!(sent["error"]["data"]["reason"], "KindNotAllowed", "{sent}");
    // An expired AgentWalletSet: the rule and the device's time.
    let mut old = wallet_set(&r.address);
    old["message"]["deadline"] = json!(1_000);
    let expired = call(url, "eth_signTypedData_v4", json!([r.address, old]));
    assert_eq!(expired["error"]["data"]["reason"], "DeadlineExpired", "{expired}");
    assert!(expired["error"]["data"]["deviceTime"].as_u64().unwrap() > 1_000, "{expired}");
    // The node was asked the chain (to fill the transaction), never to send.
    assert_eq!(r.node.methods(), ["eth_chainId"]);
}

#[test]
fn a_spend_cap_refusal_says_what_the_window_has_left_and_when_it_ends() {
    let mut policy = tee_testkit::typed_policy();
    policy.kinds = policy.kinds.with(ActionKind::GenericTx);
    policy.max_value = tee_core::U256::from_u64(u64::MAX);
    let max = tee_core::U256::from_u64(1_000);
    policy.spend_cap = Some(tee_core::protocol::SpendCap { max, window_secs: 3_600 });
    let r = rig_under(&policy, |_| {});
    let url = r.server.url();
    let pay = |nonce: u64| {
        json!([{
            "from": r.address, "to": "0x000000000000000000000000000000000000dEaD",
            "value": "0x258", "gas": "0x5208", "nonce": format!("0x{nonce:x}"),
            "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1",
            "chainId": format!("0x{:x}", sample::CHAIN_ID),
        }])
    };
    // 600 of 1,000 wei: signed. 600 more: refused, 400 left.
    let first = call(url, "eth_signTransaction", pay(0));
    assert!(first["result"].is_string(), "{first}");
    let second = call(url, "eth_signTransaction", pay(1));
    assert_eq!(second["error"]["code"], 4001, "{second}");
    let data = &second["error"]["data"];
    assert_eq!(data["reason"], "SpendCapExceeded", "{second}");
    assert_eq!(data["remaining"], "400", "{second}");
    let ends_in = data["endsIn"].as_u64().unwrap();
    assert!(ends_in > 3_500 && ends_in <= 3_600, "{second}");
    assert!(r.node.methods().iter().all(|m| m != "eth_sendRawTransaction"));
}

#[test]
fn a_registry_transaction_is_signed_then_sent_raw_and_its_hash_finds_the_attestation() {
    let r = rig();
    let url = r.server.url();
    let mut tx = tee_client::actions::to_json(&sample::action(ActionKind::SetAgentUri)).unwrap();
    tx["from"] = json!(r.address);
    let raw = call(url, "eth_signTransaction", json!([tx.clone()]))["result"].clone();
    let kept = call(url, "tee_getAttestation", json!([raw_hash(&raw)]))["result"].clone();
    assert_eq!(kept["rawTransaction"], raw, "the hash of the raw transaction finds it");

    // Without nonce, gas and fees: filled from the node, then sent raw.
    for k in ["nonce", "gas", "maxFeePerGas", "maxPriorityFeePerGas", "type", "chainId"] {
        tx.as_object_mut().unwrap().remove(k);
    }
    let sent = call(url, "eth_sendTransaction", json!([tx]));
    assert!(sent["result"].is_string(), "{sent}");
    let methods = r.node.methods();
    assert!(methods.contains(&"eth_getTransactionCount".to_owned()), "{methods:?}");
    assert!(methods.contains(&"eth_estimateGas".to_owned()), "{methods:?}");
    assert_eq!(methods.last().unwrap(), "eth_sendRawTransaction", "{methods:?}");
    // Another chain than the node's is refused before signing.
    let mut other = tee_client::actions::to_json(&sample::action(ActionKind::SetAgentUri)).unwrap();
    other["chainId"] = json!("0x1");
    let wrong = call(url, "eth_sendTransaction", json!([other]));
    assert_eq!(wrong["error"]["code"], -32602, "{wrong}");
}

fn raw_hash(raw: &Value) -> String {
    let bytes = hex::decode(&raw.as_str().unwrap()[2..]).unwrap();
    format!("{}", alloy_primitives::keccak256(bytes))
}

#[test]
fn signing_and_admin_methods_are_never_forwarded_and_the_rest_is() {
    let r = rig();
    let url = r.server.url();
    for m in [
        "eth_signTypedData",
        "eth_signTypedData_v3",
        "personal_unlockAccount",
        "personal_sendTransaction",
        "wallet_addEthereumChain",
        "admin_addPeer",
        "miner_start",
        "tee_anything",
    ] {
        let a = call(url, m, json!([]));
        assert_eq!(a["error"]["code"], 4200, "{m}: {a}");
    }
    // Another account than the served one.
    let stranger =
        call(url, "personal_sign", json!(["0x00", "0x000000000000000000000000000000000000dEaD"]));
    assert_eq!(stranger["error"]["code"], 4100, "{stranger}");
    assert!(r.node.methods().is_empty(), "{:?}", r.node.methods());
    // Anything else goes to the node unchanged, with the caller's id.
    let body = json!({ "jsonrpc": "2.0", "id": "abc", "method": "eth_blockNumber", "params": [] });
    let (_, a) = post_with(url, &[], &body.to_string());
    assert_eq!(a, json!({ "jsonrpc": "2.0", "id": "abc", "result": "0x1" }));
    assert_eq!(r.node.seen.lock().unwrap().last().unwrap()["method"], "eth_blockNumber");
}

#[test]
fn requests_that_are_not_json_rpc_get_typed_errors_and_the_server_keeps_serving() {
    let r = rig();
    let url = r.server.url();
    let code = |body: &str| post_with(url, &[], body).1["error"]["code"].clone();
    assert_eq!(code("{not json"), -32700);
    assert_eq!(code("[]"), -32600);
    assert_eq!(code("42"), -32600);
    assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), -32600);
    assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"eth_sign","params":{"a":1}}"#), -32602);
    // Two `to` keys: which one would be signed? Neither.
    let dup = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_signTransaction","params":[{{"from":"{}","to":"0x000000000000000000000000000000000000dEaD","to":"0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"}}]}}"#,
        r.address
    );
    assert_eq!(code(&dup), -32600);
    let batch: Vec<Value> = (0..=tee_rpc::MAX_BATCH)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_accounts"}))
        .collect();
    assert_eq!(code(&Value::Array(batch).to_string()), -32600);
    // A batch: answers in order, none for the notification.
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"eth_accounts"},
        {"jsonrpc":"2.0","method":"eth_accounts"},
        {"jsonrpc":"2.0","id":2,"method":"eth_signTypedData_v4","params":[r.address, {"types":{}}]},
    ]);
    let (status, answers) = post_with(url, &[], &batch.to_string());
    assert_eq!(status, 200);
    assert_eq!(answers.as_array().unwrap().len(), 2, "{answers}");
    assert_eq!(answers[0]["result"], json!([r.address]));
    assert_eq!(answers[1]["error"]["code"], -32602, "{answers}");
    // Notifications only: nothing to answer.
    let (status, _) = post_with(url, &[], r#"{"jsonrpc":"2.0","method":"eth_accounts"}"#);
    assert_eq!(status, 204);
    // Still serving.
    assert_eq!(call(url, "eth_accounts", json!([]))["result"], json!([r.address]));
}

#[test]
fn the_http_door_refuses_pages_strangers_and_floods() {
    let token = "a-token-of-sixteen-chars";
    let r = rig_with(|o| {
        o.token = Some(token.into());
        o.cors_origins = vec!["https://agent.example".into()];
        o.max_body = 4096;
    });
    let url = r.server.url();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_accounts"}"#;
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    assert_eq!(post_with(url, &[], body).0, 401, "no token");
    assert_eq!(
        post_with(url, &[("authorization", "Bearer a-token-of-sixteen-chaRs")], body).0,
        401
    );
    assert_eq!(post_with(url, &[auth], body).0, 200);
    // A page from an origin not configured: refused even with the token.
    assert_eq!(post_with(url, &[auth, ("origin", "https://evil.example")], body).0, 403);
    let (status, _) = post_with(url, &[auth, ("origin", "https://agent.example")], body);
    assert_eq!(status, 200);
    // A "simple" cross-site request (text/plain, no preflight): refused.
    assert_eq!(post_with(url, &[auth, ("content-type", "text/plain")], body).0, 415);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_accounts","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    assert_eq!(post_with(url, &[auth], &big).0, 413);
    let get = agent().get(url).header("authorization", &bearer).call().unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(post_with(url, &[auth], body).0, 200, "still serving");
}

#[test]
fn beyond_loopback_it_needs_a_token_and_a_lost_signer_is_its_own_error() {
    let r = rig();
    let endpoint = r._signer.server.endpoints()[0].clone();
    let config = Config { signer: endpoint, slots: vec![0], upstream: None, keep: 0 };
    let gateway = Arc::new(Gateway::open(&config).unwrap());
    let exposed =
        RpcServer::start(gateway.clone(), Options::new(Endpoint::Tcp("0.0.0.0:0".into())));
    assert!(matches!(exposed, Err(StartError::Exposed(_))), "{exposed:?}");
    // Without an upstream, forwarded methods are unsupported.
    let none = gateway.handle(br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).unwrap();
    assert_eq!(none["error"]["code"], 4200, "{none}");
    // The signer goes away: -32002, not a hang or a crash.
    let Rig { _signer, server, address, .. } = r;
    drop(_signer);
    let request = json!({
        "jsonrpc": "2.0", "id": 1, "method": "eth_signTypedData_v4",
        "params": [address, wallet_set(&address)],
    });
    let lost = gateway.handle(request.to_string().as_bytes()).unwrap();
    assert_eq!(lost["error"]["code"], -32002, "{lost}");
    drop(server);
}

/// An action the policy holds for approval: 4001 with the request and the
/// typed data its approvers sign (here with alloy's local signer over the
/// typed data as JSON, as any wallet would), then `tee_signApproved` with
/// two of three signatures signs it; one is not enough.
#[test]
fn an_approval_request_comes_back_as_typed_data_and_two_approvals_sign() {
    use alloy_signer::SignerSync;
    let approvers: Vec<alloy_signer_local::PrivateKeySigner> = (1..=3u8)
        .map(|i| alloy_signer_local::PrivateKeySigner::from_bytes(&[i; 32].into()).unwrap())
        .collect();
    let mut policy = tee_testkit::typed_policy();
    policy.kinds = policy.kinds.with(ActionKind::GenericTx);
    policy.max_value = tee_core::U256::from_u64(u64::MAX);
    policy.approvals = Some(tee_core::protocol::ApprovalRule {
        approvers: approvers.iter().map(|a| tee_core::Address(a.address().0.0)).collect(),
        threshold: 2,
        kinds: tee_core::protocol::KindSet::NONE,
        above_value: Some(tee_core::U256::from_u64(1_000)),
        above_amount: None,
        max_ttl_secs: 600,
    });
    let r = rig_under(&policy, |_| {});
    let url = r.server.url();
    let tx = json!({
        "from": r.address, "to": "0x000000000000000000000000000000000000dEaD",
        "value": "0x2710", "gas": "0x5208", "nonce": "0x0",
        "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1",
        "chainId": format!("0x{:x}", sample::CHAIN_ID),
    });
    let held = call(url, "eth_signTransaction", json!([tx]));
    assert_eq!(held["error"]["code"], 4001, "{held}");
    let data = &held["error"]["data"];
    assert_eq!(data["reason"], "ApprovalRequired", "{held}");
    assert_eq!(data["approvalRequest"]["need"], 2, "{held}");
    let typed: alloy_dyn_abi::TypedData =
        serde_json::from_value(data["typedData"].clone()).unwrap();
    let hash = typed.eip712_signing_hash().unwrap();
    let approve = |a: &alloy_signer_local::PrivateKeySigner| {
        format!("0x{}", hex::encode(a.sign_hash_sync(&hash).unwrap().as_bytes()))
    };
    let with = |signatures: Vec<String>| {
        let approval =
            json!({ "approvalRequest": data["approvalRequest"], "signatures": signatures });
        call(url, "tee_signApproved", json!(["eth_signTransaction", [tx], approval]))
    };
    let one = with(vec![approve(&approvers[0])]);
    assert_eq!(one["error"]["data"]["approvalRequest"]["have"], 1, "{one}");
    let two = with(vec![approve(&approvers[2]), approve(&approvers[0])]);
    let raw = two["result"].as_str().unwrap_or_else(|| panic!("{two}"));
    let kept = call(url, "tee_getAttestation", json!([raw_hash(&two["result"])]))["result"].clone();
    assert_eq!(kept["sequence"], data["approvalRequest"]["sequence"], "{kept:#}");
    assert!(raw.starts_with("0x02"));
    // Malformed approvals are invalid params, not a refusal.
    let bad =
        call(url, "tee_signApproved", json!(["eth_signTransaction", [tx], { "signatures": [] }]));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(r.node.methods().iter().all(|m| m != "eth_sendRawTransaction"));
}
