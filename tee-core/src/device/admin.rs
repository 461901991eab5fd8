//! Admin authorization, and the commands that change a slot: `GenerateKey`,
//! `DeriveKey` and `SetPolicy`. Each is authorized (signature by the admin
//! over this device and command, counter above the last) before anything
//! changes, burns its counter durably, and is audited either way.

use super::backend::{Backend, CounterId, HighWater};
use super::record::{self, Secret, StoredKey};
use super::reply::Handle;
use super::slot::{LoadedKey, Record, Slot, commit_above};
use super::{Device, map_backend};
use crate::codec;
use crate::limits::MAX_SLOT_RECORD;
use crate::primitives::{Address, B256, keccak256};
use crate::protocol::{
    AdminAuth, AdminCommand, AdminState, AdminStateResponse, AdminStatement, Command, DEVICE_SLOT,
    DeriveKey, DeviceError, GenerateKey, ImportMark, KeyOrigin, MarkImported, Outcome, Policy,
    PolicySet, PublicKeyResponse, SetPolicy, admin_digest, admin_payload_hash, split_auth,
};
use crate::signer::SigningKey;

impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
    /// Verifies an admin command and burns its counter; audits a refusal.
    /// Not inlined, like the change it guards ([`apply`]): the signature
    /// recovery's deep stack and the change's large temporaries (a slot
    /// record, a new key) are never on the stack at once.
    #[inline(never)]
    fn authorize<C: AdminCommand>(&mut self, cmd: &C, body: &[u8]) -> Result<(), DeviceError> {
        let payload = admin_payload_hash(body, cmd);
        self.authorize_payload(C::CODE, cmd.slot(), cmd.auth(), payload)
    }

    /// [`Device::authorize`] once the payload is hashed: one copy for every
    /// admin command (on a microcontroller each generic copy of the
    /// signature check would cost flash).
    #[inline(never)]
    fn authorize_payload(
        &mut self,
        code: u8,
        slot: u8,
        auth: &AdminAuth,
        payload: B256,
    ) -> Result<(), DeviceError> {
        let counter = auth.counter;
        let by_admin = if code == SetPolicy::CODE {
            // Checked before the policy was decoded, and only then.
            self.pre_auth.take() == Some((code, counter, payload))
        } else {
            self.signed_by_admin(code, auth, &payload)
        };
        // Exactly the next counter: no replay, and no jump that could lock
        // the admin out (a counter at u64::MAX).
        let last = self.admin_mark.map(|m| m.value);
        let r = if !by_admin {
            Err(DeviceError::Unauthorized)
        } else if Some(counter) != last.unwrap_or(0).checked_add(1) {
            Err(DeviceError::AdminReplay { last: last.unwrap_or(0) })
        } else {
            let mark = HighWater { value: counter, digest: payload };
            commit_above(&mut self.backend, CounterId::Admin, last, &mark, Record::Plain)
                .map(|()| mark)
        };
        match r {
            Ok(mark) => {
                self.admin_mark = Some(mark);
                Ok(())
            }
            Err(e) => {
                self.log(code, slot, counter, payload, Outcome::Refused(e), false);
                Err(e)
            }
        }
    }

    /// Whether `auth`'s signature over command `code` with `payload` is the
    /// admin's. Not inlined: the recovery's deep stack is its own frame.
    #[inline(never)]
    fn signed_by_admin(&self, code: u8, auth: &AdminAuth, payload: &B256) -> bool {
        let digest = admin_digest(&self.config.device_id, code, auth.counter, payload);
        auth.signature.recover_address(&digest).is_ok_and(|who| who == self.config.admin)
    }

    /// Checks a `SetPolicy` frame's admin signature before the policy is
    /// decoded ([`split_auth`]) and keeps the answer for its authorization
    /// ([`Device::authorize`]): the recovery's stack and the decoded policy
    /// are never on the stack together (on a microcontroller they would not
    /// fit with the slots' policies).
    #[inline(never)]
    pub(super) fn pre_authorize(&mut self, body: &[u8]) {
        self.pre_auth = split_auth(body).and_then(|(prefix, auth)| {
            let payload = keccak256(prefix);
            self.signed_by_admin(SetPolicy::CODE, &auth, &payload).then_some((
                SetPolicy::CODE,
                auth.counter,
                payload,
            ))
        });
    }

    /// Runs an admin command's change after authorizing it, and audits the
    /// outcome.
    fn admin<C: AdminCommand, T>(
        &mut self,
        cmd: &C,
        body: &[u8],
        change: impl FnOnce(&mut Self) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        self.authorize(cmd, body)?;
        let result = apply(self, change);
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Refused(*e),
        };
        let payload = admin_payload_hash(body, cmd);
        // A change is on the record before its response leaves.
        let durable = result.is_ok();
        self.log(C::CODE, cmd.slot(), cmd.auth().counter, payload, outcome, durable);
        result
    }

    /// Stores a new key with a deny-all policy in slot `n`, then installs it;
    /// the slot keeps its high-water mark. Not inlined: its slot record and
    /// new slot are not on the stack while the key's public point is made.
    #[inline(never)]
    fn install(&mut self, n: u8, stored: StoredKey, key: SigningKey) -> Result<(), DeviceError> {
        let origin = stored.origin();
        record::store(&mut self.backend, n, &stored, &Policy::default())?;
        let slot = self.slots.get_mut(usize::from(n)).ok_or(DeviceError::NoSuchSlot)?;
        *slot = Slot {
            key: Some(LoadedKey { key, origin }),
            high_water: slot.high_water,
            ..Slot::default()
        };
        Ok(())
    }
}

