//! Why the state directory could not be opened or kept: the crate's error,
//! with the journal's reasons nested.

use std::io;

use tee_core::Address;

use crate::journal::JournalError;
use crate::layout::KEY_FILE;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory could not be created or read.
    #[error("state directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Others can read or write the state directory, or it is not ours.
    #[error(
        "state directory {path} is open to others (mode {mode:o}, owner uid {owner}): it holds keys and anti-replay marks; make it yours alone (chmod 700) or give another directory"
    )]
    Permissions {
        /// The directory.
        path: String,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        owner: u32,
    },
    /// Another process holds the state directory.
    #[error(
        "state directory {path} is in use by another signer (two signers on one state could sign twice at one sequence)"
    )]
    Locked {
        /// The directory.
        path: String,
    },
    /// The journal is not what this signer wrote.
    #[error("state journal in {path} refused: {source}")]
    Journal {
        /// The directory.
        path: String,
        /// Why.
        source: JournalError,
    },
    /// A journal without its key file (a signer without a TEE).
    #[error(
        "state directory {path} has a journal but no {KEY_FILE}: its records cannot be checked"
    )]
    KeyMissing {
        /// The directory.
        path: String,
    },
    /// State from an older version (per-file records, not authenticated).
    #[error(
        "state directory {path} holds state of an older version (per-file records without MACs): not opened; move it aside and provision anew"
    )]
    OldFormat {
        /// The directory.
        path: String,
    },
    /// No admin was given on the first start.
    #[error("this state directory is new: give the admin address (--admin) to provision it")]
    NoAdmin,
    /// An admin was given that is not the provisioned one.
    #[error(
        "this device's admin is {provisioned}, not {given}: the admin is fixed at provisioning"
    )]
    AdminMismatch {
        /// The provisioned admin.
        provisioned: Address,
        /// The admin given.
        given: Address,
    },
}
