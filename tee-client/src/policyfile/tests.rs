//! The policy file's unit tests: the documented example, both ways, and
//! the mistakes it refuses.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;

const EXAMPLE: &str = r#"
kinds = ["AgentWalletSet", "setAgentURI", "giveFeedback", "personal_sign"]
chains = [8453, 84532]
contracts = ["0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"]
agents = "any"
max_value_wei = "0"
max_gas_limit = 500000
max_fee_per_gas_wei = "100000000000"
max_deadline_ahead_secs = 300
rate_limit = { max = 10, window_secs = 60 }
"#;

#[test]
fn the_documented_example_makes_the_policy_it_says() {
    let p = PolicyFile::parse(EXAMPLE).unwrap().to_policy().unwrap();
    for &k in ActionKind::ALL {
        let want = matches!(
            k,
            ActionKind::AgentWalletSet
                | ActionKind::SetAgentUri
                | ActionKind::GiveFeedback
                | ActionKind::PersonalMessage
        );
        assert_eq!(p.kinds.contains(k), want, "{k}");
    }
    assert_eq!(p.chains, Allow::Only(heapless::Vec::from_slice(&[8453, 84532]).unwrap()));
    assert!(
        p.contracts
            .permits(&Address(hex_literal::hex!("8004A169FB4a3325136EB29fA0ceB6D2e539a432")))
    );
    assert!(!p.contracts.permits(&Address([1; 20])));
    assert_eq!(p.agents, Allow::Any);
    assert_eq!(p.max_fee_per_gas, 100_000_000_000);
    assert_eq!(p.rate_limit, Some(RateLimit { max: 10, window_secs: 60 }));
    // The same policy as JSON.
    let json = serde_json::to_string(&PolicyFile::parse(EXAMPLE).unwrap()).unwrap();
    assert_eq!(PolicyFile::parse(&json).unwrap().to_policy().unwrap(), p);
}

