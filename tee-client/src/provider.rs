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
use tee_core::action::tx;
use tee_core::primitives::FixedBytes;
use tee_core::protocol::{
    Attest, AttestAction, AttestResponse, BackendKind, DEVICE_SLOT, DeriveKey, DeviceError,
    DeviceInfo, DeviceInfoResponse, EvidencePart, GetEvidence, GetPolicy, GetPublicKey, KeyOrigin,
    MAX_PATH_LEN, Policy, PublicKeyResponse, SetPolicy, Sign, capability,
};
use tee_core::{Action, Address, B256, SigningKey, heapless};

use super::admin::Trust;
use super::{Client, ClientError};
use tee_transport::{Endpoint, Stream, connect};
use tee_verify::{Attestation, Bound, Report, TeeSignature, Verifier};

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
    /// An action with a field longer than the signer was built to take
    /// (a microcontroller's bounds are smaller than the std signer's).
    #[error("the signer takes {} up to {} (DeviceInfo bounds); this action's is {}", .0.field, .0.max, .0.len)]
    OverBound(tee_core::limits::OverBound),
    /// A JSON action that is not one the signer takes.
    #[error("{0}")]
    Action(#[from] crate::actions::JsonActionError),
    /// A request naming another signer than the slot's (`from`).
    #[error("the request is from {from}, slot {slot} is {address}")]
    NotFrom {
        /// The request's `from`.
        from: Address,
        /// The slot.
        slot: u8,
        /// The slot's address.
        address: Address,
    },
    /// A signed transaction that cannot be encoded (its action is not one).
    #[error("the signed transaction cannot be encoded: {0}")]
    Transaction(String),
    /// Evidence that does not parse.
    #[error("the signer's {what} does not parse: {message}")]
    Evidence {
        /// Which evidence.
        what: &'static str,
        /// Why.
        message: String,
    },
}

/// A key in the signer, with an attestation bound to a fresh challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeKey {
    /// The signer's slot.
    pub slot: u8,
    /// The address.
    pub address: Address,
    /// SEC1 compressed public key.
    pub public_key: FixedBytes<33>,
    /// The dstack derivation path, for a derived key.
    pub path: Option<String>,
    /// Proof that the key is in the TEE.
    pub attestation: Attestation,
}

/// A signed action and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedJson {
    /// The action as decoded.
    pub action: Action,
    /// Its attested signature.
    pub signature: TeeSignature,
}

impl SignedJson {
    /// The signature's JSON with the action beside it, for people: `kind`,
    /// `action` (its one-line description) and `request` (the action as a
    /// wallet would send it).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::to_value(&self.signature).unwrap_or_default();
        if let Some(o) = out.as_object_mut() {
            o.insert("kind".into(), self.action.kind().name().into());
            o.insert("action".into(), self.action.to_string().into());
            if let Some(request) = crate::actions::to_json(&self.action) {
                o.insert("request".into(), request);
            }
        }
        out
    }
}

