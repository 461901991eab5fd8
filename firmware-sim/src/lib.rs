#![no_std]
#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod backend;
pub mod board;
pub mod entropy;
pub mod flash;
pub mod log;
pub mod store;

#[cfg(feature = "std")]
pub mod host;
