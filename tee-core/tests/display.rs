//! How actions read to people: the registry calls' one-line form (from the
//! same table as their calldata), and escaping that keeps a field from
//! forging lines.
#![allow(clippy::unwrap_used)]

use tee_core::action::RegistryCall;
use tee_core::{ActionKind, U256};
use tee_testkit::sample;

fn call(kind: ActionKind) -> RegistryCall<'static> {
    let action = sample::action(kind);
    action.registry_call().cloned().unwrap_or_else(|| unreachable!("{kind} is a registry call"))
}

#[test]
fn registry_calls_read_as_solidity_calls() {
    let uri = "ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    let hash = "0xa1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2";
    assert_eq!(call(ActionKind::Register).to_string(), "register()");
    assert_eq!(
        call(ActionKind::RegisterWithMetadata).to_string(),
        format!(
            "register(\"{uri}\", [(\"tee\", 0x{}), (\"model\", 0x{})])",
            hex::encode("phala-dstack"),
            hex::encode("llama-3.1-8b")
        )
    );
    assert_eq!(
        call(ActionKind::GiveFeedback).to_string(),
        format!(
            "giveFeedback(42, 87, 0, \"starred\", \"defi\", \"https://agent.example/a2a\", \"{uri}\", {hash})"
        )
    );
    assert_eq!(
        call(ActionKind::AppendResponse).to_string(),
        format!(
            "appendResponse(42, 0x70997970C51812dc3A010C7d01b50e0d17dc79C8, 3, \"{uri}\", {hash})"
        )
    );
    // Every registry call starts with its function's name.
    for &kind in ActionKind::ALL.iter().filter(|k| k.registry().is_some()) {
        let shown = call(kind).to_string();
        let name = kind.name().split('(').next().unwrap();
        assert!(shown.starts_with(&format!("{name}(")), "{kind}: {shown}");
    }
}

#[test]
fn strings_are_escaped() {
    let c = RegistryCall::SetAgentUri {
        agent_id: U256::from_u64(1),
        new_uri: "a\"\nINFO forged line\\",
    };
    assert_eq!(c.to_string(), "setAgentURI(1, \"a\\\"\\nINFO forged line\\\\\")");
}
