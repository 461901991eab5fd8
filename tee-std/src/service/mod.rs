//! The signer as a service: the durable state directory, dstack through its
//! SDK, the host backend that joins them, the server that serves one device
//! to many clients, and slot policy files.

pub mod group;
pub mod journal;
pub mod store;

#[cfg(feature = "service")]
pub mod backend;
#[cfg(feature = "service")]
pub mod dstack;
#[cfg(feature = "service")]
pub mod marks;
#[cfg(feature = "service")]
pub mod policyfile;
#[cfg(feature = "service")]
pub mod server;
