//! A slot's state and the anti-replay rule (see the module documentation of
//! [`crate::device`]), and `Sign`, the command they exist for.

use sha3::{Digest, Keccak256};

use super::Device;
use super::backend::{AuditedMark, Backend, BackendError, CounterId, CounterStore, HighWater};
use super::reply::Handle;
use crate::policy::{RateWindow, Reservation, SpendWindow};
use crate::primitives::{Address, B256};
use crate::protocol::{
    APPROVAL_LEN, ApprovalNeed, ApprovalRule, Approvals, AuditEntry, Command, DeviceError,
    KeyOrigin, MAX_POLICY_APPROVERS, Outcome, Policy, PolicyViolation, Sign, SignApproved,
    SignResponse, approval_digest,
};
use crate::signer::{Signature, SigningKey};

/// A slot's key, ready to sign.
pub(super) struct LoadedKey {
    pub(super) key: SigningKey,
    pub(super) origin: KeyOrigin,
}

/// A slot: its key, its policy, its high-water mark and its rate window.
/// Its spend window is the store's, read when a capped action needs it
/// ([`CounterStore::load_spend`]): a device whose store keeps none (a
/// microcontroller's) carries nothing for it.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) key: Option<LoadedKey>,
    pub(super) policy: Policy,
    pub(super) high_water: Option<HighWater>,
    pub(super) window: RateWindow,
}

/// What a slot's high-water mark commits to: `keccak256(address ‖ digest)`.
#[must_use]
pub fn retry_commitment(signer: &Address, digest: &B256) -> B256 {
    let mut h = Keccak256::new();
    h.update(signer.0);
    h.update(digest.0);
    B256(h.finalize().into())
}

impl Slot {
    /// The rule for a new mark: `req`'s sequence above the high-water mark,
    /// and its action within the policy (rate window `window`). What
    /// `Device::decide_sign` applies, and `Device::sign_claim` asks.
    ///
    /// An action the policy's approval rule flags needs its approvals
    /// (`approved`'s answer: which approvers approved, `None` when the rule
    /// does not flag it).
    fn admit_new(
        &self,
        window: &mut RateWindow,
        req: &Sign<'_>,
        signed: (&Address, &B256),
        (asked, takes_approvals): (Option<Asked<'_>>, bool),
        now: Option<u64>,
    ) -> Result<Option<u8>, DeviceError> {
        let (signer, digest) = signed;
        if let Some(hw) = self.high_water
            && req.sequence <= hw.value
        {
            return Err(DeviceError::Replay { high_water: hw.value });
        }
        let denied = |v| DeviceError::denied(v, now);
        self.policy.check(&req.action, signer, now).map_err(denied)?;
        // Where the backend takes none, no policy holds a rule (`SetPolicy`
        // refuses it) and none of this is in the image.
        let rule = if takes_approvals { self.policy.approval_rule(&req.action) } else { None };
        let approved = match rule {
            Some(rule) => Some(approved(rule, asked, signer, req.sequence, digest, now)?),
            None => None,
        };
        self.policy.count(window, now).map_err(denied)?;
        Ok(approved)
    }

    /// The spend window (the native value's or the token's) after `req`
    /// reserves in it under its cap (`None`: no cap, or nothing to
    /// reserve), from the window `store` committed last, on a store that
    /// commits it with the mark (a cap elsewhere is `Unsupported`; where
    /// `reserves_spend` is a constant `false`, as on a microcontroller,
    /// none of this is in the image).
    fn reserve<S: CounterStore>(
        &self,
        slot: u8,
        req: &Sign<'_>,
        now: Option<u64>,
        store: &mut S,
    ) -> Result<Option<(Reservation, Spent)>, DeviceError> {
        if !store.reserves_spend() {
            return if self.policy.capped() { Err(DeviceError::Unsupported) } else { Ok(None) };
        }
        let Some(r) = self.policy.reservation(&req.action) else { return Ok(None) };
        let now = now.ok_or(DeviceError::Denied(crate::protocol::PolicyViolation::NoClock))?;
        let window = store.load_spend(slot, r.asset.as_ref()).map_err(|_| DeviceError::Storage)?;
        let window = window.unwrap_or_default().reserve(&r.cap, &r.amount, now);
        window
            .map(|window| Some((r, Spent { asset: r.asset, window })))
            .map_err(DeviceError::OverCap)
    }
}

/// A request's approvals and, where the host recovered them outside the
/// device's lock ([`super::DecodedSign::recover_approvals`]), who signed
/// them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Asked<'a> {
    pub(super) approvals: &'a Approvals<'a>,
    pub(super) recovered: Option<&'a Recovered>,
}

