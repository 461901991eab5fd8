//! `0x02` GetPublicKey: a slot's key, its origin and its high-water mark.

use heapless::String;
use serde::{Deserialize, Serialize};

use super::{Command, FixedBytes};
use crate::limits::MAX_PATH_LEN;
use crate::primitives::Address;

/// `0x02` GetPublicKey: a slot's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPublicKey {
    /// Slot number.
    pub slot: u8,
}

/// How a slot's key came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KeyOrigin {
    /// Generated on the device from its RNG.
    Generated,
    /// Derived by the backend from this path (dstack `GetKey`).
    Derived(String<MAX_PATH_LEN>),
}

/// A slot's public key and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyResponse {
    /// Slot number.
    pub slot: u8,
    /// SEC1 compressed public key.
    pub public_key: FixedBytes<33>,
    /// Ethereum address.
    pub address: Address,
    /// Where the key came from.
    pub origin: KeyOrigin,
    /// The slot's anti-replay high-water mark, if it signed anything.
    pub high_water: Option<u64>,
}

impl Command for GetPublicKey {
    const CODE: u8 = 0x02;
    type Request<'a> = Self;
    type Response<'a> = PublicKeyResponse;
}
