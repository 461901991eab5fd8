#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

//! Verifying an attestation: that a signing key lives in a measured TDX
//! confidential VM running the expected code, and that a signature is that
//! key's. One concern per file:
//!
//! - [`policy`]: what a validator pins (measurements, app, KMS root);
//! - [`evidence`]: what a signer presents and the JSON bundles it hands out;
//! - [`checks`]: the checks themselves ([`Verifier`]);
//! - [`keychain`]: dstack's key signature chains (v0 and v1);
//! - [`report`]: their findings and the verdict;
//! - [`eventlog`]: dstack's event log, replayed to RTMR3;
//! - [`pccs`]: DCAP collateral from a PCCS the user configures;
//! - [`tcb`]: a platform's TCB status, advisories and collateral lifetime;
//! - [`versioned`]: dstack's `VersionedAttestation` (`Attest`), V0 and V1.

pub mod checks;
mod error;
pub mod eventlog;
pub mod evidence;
pub mod json;
pub mod keychain;
pub mod pccs;
pub mod policy;
pub mod report;
pub mod tcb;
pub mod versioned;

pub use checks::{SimulatedRoot, Verifier};
pub use error::Error;
pub use evidence::{
    Attestation, Bound, Evidence, Expected, KeyChain, TeeSignature, random_challenge,
};
pub use keychain::verify_key_chain;
pub use policy::{Policy, PolicyError};
pub use report::{Check, Failure, Report, Status};
