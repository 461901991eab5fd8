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

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tee_core::action::tx;
use tee_core::protocol::{
    BackendKind, DeriveKey, DeviceError, DeviceInfoResponse, GetPolicy, GetPublicKey, KeyOrigin,
    Policy, SetPolicy, Sign, SignApproved, capability,
};
use tee_core::{Action, Address, B256, SigningKey};

use crate::actions::OwnedAction;
use crate::approval::{ApprovalRequest, Approvals};

use super::ClientError;
use super::admin::Trust;
use super::answers::Key;
use super::session::{DEFAULT_TIMEOUT, Session, Stats};
pub use super::signed::{SignedJson, TeeKey};
use tee_transport::Endpoint;
use tee_verify::{Attestation, TeeSignature, Verifier};

mod attest;
mod error;
mod tcb;

pub use error::ProviderError;

/// The provider's name, as agent SDKs know it.
pub const PROVIDER_NAME: &str = "phala-dstack";

/// The `phala-dstack` provider over a signer at an endpoint. It keeps one
/// [`Session`] (one connection, the device's facts asked once) across
/// calls; calls from several threads take turns on it.
#[derive(Debug)]
pub struct PhalaDstackProvider {
    endpoint: Endpoint,
    admin: Option<SigningKey>,
    identity: Option<Address>,
    verifier: Verifier,
    session: Mutex<Session>,
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
            session: Mutex::new(Session::new(endpoint.clone(), DEFAULT_TIMEOUT)),
            endpoint,
            admin: None,
            identity: None,
            verifier,
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

