#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod backend;
pub mod dstack;
mod error;
mod listen;
pub mod marks;
pub mod metrics;
pub mod served;
pub mod server;

pub use error::Error;