/// The `phala-dstack` provider over a signer at an endpoint.
#[derive(Debug)]
pub struct PhalaDstackProvider {
    endpoint: Endpoint,
    timeout: Duration,
    admin: Option<SigningKey>,
    identity: Option<Address>,
    verifier: Verifier,
    /// The device's action bounds, asked once (`DeviceInfo`).
    bounds: std::sync::OnceLock<tee_core::limits::ActionBounds>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl PhalaDstackProvider {
    /// A provider for the signer at `endpoint`, checking attestations with
    /// `verifier`.
    #[must_use]
    pub fn new(endpoint: Endpoint, verifier: Verifier) -> PhalaDstackProvider {
        PhalaDstackProvider {
            endpoint,
            timeout: Duration::from_secs(30),
            admin: None,
            identity: None,
            verifier,
            bounds: std::sync::OnceLock::new(),
        }
    }

    /// With the signer's admin key, for [`PhalaDstackProvider::generate_key`].
    #[must_use]
    pub fn with_admin(mut self, admin: SigningKey) -> PhalaDstackProvider {
        self.admin = Some(admin);
        self
    }

    /// With the signer's identity address (what an attestation of
    /// [`DEVICE_SLOT`] binds), which must sign the statements confirming
    /// admin commands; without it, the identity is trusted on first use.
    #[must_use]
    pub fn with_identity(mut self, identity: Address) -> PhalaDstackProvider {
        self.identity = Some(identity);
        self
    }

    /// The verifier attestations are checked with.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
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
    /// private key stays in the signer. Needs the admin key; each admin
    /// command is confirmed by the signer's identity
    /// ([`Client::admin_confirmed`]).
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
        let mut trust = Trust { device_id: info.device_id, identity: self.identity };
        let auth = tee_core::protocol::AdminAuth::UNSIGNED;
        c.admin_confirmed(DeriveKey { slot, path, auth }, admin, &mut trust)
            .map_err(|e| self.err(e))?;
        let set = SetPolicy { slot, policy: policy.clone(), auth };
        c.admin_confirmed(set, admin, &mut trust).map_err(|e| self.err(e))?;
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

    /// The address of `slot` and the contracts its policy names (to the
    /// action decoders, contracts that may be ERC-8004 registries besides
    /// the deployed ones).
    pub fn slot_context(&self, slot: u8) -> Result<(Address, Vec<Address>), ProviderError> {
        let mut c = self.client()?;
        let address = c.call(&GetPublicKey { slot }).map_err(|e| self.err(e))?.address;
        let contracts = match c.call(&GetPolicy { slot }).map_err(|e| self.err(e))?.contracts {
            tee_core::protocol::Allow::Only(list) => list.to_vec(),
            tee_core::protocol::Allow::Any => Vec::new(),
        };
        Ok((address, contracts))
    }

    /// The action of a JSON request as wallets send it
    /// ([`crate::actions::from_json`]) for `slot`: its `from` must be the
    /// slot's address, and the contracts the slot's policy names are
    /// registries too.
    pub fn json_action(&self, slot: u8, json: &str) -> Result<Action, ProviderError> {
        let (address, contracts) = self.slot_context(slot)?;
        let request = crate::actions::from_json(json, &contracts)?;
        match request.from {
            Some(from) if from != address => Err(ProviderError::NotFrom { from, slot, address }),
            _ => Ok(request.action),
        }
    }

    /// Signs a JSON request ([`PhalaDstackProvider::json_action`]) with
    /// `slot`, at `sequence` or the next.
    pub fn sign_json(
        &self,
        slot: u8,
        json: &str,
        sequence: Option<u64>,
    ) -> Result<SignedJson, ProviderError> {
        let action = self.json_action(slot, json)?;
        let signature = self.sign_slot_at(slot, &action, sequence)?;
        Ok(SignedJson { action, signature })
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
        self.sign_slot_at(slot, action, None)
    }

    /// [`PhalaDstackProvider::sign_slot`] at `sequence`, or (`None`) the
    /// one after the slot's mark.
    pub fn sign_slot_at(
        &self,
        slot: u8,
        action: &Action,
        sequence: Option<u64>,
    ) -> Result<TeeSignature, ProviderError> {
        let mut c = self.client()?;
        // A field over the signer's bounds is named here, not refused there
        // as a bare TooLong. The bounds are the device's build: asked once.
        let bounds = match self.bounds.get() {
            Some(b) => *b,
            None => {
                let b = c.call(&DeviceInfo).map_err(|e| self.err(e))?.bounds;
                *self.bounds.get_or_init(|| b)
            }
        };
        let mut buf = vec![0u8; tee_core::limits::MAX_ACTION_LEN];
        let encoded_len =
            action.encode(&mut buf).map_err(|e| self.err(ClientError::Encode(e)))?.len();
        bounds.check(action, encoded_len).map_err(ProviderError::OverBound)?;
        // Another process may take the sequence first: then take the next.
        let mut tries = 0;
        let chosen = sequence;
        let signed = loop {
            let sequence = match chosen {
                Some(s) => s,
                None => {
                    let pk = c.call(&GetPublicKey { slot }).map_err(|e| self.err(e))?;
                    pk.high_water.map_or(1, |h| h + 1)
                }
            };
            match c.call(&Sign { slot, sequence, action: action.clone() }) {
                Err(ClientError::Device(DeviceError::Replay { .. }))
                    if tries < 3 && chosen.is_none() =>
                {
                    tries += 1;
                }
                r => break r.map_err(|e| self.err(e))?,
            }
        };
        let request = AttestAction { slot, sequence: signed.sequence, digest: signed.digest };
        let quote = Quoted::from(c.call(&request).map_err(|e| self.err(e))?);
        let attestation =
            self.attestation(&mut c, slot, quote, Bound::ActionDigest(signed.digest))?;
        // A transaction goes out signed, for `eth_sendRawTransaction`.
        let (raw_transaction, transaction_hash) = match action.is_transaction() {
            true => {
                let mut buf = vec![0u8; tee_core::limits::MAX_SIGNED_TX_LEN];
                let raw = tx::encode_signed(action, &signed.signature, &mut buf)
                    .map_err(|e| ProviderError::Transaction(format!("{e:?}")))?;
                let hash = tx::tx_hash(action, &signed.signature)
                    .map_err(|e| ProviderError::Transaction(format!("{e:?}")))?;
                (Some(raw.to_vec()), Some(hash))
            }
            false => (None, None),
        };
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
        let mut c = self.client()?;
        let quote = Quoted::from(c.call(&Attest { slot, challenge }).map_err(|e| self.err(e))?);
        let bound = if slot == DEVICE_SLOT {
            Bound::Device(challenge)
        } else {
            Bound::Challenge(challenge)
        };
        self.attestation(&mut c, slot, quote, bound)
    }

    /// `verify_attestation`: every check of the verifier on the signature's
    /// attestation, at unix time `now` (`None`: the system clock), plus that
    /// the signature recovers to the attested address.
    #[must_use]
    pub fn verify_attestation(&self, signature: &TeeSignature, now: Option<u64>) -> Report {
        self.verifier.verify_tee_signature(signature, now.unwrap_or_else(now_secs))
    }

    /// Completes an `Attest`/`AttestAction` response with its evidence.
    fn attestation(
        &self,
        c: &mut Client<Box<dyn Stream>>,
        slot: u8,
        quoted: Quoted,
        bound: Bound,
    ) -> Result<Attestation, ProviderError> {
        let Quoted { address, report_data, quote } = quoted;
        let log = fetch(c, slot, EvidencePart::EventLog).map_err(|e| self.err(e))?;
        let event_log = serde_json::from_slice(&log)
            .map_err(|e| ProviderError::Evidence { what: "event log", message: e.to_string() })?;
        // The identity key has no key chain; a slot's derived key has.
        let origin = match slot {
            DEVICE_SLOT => KeyOrigin::Generated,
            slot => c.call(&GetPublicKey { slot }).map_err(|e| self.err(e))?.origin,
        };
        let key_chain = match origin {
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
            address,
            bound,
            report_data,
            quote,
            event_log,
            key_chain,
            backend: format!("{:?}", info.backend),
        })
    }
}

/// An `Attest`/`AttestAction` response, copied out of the client.
struct Quoted {
    address: Address,
    report_data: FixedBytes<64>,
    quote: Vec<u8>,
}

impl From<AttestResponse<'_>> for Quoted {
    fn from(r: AttestResponse<'_>) -> Quoted {
        Quoted { address: r.address, report_data: r.report_data, quote: r.quote.to_vec() }
    }
}

fn key_of(pk: &PublicKeyResponse, attestation: Attestation) -> TeeKey {
    TeeKey {
        slot: pk.slot,
        address: pk.address,
        public_key: pk.public_key,
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
        let chunk = c.call(&GetEvidence { slot, part, offset })?;
        out.extend_from_slice(chunk.data);
        if chunk.data.is_empty() || out.len() >= chunk.total as usize {
            return Ok(out);
        }
    }
}