/// Who signed a request's approvals (one address per signature that
/// recovers, in their order), for the key `signer`: what the device counts
/// against the rule's approvers. Recovered once per request, outside the
/// device's lock where the host can; the device recovers them itself for
/// any other key (a key replaced in between) or when nobody did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recovered {
    signer: Address,
    who: [Option<Address>; MAX_POLICY_APPROVERS],
}

impl Recovered {
    /// Recovers `approvals` of the action whose digest is `digest`, to be
    /// signed by `signer` at `sequence`. Malformed signatures recover to
    /// nobody.
    pub(super) fn of(
        approvals: &Approvals<'_>,
        signer: &Address,
        sequence: u64,
        digest: &B256,
    ) -> Recovered {
        let message = approval_digest(signer, sequence, digest, approvals.expires);
        let mut who = [None; MAX_POLICY_APPROVERS];
        for (w, bytes) in who.iter_mut().zip(approvals.signatures.chunks_exact(APPROVAL_LEN)) {
            *w = <&[u8; APPROVAL_LEN]>::try_from(bytes)
                .ok()
                .and_then(|b| Signature::from_bytes(b).ok())
                .and_then(|sig| sig.recover_address(&message).ok());
        }
        Recovered { signer: *signer, who }
    }
}

/// Which of `rule`'s approvers approved the action whose digest is
/// `digest`, to be signed by `signer` at `sequence` (one bit each, by their
/// place in the rule's list), or the refusal: `ApprovalRequired` with how
/// many verified and how many must, an expiry passed or further ahead than
/// the rule allows. Needs the device's clock. Signatures that do not
/// recover to an approver, or repeat one, count nothing; signatures the
/// host recovered count only for the key they were recovered for. Not
/// inlined: the recoveries' stack is its own frame.
#[inline(never)]
fn approved(
    rule: &ApprovalRule,
    asked: Option<Asked<'_>>,
    signer: &Address,
    sequence: u64,
    digest: &B256,
    now: Option<u64>,
) -> Result<u8, DeviceError> {
    let now = now.ok_or(DeviceError::Denied(PolicyViolation::NoClock))?;
    let expires_by = now.saturating_add(u64::from(rule.max_ttl_secs));
    let need = |have: u32| {
        let have = u8::try_from(have).unwrap_or(u8::MAX);
        let expires_by_be = expires_by.to_be_bytes();
        DeviceError::ApprovalRequired(ApprovalNeed { have, need: rule.threshold, expires_by_be })
    };
    let Some(asked) = asked else { return Err(need(0)) };
    let a = asked.approvals;
    if a.expires < now {
        return Err(DeviceError::denied(PolicyViolation::ApprovalExpired, Some(now)));
    }
    if a.expires > expires_by {
        return Err(DeviceError::denied(PolicyViolation::ApprovalTooLong, Some(now)));
    }
    let recovered = match asked.recovered {
        Some(r) if r.signer == *signer => *r,
        _ => Recovered::of(a, signer, sequence, digest),
    };
    let mut by = 0u8;
    for w in recovered.who.iter().flatten() {
        if let Some(i) = rule.approvers.iter().position(|a| a == w) {
            by |= 1 << i;
        }
    }
    if by.count_ones() < u32::from(rule.threshold) {
        return Err(need(by.count_ones()));
    }
    Ok(by)
}

/// What a `Sign` would claim in a store the replicas of one key share
/// ([`super::Device::sign_claim`]): the signer, the sequence and the retry
/// commitment its mark would carry, and what it would reserve under the
/// slot's spend cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignClaim {
    /// The slot's key's address.
    pub signer: Address,
    /// The sequence.
    pub sequence: u64,
    /// [`retry_commitment`] of the signer and the action's digest.
    pub commitment: B256,
    /// The value to reserve in the key's shared spend window, in the same
    /// transaction as the mark (`None`: no cap, or no value).
    pub spend: Option<SpendAsk>,
}

