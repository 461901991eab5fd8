//! The attestation verifier on hostile evidence: Intel's sample TDX quote
//! with bytes overwritten, and an arbitrary dstack event log (JSON). Checked:
//! - nothing panics, and the report always says whether the quote parsed;
//! - an event log that parses serialises and parses back to itself;
//! - a quote whose signed bytes (header and report body) or whose
//!   attestation signature and key changed never passes DCAP;
//! - a report never says "verified" for a quote it could not check;
//! - identity comes from the boot part of the log only: a compose hash or
//!   app id passes only if the log's one event of that name before the
//!   first `system-ready` carries an allowed value, and a log without
//!   `system-ready` or with an identity event twice before it passes none.
//!
//! Input: `n ‖ n × (offset u16 LE ‖ byte) ‖ event log text`.
#![no_main]

use std::sync::LazyLock;

use dcap_qvl::QuoteCollateralV3;
use libfuzzer_sys::fuzz_target;
use tee_core::primitives::FixedBytes;
use tee_core::{Address, B256};
use tee_verify::eventlog::{self, BootLog};
use tee_verify::{Check, Evidence, Expected, Policy, Status, Verifier};
/// Intel's sample TDX quote (dcap-qvl's, tests/data/dcap-qvl/README).
const SAMPLE_QUOTE: &[u8] = include_bytes!("../../tests/data/dcap-qvl/tdx_quote");

/// Header (48) ‖ TD report (584) ‖ signature length (4) ‖ ECDSA signature
/// (64) ‖ attestation key (64): what the quote's own signature covers or is.
const SIGNED: usize = 48 + 584 + 4 + 64 + 64;
/// Inside the sample collateral's validity window (2025-06-19 .. 2025-07-19).
const NOW: u64 = 1_750_809_600;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    let json = include_str!("../../tests/data/dcap-qvl/tdx_quote_collateral.json");
    let collateral: QuoteCollateralV3 = serde_json::from_str(json).expect("sample collateral");
    Verifier {
        policy: Policy {
            // Ask for what the event log carries, so its checks run.
            compose_hash: Some(vec![tee_core::B256([0; 32])]),
            app_id: Some(vec![FixedBytes([0; 20])]),
            ..Policy::default()
        },
        collateral: Some(collateral),
        pccs: None,
        simulated_root: None,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (patches, log) = rest.split_at((usize::from(n) * 3).min(rest.len()));
    let mut quote = SAMPLE_QUOTE.to_vec();
    for p in patches.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([p[0], p[1]])) % quote.len();
        quote[at] = p[2];
    }
    let signed_changed = quote[..SIGNED] != SAMPLE_QUOTE[..SIGNED];

    let events = std::str::from_utf8(log).ok().and_then(|text| eventlog::parse(text).ok());
    if let Some(events) = &events {
        let json = serde_json::to_string(events).expect("events serialise");
        assert_eq!(&eventlog::parse(&json).expect("parses back"), events);
    }

    let evidence = Evidence { quote: &quote, event_log: events.as_deref(), key_chain: None };
    let report = VERIFIER.verify(&evidence, &Address::ZERO, &Expected::Challenge(B256::ZERO), NOW);
    let parsed = matches!(report.status(Check::Quote), Some(Status::Passed(_)));
    assert!(report.status(Check::Quote).is_some(), "the report says whether the quote parsed");
    if signed_changed {
        assert!(
            !matches!(report.status(Check::Dcap), Some(Status::Passed(_))),
            "a changed quote passed DCAP:\n{report}"
        );
    }
    if !parsed || signed_changed {
        assert!(!report.verified(), "verified a quote it could not check:\n{report}");
    }
    let boot = events.as_deref().map(BootLog::read);
    for (check, name, allowed) in
        [(Check::ComposeHash, "compose-hash", &[0u8; 32][..]), (Check::AppId, "app-id", &[0; 20])]
    {
        if matches!(report.status(check), Some(Status::Passed(_))) {
            let Some(Ok(boot)) = &boot else {
                panic!("{name} passed without a boot log:\n{report}")
            };
            assert_eq!(boot.get(name), Some(allowed), "{name} passed on a runtime event");
            let ready = events.as_deref().unwrap_or_default().iter().position(|e| {
                e.imr == 3
                    && e.event_type == eventlog::DSTACK_RUNTIME_EVENT_TYPE
                    && e.event == eventlog::SYSTEM_READY
            });
            assert!(ready.is_some(), "identity passed without system-ready");
        }
    }
});
