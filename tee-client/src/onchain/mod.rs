//! TEE trust on the deployed ERC-8004 v2 registries, with no TEE registry:
//! the registration file says `supportedTrust: ["tee-attestation"]` and
//! names the signer; an attestation bundle binds the signer's address to a
//! challenge committing to (chain id, identity registry, agent id); the
//! agent's owner asks a validator through the Validation Registry
//! (`validationRequest` with `requestHash = keccak256(bundle)`); the
//! validator verifies and answers (`validationResponse`, 100 or 0, tag
//! `tee-attestation`); anyone reads the verdict (`getSummary`).
//! `docs/onchain.md` walks through it. One concern per file:
//!
//! - [`bundle`]: the agent's side: [`AgentRef`], its challenge, the
//!   [`AttestationBundle`], the registration file, `data:` URIs;
//! - [`validator`]: the validator's checks and its response;
//! - [`answer`]: the validator's use case, whole (request, checks,
//!   attestation, the response signed and sent);
//! - [`fetch`]: what a validator reads from a URI, under its operator's rules;
//! - [`rpc`]: the registries read (and transactions sent) over any
//!   Ethereum JSON-RPC endpoint;
//! - [`reputation`]: an agent's feedback, all and TEE-verified (the
//!   agent's `TaskReceipt` in the client's feedback file).

pub mod answer;
pub mod bundle;
pub mod fetch;
pub mod reputation;
pub mod rpc;
pub mod validator;

pub use bundle::{AgentRef, AttestationBundle, Registration, Service};
pub use validator::{AgentOnChain, Validation, ValidationCheck, validate};

/// The Validation Registry tag of a TEE attestation verdict.
pub const TAG: &str = "tee-attestation";

/// The identity registry metadata key whose value names the agent's TEE
/// signer (its 20-byte address).
pub const METADATA_KEY: &str = "tee-signer";