/// A window with a signature's reservation in it: the native value's
/// (`asset` `None`) or a token's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spent {
    /// `None` for wei, else the token.
    pub asset: Option<Address>,
    /// The window after the reservation.
    pub window: SpendWindow,
}

/// A capped signature's reservation where the spend window is shared
/// ([`SignClaim::spend`]): the store reserves `value` under `cap` at `now`
/// in the key's window of `asset` with [`SpendWindow::reserve`], or
/// refuses the claim with the [`crate::protocol::CapRefusal`] and raises
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpendAsk {
    /// The window: `None` for wei, else the token.
    pub asset: Option<Address>,
    /// The action's native value (wei) or token amount.
    pub value: crate::U256,
    /// The slot's cap.
    pub cap: crate::protocol::SpendCap,
    /// The device's clock when the claim was made.
    pub now: u64,
}

/// What records a committed mark.
pub(super) enum Record<'a> {
    /// The counter alone (the admin counter: its statement records it).
    Plain,
    /// A signature's mark, by `signer`, with the audit entry that records
    /// it (and the chain hash before it) and the spend window it reserved
    /// in, in one write; claimed in a store that replicas share where there
    /// is one.
    Signature(&'a Address, &'a AuditEntry, &'a B256, Option<&'a Spent>),
}

/// Commits `mark` as counter `id`, whose last value is `last`, with what
/// records it: the one place a durable counter moves, for every backend. A
/// value at or below the last is refused before it reaches the store, so
/// no backend can be made to move a counter back; a shared store's "used"
/// is a replay refusal naming its mark.
pub(super) fn commit_above<S: CounterStore>(
    store: &mut S,
    id: CounterId,
    last: Option<u64>,
    mark: &HighWater,
    record: Record<'_>,
) -> Result<(), DeviceError> {
    if last.is_some_and(|last| mark.value <= last) {
        return Err(DeviceError::Storage);
    }
    match (record, id) {
        (Record::Signature(signer, entry, prev, spend), CounterId::Slot(slot)) => {
            store.commit_signature_mark(slot, signer, AuditedMark { mark, entry, prev, spend })
        }
        (Record::Signature(_, entry, prev, _), CounterId::Admin) => {
            store.commit_counter_audited(id, AuditedMark { mark, entry, prev, spend: None })
        }
        (Record::Plain, _) => store.commit_counter(id, mark),
    }
    .map_err(|e| match e {
        BackendError::Used { stored } => DeviceError::Replay { high_water: stored },
        BackendError::OverCap(refusal) => DeviceError::OverCap(refusal),
        _ => DeviceError::Storage,
    })
}

/// How a signature came to be answered.
enum Signed {
    /// A new mark, committed with its audit entry in one write.
    Committed,
    /// An exact retry of the last signed action: nothing new is released.
    Retry,
}

/// What the command table's dispatch would run for a `Sign`; every path
/// in fact reads a `Sign` through [`super::Incoming`], which decodes and
/// hashes it once.
impl<B: Backend, const SLOTS: usize> Handle<Sign<'static>> for Device<B, SLOTS> {
    fn run(&mut self, req: &Sign<'_>, _: &[u8]) -> Result<SignResponse, DeviceError> {
        self.sign_from_table(req, None)
    }
}

/// As for `Sign`: every path reads a `SignApproved` through
/// [`super::Incoming`].
impl<B: Backend, const SLOTS: usize> Handle<SignApproved<'static>> for Device<B, SLOTS> {
    fn run(&mut self, req: &SignApproved<'_>, _: &[u8]) -> Result<SignResponse, DeviceError> {
        let sign = Sign { slot: req.slot, sequence: req.sequence, action: req.action.clone() };
        let approvals = Approvals { expires: req.expires, signatures: req.approvals };
        self.sign_from_table(&sign, Some(Asked { approvals: &approvals, recovered: None }))
    }
}

