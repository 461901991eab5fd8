//! The field bounds a device reports (`DeviceInfo`), and the check a client
//! makes against them before it asks: beside the action types it reads.

use serde::{Deserialize, Serialize};

use super::{Action, RegistryCall};
use crate::limits::{
    MAX_ACTION_LEN, MAX_CALLDATA_LEN, MAX_MESSAGE_LEN, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_LEN,
    MAX_METADATA_VALUE_LEN, MAX_TAG_LEN, MAX_URI_LEN, MAX_WALLET_SIGNATURE_LEN,
};

/// The field bounds a device was built with, as `DeviceInfo` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ActionBounds {
    /// [`MAX_URI_LEN`].
    pub uri: u32,
    /// [`MAX_TAG_LEN`].
    pub tag: u32,
    /// [`MAX_METADATA_KEY_LEN`].
    pub metadata_key: u32,
    /// [`MAX_METADATA_VALUE_LEN`].
    pub metadata_value: u32,
    /// [`MAX_METADATA_ENTRIES`].
    pub metadata_entries: u32,
    /// [`MAX_WALLET_SIGNATURE_LEN`].
    pub wallet_signature: u32,
    /// [`MAX_CALLDATA_LEN`].
    pub calldata: u32,
    /// [`MAX_MESSAGE_LEN`].
    pub message: u32,
    /// [`MAX_ACTION_LEN`].
    pub action: u32,
}

/// A field over a device's bound: which field, how long it is, its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBound {
    /// The field, as [`ActionBounds`] names it (`uri`, `metadata_value`, ...).
    pub field: &'static str,
    /// Its length in this action (bytes, or entries).
    pub len: usize,
    /// The device's bound.
    pub max: u32,
}

impl ActionBounds {
    /// This build's bounds.
    pub const THIS_BUILD: ActionBounds = ActionBounds {
        uri: MAX_URI_LEN as u32,
        tag: MAX_TAG_LEN as u32,
        metadata_key: MAX_METADATA_KEY_LEN as u32,
        metadata_value: MAX_METADATA_VALUE_LEN as u32,
        metadata_entries: MAX_METADATA_ENTRIES as u32,
        wallet_signature: MAX_WALLET_SIGNATURE_LEN as u32,
        calldata: MAX_CALLDATA_LEN as u32,
        message: MAX_MESSAGE_LEN as u32,
        action: MAX_ACTION_LEN as u32,
    };

    /// Whether a device with these bounds can take `action`: the first field
    /// over its bound, if any. `encoded_len` is the action's canonical
    /// length. What a client checks before it asks a device built with
    /// smaller bounds than its own.
    pub fn check(&self, action: &Action, encoded_len: usize) -> Result<(), OverBound> {
        let over = |field: &'static str, len: usize, max: u32| {
            if len > max as usize { Err(OverBound { field, len, max }) } else { Ok(()) }
        };
        match action {
            Action::GenericTx(t) => over("calldata", t.data.len(), self.calldata)?,
            Action::LegacyGenericTx(t) => over("calldata", t.data.len(), self.calldata)?,
            Action::PersonalMessage(m) => over("message", m.message.len(), self.message)?,
            _ => {}
        }
        if let Some(call) = action.registry_call() {
            use RegistryCall as C;
            match call {
                C::RegisterWithUri { agent_uri } => over("uri", agent_uri.len(), self.uri)?,
                C::RegisterWithMetadata { agent_uri, metadata } => {
                    over("uri", agent_uri.len(), self.uri)?;
                    over("metadata_entries", metadata.len(), self.metadata_entries)?;
                    for e in metadata {
                        over("metadata_key", e.key.len(), self.metadata_key)?;
                        over("metadata_value", e.value.len(), self.metadata_value)?;
                    }
                }
                C::SetAgentUri { new_uri, .. } => over("uri", new_uri.len(), self.uri)?,
                C::SetMetadata { key, value, .. } => {
                    over("metadata_key", key.len(), self.metadata_key)?;
                    over("metadata_value", value.len(), self.metadata_value)?;
                }
                C::SetAgentWallet { signature, .. } => {
                    over("wallet_signature", signature.len(), self.wallet_signature)?;
                }
                C::GiveFeedback { tag1, tag2, endpoint, feedback_uri, .. } => {
                    over("tag", tag1.len(), self.tag)?;
                    over("tag", tag2.len(), self.tag)?;
                    over("uri", endpoint.len(), self.uri)?;
                    over("uri", feedback_uri.len(), self.uri)?;
                }
                C::AppendResponse { response_uri, .. } => {
                    over("uri", response_uri.len(), self.uri)?;
                }
                C::ValidationRequest { request_uri, .. } => {
                    over("uri", request_uri.len(), self.uri)?;
                }
                C::ValidationResponse { response_uri, tag, .. } => {
                    over("uri", response_uri.len(), self.uri)?;
                    over("tag", tag.len(), self.tag)?;
                }
                C::Register | C::UnsetAgentWallet { .. } | C::RevokeFeedback { .. } => {}
            }
        }
        over("action", encoded_len, self.action)
    }
}
