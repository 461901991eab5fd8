//! The TEE provider interface agent SDKs expect (ChaosChain's `TEEProvider`
//! and its `phala-dstack` provider: `provider_name`, `is_available`,
//! `generate_key`, `sign`, `verify_attestation`, `get_attestation_report`),
//! over the signer's protocol.
//!
//! What differs from the usual dstack provider, on purpose: the private key
//! never reaches the agent (the signer holds it; `generate_key` returns the
//! public side), `sign` takes a typed ERC-8004 [`Action`] that the signer's
//! policy can read rather than an opaque hash, each signature comes with a
//! quote bound to that action's digest (made only after the signer signed
//! it), and `verify_attestation` runs every check of [`Verifier`] (binding,
//! measurements, event log, DCAP, the dstack key chain) and says which
//! passed rather than trusting that a quote exists.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tee_core::client::decode_response;
use tee_core::protocol::{
    Attest, AttestAction, AttestResponse, BackendKind, DeriveKey, DeviceError, DeviceInfo,
    DeviceInfoResponse, EvidencePart, GetEvidence, GetPublicKey, KeyOrigin, MAX_PATH_LEN, Policy,
    PublicKeyResponse, SetPolicy, Sign, capability,
};
use tee_core::{Action, Address, B256, Signature, SigningKey, heapless};

use crate::client::{Client, ClientError};
use crate::endpoint::{Endpoint, Stream, connect};
use crate::eventlog::Event;
use crate::hexser::{HexBytes, hex_vec};
use crate::verify::{Evidence, Expected, KeyChain, Report, Verifier};

/// The provider's name, as agent SDKs know it.
pub const PROVIDER_NAME: &str = "phala-dstack";

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The signer could not be reached or answered nonsense.
    #[error("signer at {endpoint}: {source}")]
    Client {
        /// Where.
        endpoint: String,
        /// Why.
        source: ClientError,
    },
    /// The signer refused, with its typed reason.
    #[error("the signer refused: {0:?}")]
    Refused(DeviceError),
    /// Generating a key needs the admin key, which this provider lacks.
    #[error("generate_key needs the signer's admin key (PhalaDstackProvider::with_admin)")]
    NotAdmin,
    /// A derivation path longer than the signer takes.
    #[error("derivation path is longer than {MAX_PATH_LEN} bytes")]
    PathTooLong,
    /// A message longer than a `personal_sign` action takes.
    #[error("message is longer than {} bytes", tee_core::limits::MAX_MESSAGE_LEN)]
    MessageTooLong,
    /// Evidence that does not parse.
    #[error("the signer's {what} does not parse: {message}")]
    Evidence {
        /// Which evidence.
        what: &'static str,
        /// Why.
        message: String,
    },
}

/// What an attestation binds: a verifier's challenge, or a signed action's
/// digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "purpose", content = "value")]
pub enum Bound {
    /// A fresh challenge.
    Challenge(HexBytes<32>),
    /// One action's digest.
    ActionDigest(HexBytes<32>),
}

impl From<Bound> for Expected {
    fn from(b: Bound) -> Expected {
        match b {
            Bound::Challenge(c) => Expected::Challenge(B256(c.0)),
            Bound::ActionDigest(d) => Expected::ActionDigest(B256(d.0)),
        }
    }
}

/// Everything a verifier needs to check that `address` is a key in a
/// measured TEE: the quote, what it binds, the event log and, for a dstack
/// key, its KMS signature chain. Serializes to JSON for other languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// The provider (`phala-dstack`).
    pub provider: String,
    /// The key's address.
    pub address: HexBytes<20>,
    /// What `report_data` binds besides the address.
    pub bound: Bound,
    /// The quote's `report_data`.
    pub report_data: HexBytes<64>,
    /// The TDX quote.
    #[serde(with = "hex_vec")]
    pub quote: Vec<u8>,
    /// dstack's event log.
    pub event_log: Vec<Event>,
    /// The key's KMS signature chain (derived keys).
    pub key_chain: Option<KeyChain>,
    /// The signer's backend kind (`Simulated` quotes never pass DCAP).
    pub backend: String,
}

