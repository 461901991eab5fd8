#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod backend;
pub mod dstack;
mod error;
mod listen;
pub mod marks;
pub mod served;
pub mod server;

pub use error::Error;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// docs/wire-format.md quotes the std signer's bounds in its own
    /// sentences; tee-core's wire_format test checks the rest of the
    /// document against the microcontroller's build.
    #[test]
    fn wire_format_doc_quotes_the_host_bounds() {
        use tee_core::limits::{
            MAX_CALLDATA_LEN, MAX_MESSAGE_LEN, MAX_METADATA_VALUE_LEN, MAX_REQUEST_FRAME,
            MAX_URI_LEN,
        };
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/wire-format.md");
        let doc = std::fs::read_to_string(path).unwrap();
        for quoted in [
            format!("`MAX_REQUEST_FRAME` = {MAX_REQUEST_FRAME} with `host-bounds`"),
            format!(
                "with `host-bounds`, URIs ≤ {MAX_URI_LEN}, metadata values ≤ {MAX_METADATA_VALUE_LEN},\n\
                 calldata ≤ {MAX_CALLDATA_LEN}, messages ≤ {MAX_MESSAGE_LEN}"
            ),
        ] {
            assert!(doc.contains(&quoted), "docs/wire-format.md should say {quoted}");
        }
    }
}
