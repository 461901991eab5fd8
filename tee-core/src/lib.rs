#![no_std]
#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

#[cfg(test)]
extern crate std;

mod sink;

pub mod abi;
pub mod action;
pub mod binding;
pub mod client;
pub mod codec;
pub mod device;
pub mod eip712;
pub mod error;
pub mod frame;
pub mod hex;
pub mod limits;
pub mod policy;
pub mod primitives;
pub mod protocol;
pub mod quote;
pub mod rlp;
#[cfg(feature = "samples")]
pub mod sample;
pub mod serve;
pub mod signer;

#[cfg(feature = "hazmat")]
pub mod hazmat;

/// Re-exported: action fields are `heapless` strings and vectors.
pub use heapless;

pub use action::{Action, ActionKind};
pub use error::{Error, Result};
pub use primitives::{Address, B256, U256};
pub use signer::{Signature, Signed, SigningKey};