impl Attestation {
    /// The evidence, as the verifier takes it.
    #[must_use]
    pub fn evidence(&self) -> Evidence<'_> {
        Evidence {
            quote: &self.quote,
            event_log: Some(&self.event_log),
            key_chain: self.key_chain.as_ref(),
        }
    }
}

/// A key in the signer, with an attestation bound to a fresh challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeKey {
    /// The signer's slot.
    pub slot: u8,
    /// The address.
    pub address: HexBytes<20>,
    /// SEC1 compressed public key.
    pub public_key: HexBytes<33>,
    /// The dstack derivation path, for a derived key.
    pub path: Option<String>,
    /// Proof that the key is in the TEE.
    pub attestation: Attestation,
}

/// A signature with its per-action attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeSignature {
    /// The provider (`phala-dstack`).
    pub provider: String,
    /// The slot that signed.
    pub slot: u8,
    /// The sequence it signed at.
    pub sequence: u64,
    /// The digest signed (EIP-712, transaction or EIP-191 hash).
    pub digest: HexBytes<32>,
    /// `r ‖ s ‖ v` (v = 27 + y parity), as Ethereum tools take it.
    pub signature: HexBytes<65>,
    /// The signer's address.
    pub address: HexBytes<20>,
    /// A quote binding the address to this digest.
    pub attestation: Attestation,
}

