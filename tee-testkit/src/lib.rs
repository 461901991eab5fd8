//! Test support for the signer, kept out of the production crates.
//!
//! - [`sample`]: one typical action of every kind (tee-core's `samples`,
//!   which the demo and the CLI's `--sample` use too);
//! - with feature `std` (the default): [`MemBackend`], an in-memory backend
//!   that can lose power at any write, and [`Pair`], a host driving a
//!   device through real frames, as quinn-proto's test `Pair` does.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub use tee_core::sample;

#[cfg(feature = "std")]
mod mem;

#[cfg(feature = "std")]
pub use mem::*;
