//! dstack's `VersionedAttestation` reader (what a guest agent's `Attest`
//! returns, V0 SCALE or V1 MessagePack): never panics nor allocates by a
//! claimed length; what it accepts binds the quote's own `report_data`,
//! and written back as V1 it reads back to the same quote, report data, VM
//! config and RTMR3.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tee_verify::eventlog;
use tee_verify::versioned::{encode_v1, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(a) = parse(data) else { return };
    let quote =
        tee_core::quote::Quote::parse(&a.quote).expect("an accepted attestation's quote parses");
    assert_eq!(quote.report.report_data, &a.report_data);
    let again = parse(&encode_v1(&a.quote, &a.event_log, &a.report_data, &a.vm_config))
        .expect("what was read writes back as V1");
    assert_eq!(
        (&again.quote, again.report_data, &again.vm_config),
        (&a.quote, a.report_data, &a.vm_config)
    );
    let names =
        |l: &[eventlog::Event]| l.iter().map(|e| (e.imr, e.event.clone())).collect::<Vec<_>>();
    assert_eq!(names(&again.event_log), names(&a.event_log));
    if let Ok(r) = eventlog::replay(&a.event_log, 3) {
        assert_eq!(eventlog::replay(&again.event_log, 3).ok(), Some(r));
    }
});
