//! What a verifier accepts: the measurements, the app and the KMS root a
//! signer must prove, as a validator pins them. Loaded from TOML or JSON
//! with hex values.

use serde::{Deserialize, Serialize};
use tee_core::primitives::FixedBytes;
use tee_core::{Address, B256};

/// What a verifier accepts. Every measurement list is optional: absent means
/// not checked (the report says so), present means the value must be one of
/// those listed. Loaded from TOML or JSON with hex values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Allowed MRTD values (the virtual firmware).
    #[serde(default)]
    pub mrtd: Option<Vec<FixedBytes<48>>>,
    /// Allowed RTMR0 values (firmware configuration).
    #[serde(default)]
    pub rtmr0: Option<Vec<FixedBytes<48>>>,
    /// Allowed RTMR1 values (kernel).
    #[serde(default)]
    pub rtmr1: Option<Vec<FixedBytes<48>>>,
    /// Allowed RTMR2 values (kernel command line, initrd).
    #[serde(default)]
    pub rtmr2: Option<Vec<FixedBytes<48>>>,
    /// Allowed RTMR3 values (usually checked through the event log instead).
    #[serde(default)]
    pub rtmr3: Option<Vec<FixedBytes<48>>>,
    /// Allowed dstack app compose hashes (from the event log).
    #[serde(default)]
    pub compose_hash: Option<Vec<B256>>,
    /// Allowed dstack app ids (from the event log).
    #[serde(default)]
    pub app_id: Option<Vec<FixedBytes<20>>>,
    /// Accept a debug TD (never for production keys).
    #[serde(default)]
    pub allow_debug: bool,
    /// Accepted TCB statuses; empty or absent means `["UpToDate"]`.
    #[serde(default)]
    pub tcb_status: Vec<String>,
    /// Address of the dstack KMS root key: when set, the signing key must come
    /// with a signature chain up to it.
    #[serde(default)]
    pub kms_root: Option<Address>,
}

/// A policy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// I/O.
    #[error("cannot read policy {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or JSON for a policy.
    #[error("invalid policy {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

impl Policy {
    /// Reads a policy from a `.json` file, or TOML otherwise.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Io { path: shown.clone(), source })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| PolicyError::Invalid { path: shown, message })
    }

    pub(super) fn accepted_statuses(&self) -> Vec<&str> {
        if self.tcb_status.is_empty() {
            vec!["UpToDate"]
        } else {
            self.tcb_status.iter().map(String::as_str).collect()
        }
    }
}