/// Runs an authorized admin command's change in a frame of its own (see
/// `Device::authorize`).
#[inline(never)]
fn apply<D, T>(
    device: &mut D,
    change: impl FnOnce(&mut D) -> Result<T, DeviceError>,
) -> Result<T, DeviceError> {
    change(device)
}

/// keccak-256 of a policy's canonical encoding.
pub(super) fn policy_hash(policy: &Policy) -> Result<B256, DeviceError> {
    let mut buf = [0u8; MAX_SLOT_RECORD];
    let enc = codec::encode(policy, &mut buf).map_err(|_| DeviceError::Storage)?;
    Ok(keccak256(enc))
}

impl<B: Backend, const SLOTS: usize> Handle<AdminState> for Device<B, SLOTS> {
    fn run(&mut self, c: &AdminState, _: &[u8]) -> Result<AdminStateResponse, DeviceError> {
        let identity = self.identity.as_ref().ok_or(DeviceError::Unsupported)?;
        let (key, policy_hash, mark) = if c.slot == DEVICE_SLOT {
            (Address::ZERO, B256::ZERO, None)
        } else {
            let slot = self.slot(c.slot)?;
            match &slot.key {
                Some(k) => (k.key.address(), policy_hash(&slot.policy)?, slot.high_water),
                None => (Address::ZERO, B256::ZERO, slot.high_water),
            }
        };
        let (last_counter, last_payload) =
            self.admin_mark.map_or((0, B256::ZERO), |m| (m.value, m.digest));
        let statement = AdminStatement {
            nonce: c.nonce,
            last_counter,
            last_payload,
            slot: c.slot,
            key,
            policy_hash,
            sequence: mark.map_or(0, |m| m.value),
            commitment: mark.map_or(B256::ZERO, |m| m.digest),
        };
        let digest = statement.digest(&self.config.device_id);
        let signature = identity.sign_digest(&digest).map_err(|_| DeviceError::SigningFailed)?;
        Ok(AdminStateResponse { identity: identity.address(), statement, signature })
    }
}

impl<B: Backend, const SLOTS: usize> Handle<GenerateKey> for Device<B, SLOTS> {
    fn run(&mut self, cmd: &GenerateKey, body: &[u8]) -> Result<PublicKeyResponse, DeviceError> {
        // A key is never lost without the admin saying so. Refused before
        // authorization, as SetPolicy on an empty slot: the counter is not
        // spent, so the admin's tool sees nothing applied.
        if self.slot(cmd.slot)?.key.is_some() && !cmd.replace {
            return Err(DeviceError::SlotOccupied);
        }
        self.admin(cmd, body, |d| {
            let mut secret = Secret([0; 32]);
            // A uniformly random 32-byte string is a valid scalar except
            // with probability ~2^-128; a few tries make failure moot.
            let mut key = None;
            for _ in 0..4 {
                d.backend.fill_bytes(&mut secret.0).map_err(|_| DeviceError::Entropy)?;
                if let Ok(k) = SigningKey::from_bytes(&secret.0) {
                    key = Some(k);
                    break;
                }
            }
            let key = key.ok_or(DeviceError::Entropy)?;
            d.install(cmd.slot, StoredKey::Generated(secret), key)?;
            d.public_key(cmd.slot)
        })
    }
}

