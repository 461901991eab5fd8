//! `0x04` DeriveKey (admin): the backend's key for a path in a slot.

use heapless::String;
use serde::{Deserialize, Serialize};

use super::{AdminAuth, Command, PublicKeyResponse};
use crate::limits::MAX_PATH_LEN;

/// `0x04` DeriveKey (admin): the backend's key for `path` in a slot. A slot
/// that holds another key is refused
/// ([`DeviceError::SlotOccupied`](super::DeviceError)) unless `replace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeriveKey {
    /// Slot number.
    pub slot: u8,
    /// Derivation path (dstack `GetKey` path).
    pub path: String<MAX_PATH_LEN>,
    /// Replace the key the slot holds when it is not this path's (it is
    /// lost); deriving the same path again gives the same key and needs no
    /// `replace`.
    pub replace: bool,
    /// Admin authorization.
    pub auth: AdminAuth,
}

impl Command for DeriveKey {
    const CODE: u8 = 0x04;
    type Request<'a> = Self;
    type Response<'a> = PublicKeyResponse;
}

super::admin::admin_command!(DeriveKey);
