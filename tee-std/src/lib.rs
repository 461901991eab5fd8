#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

#[cfg(feature = "service")]
pub mod backend;
pub mod client;
#[cfg(feature = "service")]
pub mod demo;
#[cfg(feature = "service")]
pub mod dstack;
#[cfg(feature = "service")]
pub mod endpoint;
pub mod eventlog;
pub mod hexser;
pub mod pccs;
pub mod policyfile;
#[cfg(feature = "service")]
pub mod provider;
#[cfg(feature = "service")]
pub mod server;
pub mod sim;
#[cfg(feature = "service")]
pub mod simd;
pub mod store;
pub mod verify;
