//! `0x01` DeviceInfo: what the device is and can do.

use heapless::String;
use serde::{Deserialize, Serialize};

use super::{BackendKind, Command};
use crate::action::ActionBounds;
use crate::primitives::{Address, B256};

/// `0x01` DeviceInfo: what the device is and can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo;

/// Response to [`DeviceInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfoResponse {
    /// [`PROTOCOL_VERSION`].
    pub protocol_version: u8,
    /// The firmware or crate version.
    pub firmware: String<32>,
    /// The backend.
    pub backend: BackendKind,
    /// [`capability`] bits.
    pub capabilities: u32,
    /// Number of key slots.
    pub slots: u8,
    /// Largest request frame this device accepts (encoded, delimiter excluded).
    pub max_request_frame: u32,
    /// The device's identity, bound into admin signatures.
    pub device_id: B256,
    /// The admin address allowed to change slots.
    pub admin: Address,
    /// The action field bounds the device was built with: an action with a
    /// longer field is refused ([`ActionBounds::check`] tells a client
    /// before it asks).
    pub bounds: ActionBounds,
}

impl Command for DeviceInfo {
    const CODE: u8 = 0x01;
    type Request<'a> = Self;
    type Response<'a> = DeviceInfoResponse;
}
