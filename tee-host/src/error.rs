//! The service's one error type, nesting each part's reason: opening the
//! signer, dstack, the shared marks, the state directory.

use crate::backend::OpenError;
use crate::dstack::DstackError;
use crate::marks::MarksError;

/// Why the service could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening the signer.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// dstack's guest agent.
    #[error(transparent)]
    Dstack(#[from] DstackError),
    /// The marks replicas share.
    #[error(transparent)]
    Marks(#[from] MarksError),
    /// The state directory.
    #[error(transparent)]
    Store(#[from] tee_store::error::StoreError),
    /// A listener or a socket.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
