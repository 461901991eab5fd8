//! Quotes and evidence: `Attest` binds a slot's address to a verifier's
//! challenge, `AttestAction` to the digest the slot signed last (and only
//! that one), `GetEvidence` pages out what a verifier needs besides the
//! quote. Every quote is audited. A quote can be made in two steps
//! ([`PendingQuote`]), so a host gets it from its TEE without holding the
//! device.

use super::backend::{Backend, BackendError, EvidenceRef};
use super::reply::{Handle, Reply, respond};
use super::slot::{LoadedKey, retry_commitment};
use super::{Device, map_backend};
use crate::binding::{self, Purpose};
use crate::frame::Header;
use crate::limits::MAX_EVIDENCE_CHUNK;
use crate::primitives::{Address, B256};
use crate::protocol::{
    Attest, AttestAction, AttestResponse, Command, DEVICE_SLOT, DeviceError, EvidenceChunk,
    EvidencePart, FixedBytes, GetEvidence, KeyOrigin, Outcome,
};

/// A quote the device has decided to make: what it binds, and what the
/// audit entry will say.
pub(super) struct Prepared {
    code: u8,
    slot: u8,
    sequence: u64,
    address: Address,
    value: B256,
    report_data: [u8; 64],
}

/// A request that needs a quote before the device can answer it
/// ([`Device::begin`]). The caller gets the quote over [`report_data`]
/// from its TEE, outside any lock it holds on the device, and hands it to
/// [`Device::finish_quote`], which audits it and writes the response.
///
/// [`report_data`]: PendingQuote::report_data
#[must_use = "the request is answered only by Device::finish_quote"]
#[derive(Debug)]
pub struct PendingQuote {
    pub(super) header: Header,
    pub(super) prepared: Prepared,
}

impl core::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Prepared")
            .field("code", &self.code)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl PendingQuote {
    /// The 64 bytes the quote must carry.
    #[must_use]
    pub fn report_data(&self) -> &[u8; 64] {
        &self.prepared.report_data
    }
}

impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
    /// `Attest`: the slot's address bound to the challenge.
    pub(super) fn prepare_attest(&mut self, req: &Attest) -> Result<Prepared, DeviceError> {
        if req.slot == DEVICE_SLOT {
            let address = self.identity().ok_or(DeviceError::Unsupported)?;
            return Ok(prepared(
                Attest::CODE,
                req.slot,
                0,
                address,
                Purpose::Device,
                &req.challenge,
            ));
        }
        let address = self
            .slot(req.slot)?
            .key
            .as_ref()
            .map(|k| k.key.address())
            .ok_or(DeviceError::SlotEmpty)?;
        Ok(prepared(Attest::CODE, req.slot, 0, address, Purpose::Challenge, &req.challenge))
    }

    /// `AttestAction`: the slot's address bound to the digest it signed
    /// last, and only that one; a refusal is audited.
    pub(super) fn prepare_attest_action(
        &mut self,
        req: &AttestAction,
    ) -> Result<Prepared, DeviceError> {
        let checked = (|| {
            let slot = self.slot(req.slot)?;
            let address =
                slot.key.as_ref().map(|k| k.key.address()).ok_or(DeviceError::SlotEmpty)?;
            match slot.high_water {
                Some(hw)
                    if hw.value == req.sequence
                        && hw.digest == retry_commitment(&address, &req.digest) =>
                {
                    Ok(address)
                }
                _ => Err(DeviceError::NotLastSigned),
            }
        })();
        match checked {
            Ok(address) => Ok(prepared(
                AttestAction::CODE,
                req.slot,
                req.sequence,
                address,
                Purpose::ActionDigest,
                &req.digest,
            )),
            Err(e) => {
                let outcome = Outcome::Refused(e);
                self.log(AttestAction::CODE, req.slot, req.sequence, req.digest, outcome, false);
                Err(e)
            }
        }
    }

    /// Answers a [`PendingQuote`] with the quote the caller got (or the
    /// reason it got none): audits it and writes the response frame into
    /// `out`; returns its length.
    pub fn finish_quote(
        &mut self,
        pending: PendingQuote,
        quote: Result<&[u8], BackendError>,
        out: &mut [u8],
    ) -> Reply {
        self.sync_audit();
        let p = &pending.prepared;
        let quote = quote.map_err(map_backend);
        let outcome = quote.as_ref().map_or_else(|e| Outcome::Refused(*e), |_| Outcome::Ok);
        self.log(p.code, p.slot, p.sequence, p.value, outcome, false);
        let len = respond(&pending.header, answer(p, quote), out);
        self.reply(pending.header, len)
    }

    /// Answers a [`PendingQuote`] with a quote from the device's own
    /// backend ([`QuoteSource::quote`](super::QuoteSource::quote)).
    pub fn finish_quote_with_backend(&mut self, pending: PendingQuote, out: &mut [u8]) -> Reply {
        let r = self.quote_inline(&pending.prepared);
        let len = respond(&pending.header, r, out);
        self.reply(pending.header, len)
    }

    /// Gets the quote from the backend itself and answers.
    pub(super) fn quote_inline(&mut self, p: &Prepared) -> Result<AttestResponse<'_>, DeviceError> {
        self.sync_audit();
        let Device { backend, audit, unsynced, .. } = self;
        let quote = backend.quote(&p.report_data).map_err(map_backend);
        // The backend is lent to the quote: the ring takes the entry now,
        // the backend before the next request.
        let outcome = quote.as_ref().map_or_else(|e| Outcome::Refused(*e), |_| Outcome::Ok);
        let (entry, prev) = audit.next(p.code, p.slot, p.sequence, p.value, outcome);
        audit.push(entry);
        *unsynced = Some((entry, prev));
        answer(p, quote)
    }
}