impl<B: Backend, const SLOTS: usize> Handle<DeriveKey> for Device<B, SLOTS> {
    fn run(&mut self, cmd: &DeriveKey, body: &[u8]) -> Result<PublicKeyResponse, DeviceError> {
        // Deriving the same path again gives the same key: nothing is lost;
        // any other key is lost only if the admin says so (refused before
        // authorization, as GenerateKey).
        let other_key = match &self.slot(cmd.slot)?.key {
            None => false,
            Some(k) => !matches!(&k.origin, KeyOrigin::Derived(p) if *p == cmd.path),
        };
        if other_key && !cmd.replace {
            return Err(DeviceError::SlotOccupied);
        }
        self.admin(cmd, body, |d| {
            let secret = d.backend.derive_key(&cmd.path).map_err(map_backend)?;
            let key = SigningKey::from_bytes(&secret).map_err(|_| DeviceError::Backend)?;
            d.install(cmd.slot, StoredKey::Derived(cmd.path.clone()), key)?;
            d.public_key(cmd.slot)
        })
    }
}

impl<B: Backend, const SLOTS: usize> Handle<SetPolicy> for Device<B, SLOTS> {
    fn run(&mut self, cmd: &SetPolicy, body: &[u8]) -> Result<PolicySet, DeviceError> {
        if self.slot(cmd.slot)?.key.is_none() {
            return Err(DeviceError::SlotEmpty);
        }
        // A cap whose reservations the store would not keep could be spent
        // again after a restart: refused before the counter is spent.
        if cmd.policy.capped() && !self.backend.reserves_spend() {
            return Err(DeviceError::Unsupported);
        }
        // An approval rule no number of approvals meets (or none needs);
        // one on a device without a clock, which could not bound an
        // approval's life (a microcontroller's).
        if let Some(rule) = &cmd.policy.approvals {
            if !rule.well_formed() {
                return Err(DeviceError::Malformed(crate::Error::Malformed));
            }
            if !B::APPROVALS || self.backend.now().is_none() {
                return Err(DeviceError::Unsupported);
            }
        }
        self.admin(cmd, body, |d| {
            let loaded = d
                .slots
                .get(usize::from(cmd.slot))
                .and_then(|s| s.key.as_ref())
                .ok_or(DeviceError::SlotEmpty)?;
            record::store(&mut d.backend, cmd.slot, &StoredKey::of(loaded), &cmd.policy)?;
            if let Some(slot) = d.slots.get_mut(usize::from(cmd.slot)) {
                slot.policy = cmd.policy.clone();
                slot.window = Default::default();
            }
            Ok(PolicySet { slot: cmd.slot, policy_hash: policy_hash(&cmd.policy)? })
        })
    }
}

impl<B: Backend, const SLOTS: usize> Handle<ImportMark> for Device<B, SLOTS> {
    fn run(&mut self, cmd: &ImportMark, body: &[u8]) -> Result<MarkImported, DeviceError> {
        // The device's own statement raises its own mark (one it had);
        // anything else only on the admin's word.
        let digest = cmd.statement.digest(&self.config.device_id);
        let own =
            self.identity().is_some_and(|id| cmd.signature.recover_address(&digest) == Ok(id));
        if !own {
            return self.admin(cmd, body, |d| d.raise_mark(cmd));
        }
        let result = self.raise_mark(cmd);
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Refused(*e),
        };
        let s = &cmd.statement;
        self.log(ImportMark::CODE, cmd.slot, s.sequence, s.commitment, outcome, result.is_ok());
        result
    }
}

impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
    /// Raises slot `cmd.slot`'s mark to the statement's, if the statement's
    /// key is the slot's and its mark is higher.
    #[inline(never)]
    fn raise_mark(&mut self, cmd: &ImportMark) -> Result<MarkImported, DeviceError> {
        let n = cmd.slot;
        let s = &cmd.statement;
        let Device { slots, backend, .. } = self;
        let slot = slots.get_mut(usize::from(n)).ok_or(DeviceError::NoSuchSlot)?;
        if slot.key.as_ref().map(|k| k.key.address()) != Some(s.key) {
            return Err(DeviceError::OtherKey);
        }
        let last = slot.high_water.map(|h| h.value);
        if !s.has_mark() || last.is_some_and(|l| l >= s.sequence) {
            return Ok(MarkImported { slot: n, sequence: last, raised: false });
        }
        let mark = HighWater { value: s.sequence, digest: s.commitment };
        commit_above(backend, CounterId::Slot(n), last, &mark, Record::Plain)?;
        slot.high_water = Some(mark);
        Ok(MarkImported { slot: n, sequence: Some(s.sequence), raised: true })
    }
}
