//! The provider's attestations: a signature's (`AttestAction`), a slot's
//! or the signer's for a challenge (`Attest`), each completed with its
//! event log and key chain, and their verification.

use tee_core::Action;
use tee_core::B256;
use tee_core::primitives::FixedBytes;
use tee_core::protocol::{Attest, AttestAction, DEVICE_SLOT, EvidencePart, KeyOrigin};
use tee_verify::{Attestation, Bound, Report, TeeSignature};

use super::{PROVIDER_NAME, PhalaDstackProvider, ProviderError, Signed, now_secs};
use crate::answers::{Key, Quoted, fetch};
use crate::session::Session;

impl PhalaDstackProvider {
    /// Attests `signed` ([`PhalaDstackProvider::sign_only`]'s) on `s`.
    pub(super) fn attest_signed(
        &self,
        s: &mut Session,
        slot: u8,
        action: &Action<'_>,
        (signed, pk): (Signed, Key),
    ) -> Result<TeeSignature, ProviderError> {
        let request = AttestAction { slot, sequence: signed.sequence, digest: signed.digest };
        let bound = Bound::ActionDigest(signed.digest);
        // The sequence is spent once signed: a failure from here on says
        // which, so the caller retries there (the exact retry gets the same
        // signature) instead of losing it.
        let attestation = s
            .call(&request)
            .map_err(|e| self.err(e))
            .map(Quoted::from)
            .and_then(|quote| self.attestation(s, slot, quote, bound, Some(&pk.origin)))
            .map_err(|e| ProviderError::AttestationFailed {
                sequence: signed.sequence,
                source: Box::new(e),
            })?;
        let (raw_transaction, transaction_hash) = signed.transaction(action)?.unzip();
        Ok(TeeSignature {
            provider: PROVIDER_NAME.to_owned(),
            slot,
            sequence: signed.sequence,
            digest: signed.digest,
            // `to_bytes` gives v = 27 + y parity, as Ethereum tools take it.
            signature: FixedBytes(signed.signature.to_bytes()),
            address: attestation.address,
            raw_transaction,
            transaction_hash,
            attestation,
        })
    }

    /// `get_attestation_report`: a quote binding `slot`'s address to
    /// `challenge`, with the event log and key chain. At [`DEVICE_SLOT`],
    /// the signer's identity key's address (bound for purpose "device").
    pub fn get_attestation_report(
        &self,
        slot: u8,
        challenge: B256,
    ) -> Result<Attestation, ProviderError> {
        self.attest_in(&mut self.session(), slot, challenge, None)
    }

    pub(super) fn attest_in(
        &self,
        s: &mut Session,
        slot: u8,
        challenge: B256,
        origin: Option<&KeyOrigin>,
    ) -> Result<Attestation, ProviderError> {
        let quote = Quoted::from(s.call(&Attest { slot, challenge }).map_err(|e| self.err(e))?);
        let bound = if slot == DEVICE_SLOT {
            Bound::Device(challenge)
        } else {
            Bound::Challenge(challenge)
        };
        self.attestation(s, slot, quote, bound, origin)
    }

    /// `verify_attestation`: every check of the verifier on the signature's
    /// attestation, at unix time `now` (`None`: the system clock), plus that
    /// the signature recovers to the attested address.
    #[must_use]
    pub fn verify_attestation(&self, signature: &TeeSignature, now: Option<u64>) -> Report {
        self.verifier.verify_tee_signature(signature, now.unwrap_or_else(now_secs))
    }

    /// Completes an `Attest`/`AttestAction` response with its evidence.
    /// `origin` is the slot key's, if the caller knows it.
    fn attestation(
        &self,
        s: &mut Session,
        slot: u8,
        quoted: Quoted,
        bound: Bound,
        origin: Option<&KeyOrigin>,
    ) -> Result<Attestation, ProviderError> {
        let Quoted { address, report_data, quote } = quoted;
        let log = fetch(s, slot, EvidencePart::EventLog).map_err(|e| self.err(e))?;
        let event_log = serde_json::from_slice(&log)
            .map_err(|e| ProviderError::Evidence { what: "event log", message: e.to_string() })?;
        // The identity key has no key chain; a slot's derived key has.
        let derived = match (slot, origin) {
            (DEVICE_SLOT, _) => false,
            (_, Some(origin)) => matches!(origin, KeyOrigin::Derived(_)),
            (slot, None) => matches!(self.public_key(s, slot)?.origin, KeyOrigin::Derived(_)),
        };
        let key_chain = match derived {
            false => None,
            true => {
                let chain = fetch(s, slot, EvidencePart::KeyChain).map_err(|e| self.err(e))?;
                Some(serde_json::from_slice(&chain).map_err(|e| ProviderError::Evidence {
                    what: "key chain",
                    message: e.to_string(),
                })?)
            }
        };
        let backend = s.info().map_err(|e| self.err(e))?.backend;
        Ok(Attestation {
            provider: PROVIDER_NAME.to_owned(),
            address,
            bound,
            report_data,
            quote,
            event_log,
            key_chain,
            backend: format!("{backend:?}"),
        })
    }
}
