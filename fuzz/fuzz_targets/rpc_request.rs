//! The JSON-RPC endpoint's request parser (`tee_rpc::Gateway::handle`, what
//! `tee-signer rpc` runs on every HTTP body): any bytes give a JSON-RPC
//! answer or nothing (notifications only), never a panic; a signing method
//! never yields a result from an endpoint that serves no account, and no
//! method is forwarded without an upstream. (The actions inside are the
//! `json_action` target's.)
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tee_rpc::{Config, Gateway};

fn gateway() -> &'static Gateway {
    static G: OnceLock<Gateway> = OnceLock::new();
    G.get_or_init(|| {
        let config = Config {
            signer: "unix:/nonexistent/tee-signer.sock".parse().expect("an endpoint"),
            slots: Vec::new(),
            upstream: None,
            keep: 4,
        };
        Gateway::open(&config).expect("no slot to read")
    })
}

fn check(answer: &Value) {
    assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
    assert!(answer.get("result").is_none() || answer.get("error").is_none(), "{answer}");
    if let Some(result) = answer.get("result") {
        // Only the account lists (empty) and the attestation lookup (null) answer.
        assert!(result == &Value::Null || result == &Value::Array(Vec::new()), "{answer}");
    } else {
        let code = answer["error"]["code"].as_i64().expect("an error code");
        assert!(code != 4001, "nothing was signed, so nothing was refused by a policy: {answer}");
    }
}

fuzz_target!(|data: &[u8]| {
    let input: Option<Value> = serde_json::from_slice(data).ok();
    match gateway().handle(data) {
        Some(Value::Array(answers)) => {
            assert!(matches!(input, Some(Value::Array(_))), "a batch answer to a batch only");
            assert!(!answers.is_empty());
            answers.iter().for_each(check);
        }
        Some(answer) => check(&answer),
        None => assert!(input.is_some(), "not JSON is answered"),
    }
});
