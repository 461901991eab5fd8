//! Shared pieces of the end-to-end and conformance tests: proptest
//! strategies that generate every action kind (boundary sizes included), and
//! an independent reference for each action's calldata and digest, built on
//! alloy.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod arb;
pub mod crash;
pub mod footprint;
pub mod netfault;
pub mod postgres;
pub mod qemu;
mod reference;
pub mod replica;
pub mod signer;

pub use arb::*;
pub use reference::*;
