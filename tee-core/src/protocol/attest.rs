//! `0x07` Attest: a TDX quote binding a slot's address to a challenge.

use serde::{Deserialize, Serialize};

use super::{Command, FixedBytes};
use crate::primitives::{Address, B256};

/// `0x07` Attest: a TDX quote whose `report_data` binds the slot's address
/// to the verifier's challenge ([`crate::binding`]); at
/// [`super::DEVICE_SLOT`], the device's identity key's address, for
/// purpose [`crate::binding::Purpose::Device`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attest {
    /// Slot number.
    pub slot: u8,
    /// The verifier's fresh challenge (or an action digest).
    pub challenge: B256,
}

/// Response to [`Attest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestResponse<'a> {
    /// The slot's address.
    pub address: Address,
    /// The 64 bytes bound into the quote.
    pub report_data: FixedBytes<64>,
    /// The quote, as the backend produced it.
    #[serde(borrow)]
    pub quote: &'a [u8],
}

impl Command for Attest {
    const CODE: u8 = 0x07;
    type Request<'a> = Self;
    type Response<'a> = AttestResponse<'a>;
}
