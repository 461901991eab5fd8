//! Quotes and evidence: `Attest` binds a slot's address to a verifier's
//! challenge, `AttestAction` to the digest the slot signed last (and only
//! that one), `GetEvidence` pages out what a verifier needs besides the
//! quote. Every quote is audited.

use super::backend::{Backend, EvidenceRef};
use super::dispatch::Handle;
use super::slot::{LoadedKey, retry_commitment};
use super::{Device, map_backend};
use crate::binding::{self, Purpose};
use crate::limits::MAX_EVIDENCE_CHUNK;
use crate::primitives::{Address, B256};
use crate::protocol::{
    Attest, AttestAction, AttestResponse, Command, DeviceError, EvidenceChunk, EvidencePart,
    FixedBytes, GetEvidence, KeyOrigin, Outcome,
};

impl<B: Backend, const SLOTS: usize> Handle<Attest> for Device<B, SLOTS> {
    #[inline(never)]
    fn run(&mut self, req: &Attest, _: &[u8]) -> Result<AttestResponse<'_>, DeviceError> {
        let address = self
            .slot(req.slot)?
            .key
            .as_ref()
            .map(|k| k.key.address())
            .ok_or(DeviceError::SlotEmpty)?;
        self.quote_for(Attest::CODE, req.slot, 0, address, Purpose::Challenge, &req.challenge)
    }
}

impl<B: Backend, const SLOTS: usize> Handle<AttestAction> for Device<B, SLOTS> {
    #[inline(never)]
    fn run(&mut self, req: &AttestAction, _: &[u8]) -> Result<AttestResponse<'_>, DeviceError> {
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
        let address = match checked {
            Ok(a) => a,
            Err(e) => {
                let outcome = Outcome::Refused(e);
                self.audit.append(AttestAction::CODE, req.slot, req.sequence, req.digest, outcome);
                return Err(e);
            }
        };
        let (code, slot, seq) = (AttestAction::CODE, req.slot, req.sequence);
        self.quote_for(code, slot, seq, address, Purpose::ActionDigest, &req.digest)
    }
}

impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
    /// A quote binding `address` to `value` for `purpose`; audited.
    fn quote_for(
        &mut self,
        code: u8,
        slot: u8,
        sequence: u64,
        address: Address,
        purpose: Purpose,
        value: &B256,
    ) -> Result<AttestResponse<'_>, DeviceError> {
        let report_data = binding::bind(&address, purpose, value);
        let Device { backend, audit, .. } = self;
        let quote = backend.quote(&report_data).map_err(map_backend);
        let outcome = quote.as_ref().map_or_else(|e| Outcome::Refused(*e), |_| Outcome::Ok);
        audit.append(code, slot, sequence, *value, outcome);
        Ok(AttestResponse { address, report_data: FixedBytes(report_data), quote: quote? })
    }
}

impl<B: Backend, const SLOTS: usize> Handle<GetEvidence> for Device<B, SLOTS> {
    #[inline(never)]
    fn run(&mut self, req: &GetEvidence, _: &[u8]) -> Result<EvidenceChunk<'_>, DeviceError> {
        let Device { backend, slots, .. } = self;
        let slot = slots.get(usize::from(req.slot)).ok_or(DeviceError::NoSuchSlot)?;
        let which = match req.part {
            EvidencePart::EventLog => EvidenceRef::EventLog,
            EvidencePart::KeyChain => match &slot.key {
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
