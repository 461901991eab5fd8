//! The one canonical encoding of an action (postcard, through
//! [`crate::codec`]), with typed errors for unknown tags.

use strum::EnumCount;

use super::types::{Action, RegistryCall};
use crate::codec;
use crate::error::{Error, Result};

impl<'a> Action<'a> {
    /// Decodes the one canonical encoding of an action, its strings and
    /// byte fields borrowed from `bytes` (nothing is copied). How long a
    /// field may be is not the decoder's concern but the device's
    /// ([`super::ActionBounds::check`]).
    ///
    /// Errors are typed: [`Error::UnknownVariant`] for an action or registry
    /// call tag this version does not know, [`Error::TooLong`] for more
    /// metadata entries than an action holds, and the others of
    /// [`codec::decode`].
    #[inline(never)]
    pub fn decode(bytes: &'a [u8]) -> Result<Action<'a>> {
        check_tags(bytes)?;
        codec::decode(bytes)
    }

    /// Encodes into `buf` ([`Self::encoded_len`] bytes), or
    /// [`Error::BufferTooSmall`].
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
        codec::encode(self, buf)
    }

    /// The length of the canonical encoding.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        // Serializing into a size counter cannot fail for an action.
        codec::encoded_len(self).unwrap_or(usize::MAX)
    }
}

/// postcard reports an unknown enum tag exactly as it reports an over-long
/// heapless field (a serde custom error), so the action's two tags are read
/// here first and each problem gets its own error. Anything else wrong with
/// the bytes is left for postcard to report.
fn check_tags(bytes: &[u8]) -> Result<()> {
    fn varint(r: &mut &[u8]) -> Option<u64> {
        let mut v: u64 = 0;
        // Up to 19 bytes: the u128 fee fields.
        for i in 0..19 {
            let (&b, rest) = r.split_first()?;
            *r = rest;
            if i < 10 {
                v |= u64::from(b & 0x7f) << (7 * i);
            } else {
                v = u64::MAX;
            }
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut r = bytes;
    let Some(tag) = varint(&mut r) else { return Ok(()) };
    if tag >= Action::COUNT as u64 {
        return Err(Error::UnknownVariant);
    }
    // RegistryTx: TxParams (five varints); LegacyRegistryTx: LegacyTxParams
    // (four). Then the registry (20 bytes) and the call tag.
    let params = match tag {
        1 => 5,
        5 => 4,
        _ => 0,
    };
    if params > 0 {
        for _ in 0..params {
            if varint(&mut r).is_none() {
                return Ok(());
            }
        }
        let Some(mut rest) = r.get(20..) else { return Ok(()) };
        if varint(&mut rest).is_some_and(|call| call >= RegistryCall::COUNT as u64) {
            return Err(Error::UnknownVariant);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{LegacyRegistryTx, LegacyTxParams, RegistryTx, TxParams};
    use crate::primitives::{Address, B256};

    /// The tag positions `check_tags` relies on, and both tags one past the
    /// last variant refused as unknown, for both registry transaction types.
    #[test]
    fn unknown_tags() {
        let legacy_generic = Action::LegacyGenericTx(crate::action::LegacyGenericTx {
            tx: LegacyTxParams::default(),
            to: Address::ZERO,
            value: crate::primitives::U256::ZERO,
            data: &[],
        });
        let mut buf = [0u8; 128];
        assert_eq!(usize::from(legacy_generic.encode(&mut buf).unwrap()[0]), Action::COUNT - 1);
        let call = RegistryCall::ValidationResponse {
            request_hash: B256::ZERO,
            response: 0,
            response_uri: "",
            response_hash: B256::ZERO,
            tag: "",
        };
        let eip1559 = Action::RegistryTx(RegistryTx {
            tx: TxParams::default(),
            registry: Address::ZERO,
            call: call.clone(),
        });
        let legacy = Action::LegacyRegistryTx(LegacyRegistryTx {
            tx: LegacyTxParams::default(),
            registry: Address::ZERO,
            call,
        });
        // tag, five (four) one-byte zero varints, 20-byte address, call tag
        for (action, params) in [(eip1559, 5), (legacy, 4)] {
            let enc = action.encode(&mut buf).unwrap();
            let at = 1 + params + 20;
            assert_eq!(usize::from(enc[at]), RegistryCall::COUNT - 1);
            enc[at] = RegistryCall::COUNT as u8;
            assert_eq!(Action::decode(enc), Err(Error::UnknownVariant));
            enc[0] = Action::COUNT as u8;
            assert_eq!(Action::decode(enc), Err(Error::UnknownVariant));
        }
    }
}
