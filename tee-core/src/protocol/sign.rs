//! `0x06` Sign: sign an action with a slot's key at a sequence.

use serde::{Deserialize, Serialize};

use super::Command;
use crate::action::Action;
use crate::codec;
use crate::error::{Error, Result};
use crate::primitives::B256;
use crate::signer::Signature;

/// `0x06` Sign: sign `action` with a slot's key at `sequence`. The action
/// borrows its fields from the body it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sign<'a> {
    /// Slot number.
    pub slot: u8,
    /// Anti-replay sequence: above the slot's high-water mark, or equal to it
    /// for an exact retry of the last signed action.
    pub sequence: u64,
    /// What to sign.
    #[serde(borrow)]
    pub action: Action<'a>,
}

/// Response to [`Sign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    /// The signature.
    pub signature: Signature,
    /// The digest signed.
    pub digest: B256,
    /// The sequence now committed as the slot's high-water mark.
    pub sequence: u64,
}

impl Command for Sign<'_> {
    const CODE: u8 = 0x06;
    type Request<'a> = Sign<'a>;
    type Response<'a> = SignResponse;

    /// The action is the last field; it goes through [`Action::decode`] so an
    /// unknown action tag is reported as such.
    fn decode(body: &[u8]) -> Result<Sign<'_>> {
        let ((slot, sequence), rest) = postcard::take_from_bytes::<(u8, u64)>(body)?;
        let prefix = body.get(..body.len() - rest.len()).ok_or(Error::Malformed)?;
        if !codec::encodes_to(&(slot, sequence), prefix) {
            return Err(Error::NonCanonical);
        }
        Ok(Sign { slot, sequence, action: Action::decode(rest)? })
    }
}
