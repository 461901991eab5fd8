//! The one canonical encoding of an action (postcard, through
//! [`crate::codec`]), with typed errors for unknown tags.

use strum::EnumCount;

use super::types::{Action, Envelope, RegistryCall, TokenCall, TxBody};
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
    let unknown = |tag: u64, count: usize| tag >= count as u64;
    let mut r = bytes;
    let Some(tag) = varint(&mut r) else { return Ok(()) };
    if unknown(tag, Action::COUNT) {
        return Err(Error::UnknownVariant);
    }
    // An EIP-3009 authorization: its kind's tag first.
    if tag == 5 {
        return match varint(&mut r) {
            Some(kind) if unknown(kind, 2) => Err(Error::UnknownVariant),
            _ => Ok(()),
        };
    }
    // A transaction: the envelope's tag and its varints (EIP-1559 five,
    // legacy four), the body's tag, and for a registry or token body the
    // contract (20 bytes) and the call's tag.
    if tag != 1 {
        return Ok(());
    }
    let Some(envelope) = varint(&mut r) else { return Ok(()) };
    let params = match envelope {
        0 => 5,
        1 => 4,
        _ => return Err(Error::UnknownVariant),
    };
    debug_assert_eq!(Envelope::COUNT, 2);
    for _ in 0..params {
        if varint(&mut r).is_none() {
            return Ok(());
        }
    }
    let Some(body) = varint(&mut r) else { return Ok(()) };
    if unknown(body, TxBody::COUNT) {
        return Err(Error::UnknownVariant);
    }
    let calls = match body {
        0 => RegistryCall::COUNT,
        2 => TokenCall::COUNT,
        _ => return Ok(()),
    };
    let Some(mut rest) = r.get(20..) else { return Ok(()) };
    if varint(&mut rest).is_some_and(|call| unknown(call, calls)) {
        return Err(Error::UnknownVariant);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{
        AuthorizationKind, GenericTx, LegacyTxParams, RegistryTx, TokenAuthorization, TokenTx,
        Transaction, TxParams,
    };
    use crate::primitives::{Address, B256, U256};

    /// The tag positions `check_tags` relies on, and every tag one past the
    /// last variant refused as unknown, under both envelopes.
    #[test]
    fn unknown_tags() {
        let call = RegistryCall::ValidationResponse {
            request_hash: B256::ZERO,
            response: 0,
            response_uri: "",
            response_hash: B256::ZERO,
            tag: "",
        };
        let registry = TxBody::Registry(RegistryTx { registry: Address::ZERO, call });
        let generic =
            TxBody::Generic(GenericTx { to: Address::ZERO, value: U256::ZERO, data: &[] });
        let call =
            TokenCall::TransferFrom { from: Address::ZERO, to: Address::ZERO, amount: U256::ZERO };
        let token = TxBody::Token(TokenTx { token: Address::ZERO, call });
        let mut buf = [0u8; 256];
        // The last action variant's tag, and its kind's.
        let last = Action::TokenAuthorization(TokenAuthorization {
            kind: AuthorizationKind::Receive,
            chain_id: 0,
            token: Address::ZERO,
            name: "",
            version: "",
            from: Address::ZERO,
            to: Address::ZERO,
            value: U256::ZERO,
            valid_after: 0,
            valid_before: 0,
            nonce: B256::ZERO,
        });
        let enc = last.encode(&mut buf).unwrap().to_vec();
        assert_eq!((usize::from(enc[0]), enc[1]), (Action::COUNT - 1, 1));
        let mut e = enc.clone();
        e[1] = 2;
        assert_eq!(Action::decode(&e), Err(Error::UnknownVariant));
        // Each envelope with its tag and its number of varints.
        let envelopes = [
            (Envelope::Eip1559(TxParams::default()), 0, 5),
            (Envelope::Legacy(LegacyTxParams::default()), 1, 4),
        ];
        for (envelope, envelope_tag, params) in envelopes {
            for (body_tag, body) in
                [registry.clone(), generic.clone(), token.clone()].into_iter().enumerate()
            {
                let action = Action::Transaction(Transaction { envelope, body });
                let enc = action.encode(&mut buf).unwrap();
                // action tag, envelope tag, one-byte zero varints, body tag
                let (at_envelope, at_body) = (1, 2 + params);
                assert_eq!(enc[0], 1);
                assert_eq!(enc[at_envelope], envelope_tag);
                assert_eq!(usize::from(enc[at_body]), body_tag);
                let wrong = |at: usize, tag: usize| {
                    let mut e = enc.to_vec();
                    e[at] = tag as u8;
                    assert_eq!(Action::decode(&e), Err(Error::UnknownVariant), "tag {tag} at {at}");
                };
                wrong(0, Action::COUNT);
                wrong(at_envelope, Envelope::COUNT);
                wrong(at_body, TxBody::COUNT);
                let at_call = at_body + 1 + 20;
                if body_tag == 0 {
                    assert_eq!(usize::from(enc[at_call]), RegistryCall::COUNT - 1);
                    wrong(at_call, RegistryCall::COUNT);
                } else if body_tag == 2 {
                    assert_eq!(usize::from(enc[at_call]), TokenCall::COUNT - 1);
                    wrong(at_call, TokenCall::COUNT);
                }
            }
        }
    }
}