fn prepared(
    code: u8,
    slot: u8,
    sequence: u64,
    address: Address,
    purpose: Purpose,
    value: &B256,
) -> Prepared {
    let report_data = binding::bind(&address, purpose, value);
    Prepared { code, slot, sequence, address, value: *value, report_data }
}

/// The response to a prepared quote.
fn answer<'q>(
    p: &Prepared,
    quote: Result<&'q [u8], DeviceError>,
) -> Result<AttestResponse<'q>, DeviceError> {
    Ok(AttestResponse { address: p.address, report_data: FixedBytes(p.report_data), quote: quote? })
}

impl<B: Backend, const SLOTS: usize> Handle<Attest> for Device<B, SLOTS> {
    #[inline(never)]
    fn run(&mut self, req: &Attest, _: &[u8]) -> Result<AttestResponse<'_>, DeviceError> {
        let p = self.prepare_attest(req)?;
        self.quote_inline(&p)
    }
}

impl<B: Backend, const SLOTS: usize> Handle<AttestAction> for Device<B, SLOTS> {
    #[inline(never)]
    fn run(&mut self, req: &AttestAction, _: &[u8]) -> Result<AttestResponse<'_>, DeviceError> {
        let p = self.prepare_attest_action(req)?;
        self.quote_inline(&p)
    }
}

impl<B: Backend, const SLOTS: usize> Handle<GetEvidence> for Device<B, SLOTS> {
    #[inline(never)]
    fn run(&mut self, req: &GetEvidence, _: &[u8]) -> Result<EvidenceChunk<'_>, DeviceError> {
        let Device { backend, slots, .. } = self;
        // The event log is the device's, for any slot and the device's own
        // (identity) attestation; the identity key has no key chain.
        let slot = match slots.get(usize::from(req.slot)) {
            Some(slot) => Some(slot),
            None if req.slot == DEVICE_SLOT => None,
            None => return Err(DeviceError::NoSuchSlot),
        };
        let which = match req.part {
            EvidencePart::EventLog => EvidenceRef::EventLog,
            EvidencePart::KeyChain => match slot.and_then(|s| s.key.as_ref()) {
                None if slot.is_none() => return Err(DeviceError::Unsupported),
                None => return Err(DeviceError::SlotEmpty),
                // A generated key has no chain.
                Some(LoadedKey { origin: KeyOrigin::Generated, .. }) => {
                    return Err(DeviceError::Unsupported);
                }
                Some(LoadedKey { origin: KeyOrigin::Derived(path), .. }) => {
                    EvidenceRef::KeyChain(path.as_str())
                }
            },
        };
        let all = backend.evidence(which).map_err(map_backend)?;
        let total = u32::try_from(all.len()).map_err(|_| DeviceError::Backend)?;
        let start = usize::try_from(req.offset).unwrap_or(usize::MAX).min(all.len());
        let data = all.get(start..).unwrap_or(&[]);
        let data = data.get(..MAX_EVIDENCE_CHUNK).unwrap_or(data);
        Ok(EvidenceChunk { total, data })
    }
}
