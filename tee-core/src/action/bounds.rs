//! A device's field bounds (`DeviceInfo` reports them), and the check the
//! device makes of every action it is asked to sign or a client makes
//! before it asks: beside the action types it reads.

use serde::{Deserialize, Serialize};

use super::{Action, RegistryCall, Transaction, TxBody};
use crate::limits::{
    MAX_METADATA_ENTRIES, MAX_METADATA_KEY_LEN, MAX_TAG_LEN, MAX_WALLET_SIGNATURE_LEN, action_len,
};

/// How long each field of an action may be on one device: a run-time value
/// the device is opened with ([`crate::device::DeviceConfig`]), reported in
/// `DeviceInfo`. Lengths are bytes (entries for `metadata_entries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ActionBounds {
    /// `agentURI`, `newURI`, `endpoint`, `feedbackURI`, `responseURI`, `requestURI`.
    pub uri: u32,
    /// `tag1`, `tag2`, `tag`, and an EIP-3009 token domain's `name` and `version`.
    pub tag: u32,
    /// `metadataKey`.
    pub metadata_key: u32,
    /// `metadataValue`.
    pub metadata_value: u32,
    /// Entries of `register(string,(string,bytes)[])`.
    pub metadata_entries: u32,
    /// `setAgentWallet`'s `signature`.
    pub wallet_signature: u32,
    /// A generic transaction's calldata.
    pub calldata: u32,
    /// A `personal_sign` message.
    pub message: u32,
    /// The canonical encoding of the whole action (from the others:
    /// [`action_len`]).
    pub action: u32,
}

/// A field an [`ActionBounds`] bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BoundField {
    /// [`ActionBounds::uri`].
    Uri,
    /// [`ActionBounds::tag`].
    Tag,
    /// [`ActionBounds::metadata_key`].
    MetadataKey,
    /// [`ActionBounds::metadata_value`].
    MetadataValue,
    /// [`ActionBounds::metadata_entries`].
    MetadataEntries,
    /// [`ActionBounds::wallet_signature`].
    WalletSignature,
    /// [`ActionBounds::calldata`].
    Calldata,
    /// [`ActionBounds::message`].
    Message,
    /// [`ActionBounds::action`].
    Action,
}

impl BoundField {
    /// The field's name, as [`ActionBounds`] names it (`uri`, `metadata_value`, ...).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            BoundField::Uri => "uri",
            BoundField::Tag => "tag",
            BoundField::MetadataKey => "metadata_key",
            BoundField::MetadataValue => "metadata_value",
            BoundField::MetadataEntries => "metadata_entries",
            BoundField::WalletSignature => "wallet_signature",
            BoundField::Calldata => "calldata",
            BoundField::Message => "message",
            BoundField::Action => "action",
        }
    }
}

impl core::fmt::Display for BoundField {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A field over a device's bound: which field, how long it is, its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OverBound {
    /// The field.
    pub field: BoundField,
    /// Its length in this action (bytes, or entries), saturated at `u32::MAX`.
    pub len: u32,
    /// The device's bound.
    pub max: u32,
}

impl core::fmt::Display for OverBound {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} is {} long, over the device's bound of {}", self.field, self.len, self.max)
    }
}

impl ActionBounds {
    /// A microcontroller's bounds: what ERC-8004 agents usually send (256-byte
    /// URIs, 128-byte metadata values, 512 bytes of calldata or message).
    pub const MCU: ActionBounds = ActionBounds::new(256, 128, 512, 512);

    /// The std signer's bounds: 64 KiB URIs and messages, 16 KiB metadata
    /// values, 128 KiB calldata (an attestation bundle fits a `data:` URI).
    pub const HOST: ActionBounds = ActionBounds::new(64 * 1024, 16 * 1024, 128 * 1024, 64 * 1024);

    /// Bounds with these variable fields; tags, metadata keys and entries
    /// and wallet signatures take [`crate::limits`]' fixed bounds, and the
    /// action's bound follows from the rest.
    #[must_use]
    pub const fn new(uri: u32, metadata_value: u32, calldata: u32, message: u32) -> ActionBounds {
        let mut b = ActionBounds {
            uri,
            tag: MAX_TAG_LEN as u32,
            metadata_key: MAX_METADATA_KEY_LEN as u32,
            metadata_value,
            metadata_entries: MAX_METADATA_ENTRIES as u32,
            wallet_signature: MAX_WALLET_SIGNATURE_LEN as u32,
            calldata,
            message,
            action: 0,
        };
        b.action = action_len(&b) as u32;
        b
    }

    /// Whether a device with these bounds takes `action`: the first field
    /// over its bound, if any. `encoded_len` is the action's canonical
    /// length. What the device checks of every action it is asked about,
    /// and a client before it asks.
    pub fn check(&self, action: &Action<'_>, encoded_len: usize) -> Result<(), OverBound> {
        let over = |field: BoundField, len: usize, max: u32| {
            if len > max as usize {
                let len = u32::try_from(len).unwrap_or(u32::MAX);
                Err(OverBound { field, len, max })
            } else {
                Ok(())
            }
        };
        use BoundField as F;
        over(F::Action, encoded_len, self.action)?;
        match action {
            Action::Transaction(Transaction { body: TxBody::Generic(t), .. }) => {
                over(F::Calldata, t.data.len(), self.calldata)?;
            }
            Action::PersonalMessage(m) => over(F::Message, m.message.len(), self.message)?,
            // A token's domain name and version are bounded as tags.
            Action::TokenAuthorization(a) => {
                over(F::Tag, a.name.len(), self.tag)?;
                over(F::Tag, a.version.len(), self.tag)?;
            }
            _ => {}
        }
        if let Some(call) = action.registry_call() {
            use RegistryCall as C;
            match call {
                C::RegisterWithUri { agent_uri } => over(F::Uri, agent_uri.len(), self.uri)?,
                C::RegisterWithMetadata { agent_uri, metadata } => {
                    over(F::Uri, agent_uri.len(), self.uri)?;
                    over(F::MetadataEntries, metadata.len(), self.metadata_entries)?;
                    for e in metadata {
                        over(F::MetadataKey, e.key.len(), self.metadata_key)?;
                        over(F::MetadataValue, e.value.len(), self.metadata_value)?;
                    }
                }
                C::SetAgentUri { new_uri, .. } => over(F::Uri, new_uri.len(), self.uri)?,
                C::SetMetadata { key, value, .. } => {
                    over(F::MetadataKey, key.len(), self.metadata_key)?;
                    over(F::MetadataValue, value.len(), self.metadata_value)?;
                }
                C::SetAgentWallet { signature, .. } => {
                    over(F::WalletSignature, signature.len(), self.wallet_signature)?;
                }
                C::GiveFeedback { tag1, tag2, endpoint, feedback_uri, .. } => {
                    over(F::Tag, tag1.len(), self.tag)?;
                    over(F::Tag, tag2.len(), self.tag)?;
                    over(F::Uri, endpoint.len(), self.uri)?;
                    over(F::Uri, feedback_uri.len(), self.uri)?;
                }
                C::AppendResponse { response_uri, .. } => {
                    over(F::Uri, response_uri.len(), self.uri)?;
                }
                C::ValidationRequest { request_uri, .. } => {
                    over(F::Uri, request_uri.len(), self.uri)?;
                }
                C::ValidationResponse { response_uri, tag, .. } => {
                    over(F::Uri, response_uri.len(), self.uri)?;
                    over(F::Tag, tag.len(), self.tag)?;
                }
                C::Register | C::UnsetAgentWallet { .. } | C::RevokeFeedback { .. } => {}
            }
        }
        Ok(())
    }
}