/// Signs an admitted request's digest: the response.
pub(super) fn respond_sign(
    key: &SigningKey,
    digest: &B256,
    sequence: u64,
) -> Result<SignResponse, DeviceError> {
    let signature = key.sign_digest(digest).map_err(|_| DeviceError::SigningFailed)?;
    Ok(SignResponse { signature, digest: *digest, sequence })
}

impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
    /// The table's `Sign` and `SignApproved`: one copy of the path.
    #[inline(never)]
    fn sign_from_table(
        &mut self,
        req: &Sign<'_>,
        approvals: Option<Asked<'_>>,
    ) -> Result<SignResponse, DeviceError> {
        let digest = req.action.digest();
        let key = self.admit_sign(req, approvals, &digest, req.action.encoded_len())?;
        respond_sign(&key, &digest, req.sequence)
    }

    /// The address of the key a request with approvals would be signed by
    /// (its slot's), for the host to recover the approvals with outside
    /// the device's lock ([`super::DecodedSign::recover_approvals`]);
    /// `None` for a request without approvals, a slot without a key, or a
    /// device that takes no approvals.
    #[must_use]
    pub fn approvals_signer(&self, decoded: &super::DecodedSign<'_>) -> Option<Address> {
        if !B::APPROVALS || !decoded.has_approvals() {
            return None;
        }
        let slot = self.slots.get(usize::from(decoded.request.slot))?;
        slot.key.as_ref().map(|k| k.key.address())
    }

    /// For a host whose marks are shared with other replicas: the claim a
    /// decoded `Sign` ([`super::Incoming::read`]) would make if the device
    /// signed it now (a new mark: not a replay, not an exact retry, within
    /// the slot's bounds and policy), checked without consuming anything: no
    /// rate-window use, nothing written, nothing audited. `None` for one the
    /// device will refuse or answer as a retry ([`Device::begin_incoming`]
    /// then answers it as always). The host claims it outside the device's
    /// lock, many at once, before `begin_incoming` commits the mark
    /// ([`CounterStore::commit_signature_mark`] then finds it claimed);
    /// nothing is signed on this answer alone.
    pub fn sign_claim(&mut self, decoded: &super::DecodedSign<'_>) -> Option<SignClaim> {
        let req = &decoded.request;
        self.config.bounds.check(&req.action, decoded.action_len).ok()?;
        let now = self.backend.now();
        let Device { slots, backend, .. } = self;
        let slot = slots.get(usize::from(req.slot))?;
        let signer = slot.key.as_ref()?.key.address();
        // The same rule `decide_sign` applies, on a copy of the window.
        let mut window = slot.window;
        let approvals = (decoded.asked(), B::APPROVALS);
        slot.admit_new(&mut window, req, (&signer, &decoded.digest), approvals, now).ok()?;
        let reserved = slot.reserve(req.slot, req, now, backend).ok()?;
        let commitment = retry_commitment(&signer, &decoded.digest);
        // A reservation was made only with a clock (`reserve` refuses without).
        let spend = match (reserved, now) {
            (Some((r, _)), Some(now)) => {
                Some(SpendAsk { asset: r.asset, value: r.amount, cap: r.cap, now })
            }
            _ => None,
        };
        Some(SignClaim { signer, sequence: req.sequence, commitment, spend })
    }

    /// Decides a `Sign` whose action's digest is `digest` and canonical
    /// length `action_len`: the device's bounds, the anti-replay rule and the
    /// policy, the new mark committed with its audit entry (or a retry or
    /// refusal audited). Returns the key to sign with; the signature itself
    /// needs no device state, so a host computes it outside the device's
    /// lock ([`super::PendingSign`]).
    pub(super) fn admit_sign(
        &mut self,
        req: &Sign<'_>,
        approvals: Option<Asked<'_>>,
        digest: &B256,
        action_len: usize,
    ) -> Result<SigningKey, DeviceError> {
        // Resolved at build time: without approvals, none of their code.
        let approvals = if B::APPROVALS { approvals } else { None };
        let result = match self.config.bounds.check(&req.action, action_len) {
            Ok(()) => self.decide_sign(req, approvals, digest),
            Err(over) => Err(DeviceError::OverBound(over)),
        };
        let code = if approvals.is_some() { SignApproved::CODE } else { Sign::CODE };
        let outcome = match &result {
            // Already on the record, with the mark.
            Ok((_, Signed::Committed)) => None,
            Ok((_, Signed::Retry)) => Some(Outcome::Retry),
            Err(e) => Some(Outcome::Refused(*e)),
        };
        if let Some(outcome) = outcome {
            self.log(code, req.slot, req.sequence, *digest, outcome, false);
        }
        result.map(|(key, _)| key)
    }

    /// The key to sign with and how the signature came to be.
    fn decide_sign(
        &mut self,
        req: &Sign<'_>,
        approvals: Option<Asked<'_>>,
        digest: &B256,
    ) -> Result<(SigningKey, Signed), DeviceError> {
        let now = self.backend.now();
        let Device { slots, backend, audit, .. } = self;
        let slot = slots.get_mut(usize::from(req.slot)).ok_or(DeviceError::NoSuchSlot)?;
        let loaded = slot.key.as_ref().ok_or(DeviceError::SlotEmpty)?;
        let address = loaded.key.address();
        let commitment = retry_commitment(&address, digest);
        if slot.high_water.is_some_and(|hw| req.sequence == hw.value && hw.digest == commitment) {
            // The exact action this key already signed at this sequence:
            // the signature is deterministic, so this releases nothing new.
            return Ok((loaded.key.duplicate(), Signed::Retry));
        }
        let mut window = slot.window;
        let asked = (approvals, B::APPROVALS);
        let approved = slot.admit_new(&mut window, req, (&address, digest), asked, now)?;
        // The value reserved under the cap, if any: committed with the mark
        // or not at all, so a refusal or a failed write reserves nothing
        // (and a refusal by the cap counts nothing in the rate window).
        let spend = slot.reserve(req.slot, req, now, backend)?.map(|(_, spent)| spent);
        let mark = HighWater { value: req.sequence, digest: commitment };
        let last = slot.high_water.map(|h| h.value);
        // The mark, the entry that records it and the reservation go to
        // disk in one write.
        let (code, outcome) = match (approvals, approved) {
            (_, Some(by)) => (SignApproved::CODE, Outcome::Approved(by)),
            (Some(_), None) => (SignApproved::CODE, Outcome::Ok),
            (None, None) => (Sign::CODE, Outcome::Ok),
        };
        let (entry, prev) = audit.next(code, req.slot, req.sequence, *digest, outcome);
        let id = CounterId::Slot(req.slot);
        let record = Record::Signature(&address, &entry, &prev, spend.as_ref());
        commit_above(backend, id, last, &mark, record)?;
        // Counted in the rate window only once committed: a mark the
        // store refused (used elsewhere, over a shared cap) counts nothing.
        slot.window = window;
        audit.push(entry);
        slot.high_water = Some(mark);
        Ok((loaded.key.duplicate(), Signed::Committed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter store that keeps what it is given, whatever it is.
    struct Naive(Option<HighWater>);

    impl CounterStore for Naive {
        fn load_counter(&mut self, _: CounterId) -> Result<Option<HighWater>, BackendError> {
            Ok(self.0)
        }
        fn commit_counter(&mut self, _: CounterId, v: &HighWater) -> Result<(), BackendError> {
            self.0 = Some(*v);
            Ok(())
        }
    }

    fn hw(value: u64) -> HighWater {
        HighWater { value, digest: B256([value as u8; 32]) }
    }

    /// The device, not each store, keeps counters from moving back: a
    /// store that would take anything never sees a value at or below the
    /// last one.
    #[test]
    fn counters_never_move_back_whatever_the_store() {
        let mut s = Naive(None);
        let id = CounterId::Slot(2);
        commit_above(&mut s, id, None, &hw(10), Record::Plain).unwrap();
        assert_eq!(
            commit_above(&mut s, id, Some(10), &hw(9), Record::Plain),
            Err(DeviceError::Storage)
        );
        assert_eq!(
            commit_above(&mut s, id, Some(10), &hw(10), Record::Plain),
            Err(DeviceError::Storage)
        );
        assert_eq!(s.0, Some(hw(10)));
        commit_above(&mut s, id, Some(10), &hw(11), Record::Plain).unwrap();
        assert_eq!(s.0, Some(hw(11)));
    }
}
