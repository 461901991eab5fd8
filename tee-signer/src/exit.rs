//! What a script reads from `tee-signer`'s exit status (`docs/cli.md`):
//! distinct codes for success, a refusal by the signer's policy, a party
//! that could not be reached, invalid input, and a verification that failed.

use std::process::ExitCode;

use tee_client::ClientError;
use tee_client::onchain::answer::AnswerError;
use tee_client::onchain::rpc::RpcError;
use tee_client::provider::ProviderError;

/// Done.
pub const OK: u8 = 0;
/// Anything else: a storage or internal failure, a signer that failed.
pub const FAILED: u8 = 1;
/// Invalid input: arguments, files, JSON, a configuration that cannot be
/// used (clap's own usage errors are 2 too).
pub const INVALID: u8 = 2;
/// The signer refused, with its typed reason (its policy, a replay, a bound).
pub const REFUSED: u8 = 3;
/// The signer, dstack, the chain's endpoint or a bundle's host did not
/// answer.
pub const UNREACHABLE: u8 = 4;
/// A verification failed: `verify` found the attestation or signature not
/// verified under the policy.
pub const NOT_VERIFIED: u8 = 5;

/// Input the user gave that cannot be used: exits [`INVALID`].
#[derive(Debug)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// A party that could not be reached: exits [`UNREACHABLE`].
#[derive(Debug)]
pub struct Unreachable {
    /// Who.
    pub what: String,
    /// Why.
    pub source: std::io::Error,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn client(e: &ClientError) -> u8 {
    match e {
        ClientError::Device(_) => REFUSED,
        ClientError::Io(_) | ClientError::Closed | ClientError::Timeout => UNREACHABLE,
        _ => FAILED,
    }
}

fn provider(e: &ProviderError) -> u8 {
    match e {
        ProviderError::Refused(_)
        | ProviderError::Denied { .. }
        | ProviderError::ApprovalRequired(_) => REFUSED,
        ProviderError::Client { source, .. } => client(source),
        ProviderError::AttestationFailed { source, .. } => provider(source),
        ProviderError::NotAdmin
        | ProviderError::PathTooLong
        | ProviderError::OverBound(_)
        | ProviderError::Action(_)
        | ProviderError::NotFrom { .. } => INVALID,
        _ => FAILED,
    }
}

fn rpc(e: &RpcError) -> u8 {
    match e {
        RpcError::Transport { .. } => UNREACHABLE,
        _ => FAILED,
    }
}

/// The exit code of a command that failed with `e`.
pub fn code_of(e: &(dyn std::error::Error + 'static)) -> u8 {
    if e.is::<Invalid>()
        || e.is::<tee_client::actions::JsonActionError>()
        || e.is::<tee_client::policyfile::PolicyFileError>()
        || e.is::<tee_verify::PolicyError>()
        || e.is::<tee_transport::EndpointError>()
        || e.is::<serde_json::Error>()
        || e.is::<hex::FromHexError>()
        // A canonical encoding the user gave that does not decode.
        || e.is::<tee_core::Error>()
    {
        return INVALID;
    }
    if e.is::<Unreachable>() {
        return UNREACHABLE;
    }
    if let Some(e) = e.downcast_ref::<ClientError>() {
        return client(e);
    }
    if let Some(e) = e.downcast_ref::<tee_client::marks::MarksError>() {
        use tee_client::marks::MarksError as M;
        return match e {
            M::Client(c) => client(c),
            M::Format(_) | M::NeedsAdmin { .. } => INVALID,
            M::BadSignature { .. } | M::NotRaised { .. } => FAILED,
        };
    }
    if let Some(e) = e.downcast_ref::<ProviderError>() {
        return provider(e);
    }
    if let Some(e) = e.downcast_ref::<RpcError>() {
        return rpc(e);
    }
    if let Some(e) = e.downcast_ref::<AnswerError>() {
        return match e {
            AnswerError::Provider(p) => provider(p),
            AnswerError::Rpc(r) => rpc(r),
            AnswerError::NotTheValidator { .. }
            | AnswerError::NotPinned(_)
            | AnswerError::SimulatorRoot(_)
            | AnswerError::Bundle { .. }
            | AnswerError::TooLarge { .. }
            | AnswerError::Transaction(_) => INVALID,
            _ => FAILED,
        };
    }
    FAILED
}

/// `code` as the process's exit status.
#[must_use]
pub fn status(code: u8) -> ExitCode {
    ExitCode::from(code)
}