    /// Connections opened and requests sent so far (one connection for a
    /// provider whose connection never broke).
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.session().stats()
    }

    /// The session; a thread that panicked holding it left at worst a
    /// connection mid-request, which the next call finds broken.
    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn err(&self, source: ClientError) -> ProviderError {
        match source {
            ClientError::Device(e) => ProviderError::Refused(e),
            source => ProviderError::Client { endpoint: self.endpoint.to_string(), source },
        }
    }

    /// The signer's description (asked once per session).
    pub fn info(&self) -> Result<DeviceInfoResponse, ProviderError> {
        self.session().info().cloned().map_err(|e| self.err(e))
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
    /// ([`Client::admin_confirmed`](crate::Client::admin_confirmed)).
    pub fn generate_key(
        &self,
        slot: u8,
        path: &str,
        policy: &Policy,
    ) -> Result<TeeKey, ProviderError> {
        let admin = self.admin.as_ref().ok_or(ProviderError::NotAdmin)?;
        let path =
            tee_core::heapless::String::try_from(path).map_err(|_| ProviderError::PathTooLong)?;
        let mut s = self.session();
        let device_id = s.info().map_err(|e| self.err(e))?.device_id;
        let mut trust = Trust { device_id, identity: self.identity };
        let auth = tee_core::protocol::AdminAuth::UNSIGNED;
        let c = s.client().map_err(|e| self.err(e))?;
        c.admin_confirmed(DeriveKey { slot, path, replace: false, auth }, admin, &mut trust)
            .map_err(|e| self.err(e))?;
        let set = SetPolicy { slot, policy: policy.clone(), auth };
        c.admin_confirmed(set, admin, &mut trust).map_err(|e| self.err(e))?;
        self.key_in(&mut s, slot)
    }

    /// The key in `slot`, attested with a fresh challenge.
    pub fn key(&self, slot: u8) -> Result<TeeKey, ProviderError> {
        self.key_in(&mut self.session(), slot)
    }

    fn key_in(&self, s: &mut Session, slot: u8) -> Result<TeeKey, ProviderError> {
        let challenge = tee_verify::random_challenge()
            .map_err(|e| ProviderError::Evidence { what: "challenge", message: e.to_string() })?;
        let pk = self.public_key(s, slot)?;
        let attestation = self.attest_in(s, slot, challenge, Some(&pk.origin))?;
        Ok(key_of(&pk, attestation))
    }

    fn public_key(&self, s: &mut Session, slot: u8) -> Result<Key, ProviderError> {
        let pk = s.call(&GetPublicKey { slot }).map_err(|e| self.err(e))?;
        Ok(Key::from(&pk))
    }

    /// The address of `slot` and the contracts its policy names (to the
    /// action decoders, contracts that may be ERC-8004 registries besides
    /// the deployed ones).
    pub fn slot_context(&self, slot: u8) -> Result<(Address, Vec<Address>), ProviderError> {
        let mut s = self.session();
        let address = self.public_key(&mut s, slot)?.address;
        Ok((address, self.contracts(&mut s, slot)?))
    }

    fn contracts(&self, s: &mut Session, slot: u8) -> Result<Vec<Address>, ProviderError> {
        Ok(match s.call(&GetPolicy { slot }).map_err(|e| self.err(e))?.contracts {
            tee_core::protocol::Allow::Only(list) => list.to_vec(),
            tee_core::protocol::Allow::Any => Vec::new(),
        })
    }

    /// The action of a JSON request as wallets send it
    /// ([`crate::actions::from_json`]) for `slot`: its `from` must be the
    /// slot's address, and the contracts the slot's policy names are
    /// registries too.
    pub fn json_action(&self, slot: u8, json: &str) -> Result<OwnedAction, ProviderError> {
        let mut s = self.session();
        let pk = self.public_key(&mut s, slot)?;
        self.decode_json(&mut s, slot, &pk, json)
    }

    fn decode_json(
        &self,
        s: &mut Session,
        slot: u8,
        pk: &Key,
        json: &str,
    ) -> Result<OwnedAction, ProviderError> {
        let request = crate::actions::from_json(json, &self.contracts(s, slot)?)?;
        match request.from {
            Some(from) if from != pk.address => {
                Err(ProviderError::NotFrom { from, slot, address: pk.address })
            }
            _ => Ok(request.action),
        }
    }

    /// Signs a JSON request ([`PhalaDstackProvider::json_action`]) with
    /// `slot`, at `sequence` or the next, on one connection:
    /// `GetPublicKey`, `GetPolicy`, `Sign`, then the attestation.
    pub fn sign_json(
        &self,
        slot: u8,
        json: &str,
        sequence: Option<u64>,
    ) -> Result<SignedJson, ProviderError> {
        self.sign_json_with(slot, json, sequence, None)
    }

    /// [`PhalaDstackProvider::sign_json`] with the approvals the slot's
    /// policy asked for (at their sequence).
    pub fn sign_json_approved(
        &self,
        slot: u8,
        json: &str,
        approvals: &Approvals,
    ) -> Result<SignedJson, ProviderError> {
        self.sign_json_with(slot, json, Some(approvals.sequence), Some(approvals))
    }

    fn sign_json_with(
        &self,
        slot: u8,
        json: &str,
        sequence: Option<u64>,
        approvals: Option<&Approvals>,
    ) -> Result<SignedJson, ProviderError> {
        let mut s = self.session();
        let pk = self.public_key(&mut s, slot)?;
        let action = self.decode_json(&mut s, slot, &pk, json)?;
        let at = Sequence { at: sequence, approvals };
        let signed = self
            .sign_only(&mut s, slot, &action.view(), at, Some(pk))
            .map_err(|e| with_action(e, json))?;
        let signature = self.attest_signed(&mut s, slot, &action.view(), signed)?;
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
    pub fn sign(&self, key: &TeeKey, action: &Action<'_>) -> Result<TeeSignature, ProviderError> {
        self.sign_slot(key.slot, action)
    }

    /// `sign` for SDKs that hand over message bytes: an EIP-191
    /// `personal_sign` of `message` (at most the signer's `message` bound:
    /// [`ProviderError::OverBound`] otherwise). It is a blind kind: the
    /// slot's policy must name `personal_sign`. Raw 32-byte digests are
    /// never signed this way; build the typed action instead.
    pub fn sign_message(
        &self,
        key: &TeeKey,
        message: &[u8],
    ) -> Result<TeeSignature, ProviderError> {
        let action = Action::PersonalMessage(tee_core::action::PersonalMessage { message });
        self.sign_slot(key.slot, &action)
    }

    /// [`PhalaDstackProvider::sign`] by slot number.
    pub fn sign_slot(&self, slot: u8, action: &Action<'_>) -> Result<TeeSignature, ProviderError> {
        self.sign_slot_at(slot, action, None)
    }

    /// [`PhalaDstackProvider::sign_slot`] at `sequence`, or (`None`) the
    /// one after the slot's mark.
    pub fn sign_slot_at(
        &self,
        slot: u8,
        action: &Action<'_>,
        sequence: Option<u64>,
    ) -> Result<TeeSignature, ProviderError> {
        self.sign_attested(slot, action, Sequence { at: sequence, approvals: None })
    }

    /// [`PhalaDstackProvider::sign_slot`] with the approvals the slot's
    /// policy asked for (at their sequence).
    pub fn sign_slot_approved(
        &self,
        slot: u8,
        action: &Action<'_>,
        approvals: &Approvals,
    ) -> Result<TeeSignature, ProviderError> {
        let at = Sequence { at: Some(approvals.sequence), approvals: Some(approvals) };
        self.sign_attested(slot, action, at)
    }

    /// Signs at `at` and attests the signature, on one connection.
    fn sign_attested(
        &self,
        slot: u8,
        action: &Action<'_>,
        at: Sequence<'_>,
    ) -> Result<TeeSignature, ProviderError> {
        let mut s = self.session();
        let signed = self.sign_only(&mut s, slot, action, at, None)?;
        self.attest_signed(&mut s, slot, action, signed)
    }

    /// Signs `action` without attesting it (for a signer without a TEE),
    /// at `sequence` or the one after the slot's mark.
    pub fn sign_unattested(
        &self,
        slot: u8,
        action: &Action<'_>,
        sequence: Option<u64>,
    ) -> Result<Signed, ProviderError> {
        let at = Sequence { at: sequence, approvals: None };
        Ok(self.sign_only(&mut self.session(), slot, action, at, None)?.0)
    }

    /// The policy of `slot`.
    pub fn policy(&self, slot: u8) -> Result<Policy, ProviderError> {
        self.session().call(&GetPolicy { slot }).map_err(|e| self.err(e))
    }

    /// The address of `slot`.
    pub fn address(&self, slot: u8) -> Result<Address, ProviderError> {
        Ok(self.public_key(&mut self.session(), slot)?.address)
    }

    /// Signs on `s`: `pk` is the slot's key if the caller has just asked for
    /// it (its high-water mark chooses the sequence). Returns the key as
    /// last read, whose origin says whether an attestation has a key chain.
    fn sign_only(
        &self,
        s: &mut Session,
        slot: u8,
        action: &Action<'_>,
        Sequence { at: sequence, approvals }: Sequence<'_>,
        pk: Option<Key>,
    ) -> Result<(Signed, Key), ProviderError> {
        // A field over the signer's bounds is named here, not refused there
        // as a bare TooLong. The bounds are the device's: asked once.
        let bounds = s.info().map_err(|e| self.err(e))?.bounds;
        bounds.check(action, action.encoded_len()).map_err(ProviderError::OverBound)?;
        let mut pk = match pk {
            Some(pk) => pk,
            None => self.public_key(s, slot)?,
        };
        // Another process may take the sequence first: then take the next.
        let mut tries = 0;
        loop {
            let at = sequence.unwrap_or_else(|| pk.high_water.map_or(1, |h| h + 1));
            let answer = match approvals {
                None => s.call(&Sign { slot, sequence: at, action: action.clone() }),
                Some(a) => s.call(&SignApproved {
                    slot,
                    sequence: at,
                    expires: a.expires,
                    approvals: &a.bytes(),
                    action: action.clone(),
                }),
            };
            match answer {
                Err(ClientError::Device(DeviceError::Replay { .. }))
                    if tries < 3 && sequence.is_none() =>
                {
                    tries += 1;
                    pk = self.public_key(s, slot)?;
                }
                Ok(r) => {
                    let signed =
                        Signed { sequence: r.sequence, digest: r.digest, signature: r.signature };
                    return Ok((signed, pk));
                }
                Err(ClientError::Device(DeviceError::ApprovalRequired(need))) => {
                    let policy = s.call(&GetPolicy { slot }).map_err(|e| self.err(e))?;
                    let approvers =
                        policy.approvals.map(|r| r.approvers.to_vec()).unwrap_or_default();
                    let digest = action.digest();
                    let request =
                        ApprovalRequest::new(slot, pk.address, at, digest, need, approvers);
                    return Err(ProviderError::ApprovalRequired(Box::new(request)));
                }
                Err(ClientError::Device(reason)) if reason.violation().is_some() => {
                    let why = match s.call(&GetPolicy { slot }) {
                        Ok(policy) => crate::explain::refusal(action, &policy, reason),
                        Err(_) => format!("refused: {reason:?}"),
                    };
                    return Err(ProviderError::Denied { reason, why });
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }
}

/// Which sequence to sign at (`None`: the one after the slot's mark), and
/// the approvals that name it, if any.
#[derive(Debug, Clone, Copy)]
struct Sequence<'a> {
    at: Option<u64>,
    approvals: Option<&'a Approvals>,
}

/// An approval request from a JSON action carries the JSON, for the
/// approvers to read.
fn with_action(e: ProviderError, json: &str) -> ProviderError {
    match e {
        ProviderError::ApprovalRequired(mut r) => {
            r.action = serde_json::from_str(json).ok();
            ProviderError::ApprovalRequired(r)
        }
        e => e,
    }
}

/// A signature without its attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    /// The sequence it was made at.
    pub sequence: u64,
    /// The action's digest.
    pub digest: B256,
    /// The signature.
    pub signature: tee_core::Signature,
}

impl Signed {
    /// For a transaction `action` (the one signed): the signed transaction,
    /// ready for `eth_sendRawTransaction`, and its hash.
    pub fn transaction(
        &self,
        action: &Action<'_>,
    ) -> Result<Option<(Vec<u8>, B256)>, ProviderError> {
        if !action.is_transaction() {
            return Ok(None);
        }
        let mut buf = vec![0u8; tee_core::limits::MAX_SIGNED_TX_LEN];
        let raw = tx::encode_signed(action, &self.signature, &mut buf)
            .map_err(ProviderError::Transaction)?;
        let hash = tx::tx_hash(action, &self.signature).map_err(ProviderError::Transaction)?;
        Ok(Some((raw.to_vec(), hash)))
    }
}

fn key_of(pk: &Key, attestation: Attestation) -> TeeKey {
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
