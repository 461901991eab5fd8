//! What the device answered, copied out of the session (whose responses
//! borrow from it until the next call), and evidence read chunk by chunk.

use tee_core::Address;
use tee_core::primitives::FixedBytes;
use tee_core::protocol::{AttestResponse, EvidencePart, GetEvidence, KeyOrigin, PublicKeyResponse};

use super::ClientError;
use super::session::Session;

/// A slot's key as `GetPublicKey` answered, copied out of the session.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) slot: u8,
    pub(crate) address: Address,
    pub(crate) public_key: FixedBytes<33>,
    pub(crate) origin: KeyOrigin,
    pub(crate) high_water: Option<u64>,
}

impl From<&PublicKeyResponse> for Key {
    fn from(pk: &PublicKeyResponse) -> Key {
        Key {
            slot: pk.slot,
            address: pk.address,
            public_key: pk.public_key,
            origin: pk.origin.clone(),
            high_water: pk.high_water,
        }
    }
}

/// An `Attest`/`AttestAction` response, copied out of the client.
pub(crate) struct Quoted {
    pub(crate) address: Address,
    pub(crate) report_data: FixedBytes<64>,
    pub(crate) quote: Vec<u8>,
}

impl From<AttestResponse<'_>> for Quoted {
    fn from(r: AttestResponse<'_>) -> Quoted {
        Quoted { address: r.address, report_data: r.report_data, quote: r.quote.to_vec() }
    }
}

/// Reads a whole piece of evidence, chunk by chunk.
pub(crate) fn fetch(s: &mut Session, slot: u8, part: EvidencePart) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    loop {
        let offset = u32::try_from(out.len())
            .map_err(|_| ClientError::Malformed(tee_core::Error::TooLong))?;
        let chunk = s.call(&GetEvidence { slot, part, offset })?;
        out.extend_from_slice(chunk.data);
        if chunk.data.is_empty() || out.len() >= chunk.total as usize {
            return Ok(out);
        }
    }
}
