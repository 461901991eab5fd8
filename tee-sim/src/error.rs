//! The simulator's one error type, nesting each part's reason.

use crate::SimError;
use crate::pki::PkiError;

/// Why the simulated TEE could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The simulated guest agent.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The simulated Intel PKI.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Its HTTP server's socket.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
