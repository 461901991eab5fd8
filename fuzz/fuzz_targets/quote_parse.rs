//! The TDX quote parser: never panics, and agrees with dcap-qvl. Whenever we
//! accept, dcap-qvl accepts the same quote with the same fields; where only
//! dcap-qvl accepts, ours names a documented strictness (bytes dcap-qvl
//! ignores, SGX, another attestation key type, certification data type != 6).
#![no_main]

use dcap_qvl::quote::{AuthData, Quote as Dcap};
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;
use tee_core::Error;
use tee_core::quote::Quote;

fuzz_target!(|data: &[u8]| {
    match (Quote::parse(data), Dcap::parse(data)) {
        (Ok(ours), Ok(theirs)) => {
            let td = theirs.report.as_td10().expect("dcap-qvl parsed a TD report");
            assert_eq!(ours.report.mr_td, &td.mr_td);
            assert_eq!(ours.report.rtmr, [&td.rt_mr0, &td.rt_mr1, &td.rt_mr2, &td.rt_mr3]);
            assert_eq!(ours.report.report_data, &td.report_data);
            assert_eq!(ours.report.td_attributes, &td.td_attributes);
            assert_eq!(ours.header.version, theirs.header.version);
            assert_eq!(ours.signed.len(), theirs.signed_length());
            let AuthData::V4(a) = &theirs.auth_data else { panic!("v3 auth data in a TD quote") };
            let inner = &a.qe_report_data.certification_data;
            assert_eq!(
                (ours.auth.cert_type, ours.auth.cert_data),
                (inner.cert_type, &inner.body.data[..])
            );
            assert_eq!(ours.raw, &theirs.encode()[..]);
        }
        (Ok(_), Err(e)) => panic!("accepted what dcap-qvl refuses: {e}"),
        (Err(_), Err(_)) => {}
        (Err(e), Ok(theirs)) => {
            let documented = match e {
                Error::TrailingBytes => theirs.encode() != data,
                Error::Unsupported => {
                    theirs.report.is_sgx()
                        || theirs.header.attestation_key_type != 2
                        || theirs.header.tee_type != 0x81
                }
                Error::Malformed => match &theirs.auth_data {
                    AuthData::V4(a) => a.certification_data.cert_type != 6,
                    AuthData::V3(_) => true,
                },
                _ => false,
            };
            assert!(documented, "only dcap-qvl accepted; {e:?} is not a documented strictness");
        }
    }
});
