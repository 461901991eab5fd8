//! The client's one error type, nesting each part's reason: the wire
//! client, the provider, JSON actions and calldata, policy files, the
//! on-chain flows, the alloy signer, and the verifier below.

use crate::ClientError;
use crate::actions::JsonActionError;
use crate::actions::calldata::CalldataError;
use crate::alloy::DeviceSignerError;
use crate::onchain::answer::AnswerError;
use crate::onchain::bundle::BundleError;
use crate::onchain::rpc::RpcError;
use crate::policyfile::PolicyFileError;
use crate::provider::ProviderError;

/// Why a client call could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The wire client (the signer's typed refusals among them).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The provider.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A JSON action.
    #[error(transparent)]
    JsonAction(#[from] JsonActionError),
    /// Registry calldata.
    #[error(transparent)]
    Calldata(#[from] CalldataError),
    /// A slot policy file.
    #[error(transparent)]
    PolicyFile(#[from] PolicyFileError),
    /// An attestation bundle or a `data:` URI.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The chain's JSON-RPC endpoint.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The validator's use case.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// The alloy signer.
    #[error(transparent)]
    Signer(#[from] DeviceSignerError),
    /// The verifier.
    #[error(transparent)]
    Verify(#[from] tee_verify::Error),
}
