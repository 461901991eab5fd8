#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod deployment;
mod dstack;
mod error;
pub mod guest;
pub mod pki;
pub mod server;
pub mod tls;
pub mod v1;

pub use dstack::*;
pub use error::Error;
pub use server::{SimServer, Surfaces};

use std::sync::Arc;

/// The simulator's DCAP root ([`pki::SimPki::shared`]) as a verifier takes
/// it: `Verifier { simulated_root: Some(tee_sim::root()), .. }`. A policy
/// must still say `trust_simulator_root` for the verifier to use it.
#[must_use]
pub fn root() -> Arc<dyn tee_verify::SimulatedRoot> {
    Arc::new(SharedRoot)
}

/// [`pki::SimPki::shared`], built on first use.
#[derive(Debug, Clone, Copy)]
struct SharedRoot;

impl tee_verify::SimulatedRoot for SharedRoot {
    fn root_ca_der(&self) -> Vec<u8> {
        pki::SimPki::shared().map(pki::SimPki::root_ca_der).unwrap_or_default()
    }
    fn collateral(&self, now: u64) -> Result<dcap_qvl::QuoteCollateralV3, String> {
        let pki = pki::SimPki::shared().ok_or("the simulator's PKI could not be built")?;
        pki.collateral(now).map_err(|e| e.to_string())
    }
}
