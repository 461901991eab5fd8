//! The built-in simulated TEE: a simulated dstack (KMS, event log, quotes)
//! behind dstack's own HTTP API, and the end-to-end demo on it. It is a
//! first-class backend, selected like the real one (by endpoint), never a
//! test-only mock.

mod dstack;
pub mod guest;
pub mod pki;
pub mod tls;
pub mod v1;

#[cfg(feature = "service")]
pub mod demo;
#[cfg(feature = "service")]
pub mod server;

pub use dstack::*;
#[cfg(feature = "service")]
pub use server::{SimServer, Surfaces};
