#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

#[cfg(feature = "service")]
pub mod actions;
pub mod attest;
pub mod client;
pub mod json;
#[cfg(feature = "service")]
pub mod onchain;
pub mod service;
pub mod sim;
#[cfg(feature = "service")]
pub mod transport;

#[cfg(feature = "service")]
pub mod cli;
