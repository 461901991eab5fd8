//! `0x03` GenerateKey (admin): a fresh random key in a slot.

use serde::{Deserialize, Serialize};

use super::{AdminAuth, Command, PublicKeyResponse};

/// `0x03` GenerateKey (admin): a fresh random key in a slot. The slot's
/// policy becomes deny-all; its high-water mark is kept. A slot that holds a
/// key is refused ([`DeviceError::SlotOccupied`](super::DeviceError)) unless
/// `replace` says to lose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateKey {
    /// Slot number.
    pub slot: u8,
    /// Replace the key the slot holds (it is lost).
    pub replace: bool,
    /// Admin authorization.
    pub auth: AdminAuth,
}

impl Command for GenerateKey {
    const CODE: u8 = 0x03;
    type Request<'a> = Self;
    type Response<'a> = PublicKeyResponse;
}

super::admin::admin_command!(GenerateKey);