/// Token rules in the file: the tokens with their bounds (decimals up
/// to 2^256 - 1), the recipients (absent: any), unlimited approvals; and
/// back to the same file.
#[test]
fn token_rules_both_ways() {
    let usdc = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
    let text = format!(
        "{EXAMPLE}tokens = [{{ token = \"{usdc}\", max_amount = \"5000000\", \
         cap = {{ max = \"20000000\", window_secs = 86400 }} }}, \
         {{ token = \"0x{}\", max_amount = \"{}\" }}]\nunlimited_approvals = true\n",
        "11".repeat(20),
        U256([0xff; 32])
    );
    let file = PolicyFile::parse(&text).unwrap();
    let p = file.to_policy().unwrap();
    assert_eq!(p.tokens.len(), 2);
    assert_eq!(p.tokens[0].max_amount, U256::from_u64(5_000_000));
    assert_eq!(p.tokens[1].max_amount, U256([0xff; 32]));
    let cap = SpendCap { max: U256::from_u64(20_000_000), window_secs: 86_400 };
    assert_eq!((p.tokens[0].cap, p.tokens[1].cap), (Some(cap), None));
    assert_eq!((p.recipients.clone(), p.unlimited_approvals), (Allow::Any, true));
    assert_eq!(PolicyFile::from_policy(&p).unwrap(), file);
    let toml = PolicyFile::from_policy(&p).unwrap().to_toml().unwrap();
    assert_eq!(PolicyFile::parse(&toml).unwrap().to_policy().unwrap(), p);
    // Without token lines: no token, any recipient, no unlimited approval.
    let none = PolicyFile::parse(EXAMPLE).unwrap().to_policy().unwrap();
    assert!(none.tokens.is_empty() && !none.unlimited_approvals);
    // Three tokens is one more than a device holds; a bound is a decimal.
    let three = (0..3)
        .map(|i| {
            format!("{{ token = \"0x{}\", max_amount = \"1\" }}", format!("{i:02}").repeat(20))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let e = PolicyFile::parse(&format!("{EXAMPLE}tokens = [{three}]\n")).unwrap().to_policy();
    assert_eq!(e, Err(PolicyFileError::TooMany { field: "tokens", max: 2 }));
    let hex = format!("{EXAMPLE}tokens = [{{ token = \"{usdc}\", max_amount = \"0x10\" }}]\n");
    assert!(matches!(PolicyFile::parse(&hex), Err(PolicyFileError::Syntax(_))));
}

#[test]
fn mistakes_are_refused_with_a_reason() {
    let with = |from: &str, to: &str| PolicyFile::parse(&EXAMPLE.replace(from, to));
    let e = with("\"setAgentURI\"", "\"setAgentUrl\"").unwrap().to_policy().unwrap_err();
    assert_eq!(e, PolicyFileError::UnknownKind("setAgentUrl".into()));
    assert!(matches!(with("max_gas_limit = 500000\n", ""), Err(PolicyFileError::Syntax(_))));
    assert!(matches!(
        with("agents = \"any\"", "agents = \"all\""),
        Err(PolicyFileError::Syntax(_))
    ));
    assert!(matches!(with("chains = [", "chain = ["), Err(PolicyFileError::Syntax(_))));
    let e = with("[8453, 84532]", "[1, 2, 3, 4, 5]").unwrap().to_policy().unwrap_err();
    assert_eq!(e, PolicyFileError::TooMany { field: "chains", max: 4 });
    let e = with("max = 10", "max = 0").unwrap().to_policy().unwrap_err();
    assert_eq!(e, PolicyFileError::BadRateLimit);
    let cap = "spend_cap = { max_wei = \"5\", window_secs = 0 }\n";
    let e = PolicyFile::parse(&format!("{EXAMPLE}{cap}")).unwrap().to_policy().unwrap_err();
    assert_eq!(e, PolicyFileError::BadSpendCap);
}

#[test]
fn a_spend_cap_reads_and_writes_back() {
    let cap = "spend_cap = { max_wei = \"1000000000000000000\", window_secs = 86400 }\n";
    let policy = PolicyFile::parse(&format!("{EXAMPLE}{cap}")).unwrap().to_policy().unwrap();
    let want = SpendCap { max: U256::from_u128(1_000_000_000_000_000_000), window_secs: 86400 };
    assert_eq!(policy.spend_cap, Some(want));
    let text = PolicyFile::from_policy(&policy).unwrap().to_toml().unwrap();
    assert!(text.contains("max_wei = \"1000000000000000000\""), "{text}");
    assert_eq!(PolicyFile::parse(&text).unwrap().to_policy().unwrap(), policy, "{text}");
    // Without a cap or an end, the file says nothing of either.
    let none = PolicyFile::parse(EXAMPLE).unwrap().to_policy().unwrap();
    let text = PolicyFile::from_policy(&none).unwrap().to_toml().unwrap();
    assert!(!text.contains("spend_cap") && !text.contains("valid_until"), "{text}");
    // An end reads and writes back.
    let ends = PolicyFile::parse(&format!("{EXAMPLE}valid_until = 1798761600\n")).unwrap();
    let policy = ends.to_policy().unwrap();
    assert_eq!(policy.valid_until, 1_798_761_600);
    let text = PolicyFile::from_policy(&policy).unwrap().to_toml().unwrap();
    assert_eq!(PolicyFile::parse(&text).unwrap().to_policy().unwrap(), policy, "{text}");
}

/// A device policy written back as a file makes the same policy: what
/// `get-policy` prints, `set-policy` takes back.
#[test]
fn a_policy_written_back_as_a_file_makes_the_same_policy() {
    let policy = PolicyFile::parse(EXAMPLE).unwrap().to_policy().unwrap();
    let file = PolicyFile::from_policy(&policy).unwrap();
    let text = file.to_toml().unwrap();
    assert_eq!(PolicyFile::parse(&text).unwrap().to_policy().unwrap(), policy, "{text}");
    // Agent ids above 2^64 as decimal strings; "any" as the word.
    let mut wide = policy.clone();
    wide.agents = Allow::Only(heapless::Vec::from_slice(&[U256::from_u128(1 << 70)]).unwrap());
    wide.chains = Allow::Any;
    let text = PolicyFile::from_policy(&wide).unwrap().to_toml().unwrap();
    assert!(text.contains("chains = \"any\""), "{text}");
    assert_eq!(PolicyFile::parse(&text).unwrap().to_policy().unwrap(), wide, "{text}");
    // A value no file can say is refused by name, not written wrong.
    let mut huge = policy;
    huge.max_value = U256([0xff; 32]);
    assert_eq!(PolicyFile::from_policy(&huge), Err(PolicyFileError::Unwritable("max_value_wei")));
}