/// The `phala-dstack` provider over a signer at an endpoint.
#[derive(Debug)]
pub struct PhalaDstackProvider {
    endpoint: Endpoint,
    timeout: Duration,
    admin: Option<SigningKey>,
    verifier: Verifier,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl PhalaDstackProvider {
    /// A provider for the signer at `endpoint`, checking attestations with
    /// `verifier`.
    #[must_use]
    pub fn new(endpoint: Endpoint, verifier: Verifier) -> PhalaDstackProvider {
        PhalaDstackProvider { endpoint, timeout: Duration::from_secs(30), admin: None, verifier }
    }

    /// With the signer's admin key, for [`PhalaDstackProvider::generate_key`].
    #[must_use]
    pub fn with_admin(mut self, admin: SigningKey) -> PhalaDstackProvider {
        self.admin = Some(admin);
        self
    }

    /// `provider_name`: `phala-dstack`.
    #[must_use]
    pub fn provider_name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn client(&self) -> Result<Client<Box<dyn Stream>>, ProviderError> {
        let stream = connect(&self.endpoint, self.timeout).map_err(|e| self.err(e.into()))?;
        Ok(Client::new(stream))
    }

    fn err(&self, source: ClientError) -> ProviderError {
        match source {
            ClientError::Device(e) => ProviderError::Refused(e),
            source => ProviderError::Client { endpoint: self.endpoint.to_string(), source },
        }
    }

    /// The signer's description.
    pub fn info(&self) -> Result<DeviceInfoResponse, ProviderError> {
        self.client()?.call(&DeviceInfo).map_err(|e| self.err(e))
    }

    /// `is_available`: the signer answers and runs on dstack (or the
    /// simulated dstack) with attestation.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.info().is_ok_and(|i| {
            matches!(i.backend, BackendKind::Dstack | BackendKind::Simulated)
                && i.capabilities & capability::ATTEST != 0
        })
    }

    /// `generate_key`: a dstack-derived key for `path` in `slot`, under
    /// `policy` (deny-all until then), attested with a fresh challenge. The
    /// private key stays in the signer. Needs the admin key.
    pub fn generate_key(
        &self,
        slot: u8,
        path: &str,
        policy: &Policy,
    ) -> Result<TeeKey, ProviderError> {
        let admin = self.admin.as_ref().ok_or(ProviderError::NotAdmin)?;
        let path = heapless::String::try_from(path).map_err(|_| ProviderError::PathTooLong)?;
        let mut c = self.client()?;
        let info = c.call(&DeviceInfo).map_err(|e| self.err(e))?;
        let auth = tee_core::protocol::AdminAuth::UNSIGNED;
        c.admin_now(DeriveKey { slot, path, auth }, admin, &info.device_id)
            .map_err(|e| self.err(e))?;
        let set = SetPolicy { slot, policy: policy.clone(), auth };
        c.admin_now(set, admin, &info.device_id).map_err(|e| self.err(e))?;
        drop(c);
        self.key(slot)
    }

    /// The key in `slot`, attested with a fresh challenge.
    pub fn key(&self, slot: u8) -> Result<TeeKey, ProviderError> {
        let mut challenge = [0u8; 32];
        getrandom::fill(&mut challenge)
            .map_err(|e| ProviderError::Evidence { what: "challenge", message: e.to_string() })?;
        let attestation = self.get_attestation_report(slot, B256(challenge))?;
        let mut c = self.client()?;
        let pk = c.call(&GetPublicKey { slot }).map_err(|e| self.err(e))?;
        Ok(key_of(&pk, attestation))
    }

    /// `sign`: signs `action` with `key`'s slot at the next sequence and
    /// attests the signature (a quote bound to its digest).
    ///
    /// The sequence is the slot's high-water mark plus one; if another
    /// client takes it first, the next is tried. Only the slot's last
    /// signature can be attested, so with several clients signing on one
    /// slot at once, another's signature may land between this one and its
    /// attestation: the call then fails with `Refused(NotLastSigned)`. Give
    /// each agent process its own slot.
    pub fn sign(&self, key: &TeeKey, action: &Action) -> Result<TeeSignature, ProviderError> {
        self.sign_slot(key.slot, action)
    }

    /// `sign` for SDKs that hand over message bytes: an EIP-191
    /// `personal_sign` of `message` (at most
    /// [`tee_core::limits::MAX_MESSAGE_LEN`] bytes). It is a blind kind: the
    /// slot's policy must name `personal_sign`. Raw 32-byte digests are
    /// never signed this way; build the typed action instead.
    pub fn sign_message(
        &self,
        key: &TeeKey,
        message: &[u8],
    ) -> Result<TeeSignature, ProviderError> {
        let message =
            heapless::Vec::from_slice(message).map_err(|_| ProviderError::MessageTooLong)?;
        let action = Action::PersonalMessage(tee_core::action::PersonalMessage { message });
        self.sign_slot(key.slot, &action)
    }

    /// [`PhalaDstackProvider::sign`] by slot number.
    pub fn sign_slot(&self, slot: u8, action: &Action) -> Result<TeeSignature, ProviderError> {
        let mut c = self.client()?;
        // Another process may take the sequence first: then take the next.
        let mut tries = 0;
        let signed = loop {
            let pk = c.call(&GetPublicKey { slot }).map_err(|e| self.err(e))?;
            let sequence = pk.high_water.map_or(1, |h| h + 1);
            match c.call(&Sign { slot, sequence, action: action.clone() }) {
                Err(ClientError::Device(DeviceError::Replay { .. })) if tries < 3 => tries += 1,
                r => break r.map_err(|e| self.err(e))?,
            }
        };
        let request = AttestAction { slot, sequence: signed.sequence, digest: signed.digest };
        let payload = c.request(&request).map_err(|e| self.err(e))?;
        let (_, response) = decode_response::<AttestAction>(&payload)
            .map_err(|e| self.err(ClientError::Malformed(e)))?;
        let bound = Bound::ActionDigest(HexBytes(signed.digest.0));
        let attestation = self.attestation(&mut c, slot, response, bound)?;
        let mut signature = signed.signature.to_bytes();
        signature[64] = 27 + u8::from(signed.signature.y_parity);
        Ok(TeeSignature {
            provider: PROVIDER_NAME.to_owned(),
            slot,
            sequence: signed.sequence,
            digest: HexBytes(signed.digest.0),
            signature: HexBytes(signature),
            address: attestation.address,
            attestation,
        })
    }

    /// `get_attestation_report`: a quote binding `slot`'s address to
    /// `challenge`, with the event log and key chain.
    pub fn get_attestation_report(
        &self,
        slot: u8,
        challenge: B256,
    ) -> Result<Attestation, ProviderError> {
        let mut c = self.client()?;
        let payload = c.request(&Attest { slot, challenge }).map_err(|e| self.err(e))?;
        let (_, response) =
            decode_response::<Attest>(&payload).map_err(|e| self.err(ClientError::Malformed(e)))?;
        self.attestation(&mut c, slot, response, Bound::Challenge(HexBytes(challenge.0)))
    }

    /// `verify_attestation`: every check of the verifier on the signature's
    /// attestation, at unix time `now` (`None`: the system clock), plus that
    /// the signature recovers to the attested address.
    #[must_use]
    pub fn verify_attestation(&self, signature: &TeeSignature, now: Option<u64>) -> Report {
        verify_signature(&self.verifier, signature, now.unwrap_or_else(now_secs))
    }

    /// Reads an `Attest`/`AttestAction` response and fetches its evidence.
    fn attestation(
        &self,
        c: &mut Client<Box<dyn Stream>>,
        slot: u8,
        response: Result<AttestResponse<'_>, DeviceError>,
        bound: Bound,
    ) -> Result<Attestation, ProviderError> {
        let AttestResponse { address, report_data, quote } =
            response.map_err(ProviderError::Refused)?;
        let quote = quote.to_vec();
        let log = fetch(c, slot, EvidencePart::EventLog).map_err(|e| self.err(e))?;
        let event_log = serde_json::from_slice(&log)
            .map_err(|e| ProviderError::Evidence { what: "event log", message: e.to_string() })?;
        let pk = c.call(&GetPublicKey { slot }).map_err(|e| self.err(e))?;
        let key_chain = match &pk.origin {
            KeyOrigin::Generated => None,
            KeyOrigin::Derived(_) => {
                let chain = fetch(c, slot, EvidencePart::KeyChain).map_err(|e| self.err(e))?;
                Some(serde_json::from_slice(&chain).map_err(|e| ProviderError::Evidence {
                    what: "key chain",
                    message: e.to_string(),
                })?)
            }
        };
        let info = c.call(&DeviceInfo).map_err(|e| self.err(e))?;
        Ok(Attestation {
            provider: PROVIDER_NAME.to_owned(),
            address: HexBytes(address.0),
            bound,
            report_data: HexBytes(report_data.0),
            quote,
            event_log,
            key_chain,
            backend: format!("{:?}", info.backend),
        })
    }
}

/// Checks a [`TeeSignature`] with `verifier` at `now`: what
/// [`PhalaDstackProvider::verify_attestation`] does, for a verifier that
/// has no signer to talk to.
#[must_use]
pub fn verify_signature(verifier: &Verifier, s: &TeeSignature, now: u64) -> Report {
    let mut sig = s.signature.0;
    // Either v convention: 27/28 or 0/1.
    if sig[64] >= 27 {
        sig[64] -= 27;
    }
    let address = Address(s.attestation.address.0);
    let digest = B256(s.digest.0);
    match Signature::from_bytes(&sig) {
        Ok(signature) => {
            verifier.verify_signature(&s.attestation.evidence(), &address, &digest, &signature, now)
        }
        Err(_) => {
            // A malformed signature cannot recover: report it as the
            // signature check's failure, with the rest checked as usual.
            let bogus = Signature { r: [0; 32], s: [0; 32], y_parity: false };
            verifier.verify_signature(&s.attestation.evidence(), &address, &digest, &bogus, now)
        }
    }
}

fn key_of(pk: &PublicKeyResponse, attestation: Attestation) -> TeeKey {
    TeeKey {
        slot: pk.slot,
        address: HexBytes(pk.address.0),
        public_key: HexBytes(pk.public_key.0),
        path: match &pk.origin {
            KeyOrigin::Generated => None,
            KeyOrigin::Derived(p) => Some(p.to_string()),
        },
        attestation,
    }
}

/// Reads a whole piece of evidence, chunk by chunk.
fn fetch(
    c: &mut Client<Box<dyn Stream>>,
    slot: u8,
    part: EvidencePart,
) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    loop {
        let offset = u32::try_from(out.len())
            .map_err(|_| ClientError::Malformed(tee_core::Error::TooLong))?;
        let payload = c.request(&GetEvidence { slot, part, offset })?;
        let (_, r) = decode_response::<GetEvidence>(&payload).map_err(ClientError::Malformed)?;
        let chunk = r.map_err(ClientError::Device)?;
        out.extend_from_slice(chunk.data);
        if chunk.data.is_empty() || out.len() >= chunk.total as usize {
            return Ok(out);
        }
    }
}
