//! Admin commands a middleman cannot subvert.
//!
//! The device's answers are not authenticated, except `AdminState`: a
//! statement of its last admin counter and command and of a slot's key and
//! policy, signed by its identity key over the reader's nonce. So the admin
//! tool never takes a counter or a success from an ordinary answer:
//!
//! 1. it reads a signed statement and authorizes the command at the counter
//!    after the one stated (the device accepts no other: a counter cannot be
//!    jumped to lock the admin out);
//! 2. it sends the command;
//! 3. it reads a second statement (fresh nonce) and reports success only if
//!    the device states the command's own payload at that counter, and the
//!    answer agrees with what the slot now holds; an answer that says
//!    "refused" while the statement shows it applied is a forgery too.
//!
//! The identity is pinned ([`Trust::identity`]: the address `Attest` at
//! slot 255 binds to the TEE), or, unpinned, taken from the first statement
//! and held to for the rest of the session (trust on first use).

use tee_core::protocol::{
    AdminCommand, AdminState, AdminStateResponse, AdminStatement, DeriveKey, GenerateKey,
    PolicySet, PublicKeyResponse, SetPolicy, authorize,
};
use tee_core::{Address, B256, SigningKey};

use super::{Client, ClientError};
use std::io::{Read, Write};

/// Whom the admin tool trusts to speak for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    /// The device's id (the admin domain's salt).
    pub device_id: B256,
    /// The device's identity address, pinned; `None`: trust on first use.
    pub identity: Option<Address>,
}

/// Why the device's answer cannot be believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// The statement's signature is not its named identity's.
    #[error("the admin statement is not signed by the identity it names")]
    BadSignature,
    /// Signed by another identity than the one trusted.
    #[error("the admin statement is signed by {got}, not the device's identity {trusted}")]
    OtherIdentity {
        /// The identity trusted.
        trusted: Address,
        /// The one that signed.
        got: Address,
    },
    /// Not an answer to this request (another nonce or slot): a replay.
    #[error("the admin statement answers another request (a replayed statement)")]
    Replayed,
    /// The device states another command at the counter (or none): the
    /// command did not take effect, whatever the answer said.
    #[error(
        "the device did not apply the command: it states counter {last_counter}, not {counter} with this command"
    )]
    NotApplied {
        /// The counter the command was signed at.
        counter: u64,
        /// The device's last counter.
        last_counter: u64,
    },
    /// The answer said refused, the signed statement says applied.
    #[error("the answer said the command was refused ({0}), but the device states it applied")]
    AppliedButRefused(String),
    /// The answer disagrees with what the device states the slot holds.
    #[error("the answer disagrees with the device's signed statement of slot {0}")]
    Disagrees(u8),
    /// The counter cannot go higher.
    #[error("the admin counter is exhausted")]
    CounterExhausted,
}

/// An admin command whose answer can be checked against the device's
/// signed statement of the slot afterwards.
pub trait Confirm: AdminCommand {
    /// Whether `response` agrees with `statement`.
    fn agrees(&self, response: &Self::Response<'_>, statement: &AdminStatement) -> bool;
}

fn key_agrees(slot: u8, r: &PublicKeyResponse, s: &AdminStatement) -> bool {
    r.slot == slot && r.address == s.key
}

impl Confirm for GenerateKey {
    fn agrees(&self, r: &PublicKeyResponse, s: &AdminStatement) -> bool {
        key_agrees(self.slot, r, s)
    }
}

impl Confirm for DeriveKey {
    fn agrees(&self, r: &PublicKeyResponse, s: &AdminStatement) -> bool {
        key_agrees(self.slot, r, s)
    }
}

impl Confirm for SetPolicy {
    fn agrees(&self, r: &PolicySet, s: &AdminStatement) -> bool {
        r.slot == self.slot && r.policy_hash == s.policy_hash
    }
}

fn nonce() -> Result<B256, ClientError> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| ClientError::Io(std::io::Error::other(e.to_string())))?;
    Ok(B256(n))
}

impl<S: Read + Write> Client<S> {
    /// The device's signed statement of its admin state and of `slot`,
    /// checked: signed, over a fresh nonce, by the trusted identity (which,
    /// unpinned, the first statement sets).
    pub fn admin_state(
        &mut self,
        slot: u8,
        trust: &mut Trust,
    ) -> Result<AdminStateResponse, ClientError> {
        let nonce = nonce()?;
        let r = self.call(&AdminState { slot, nonce })?;
        if !r.is_signed(&trust.device_id) {
            return Err(Unauthenticated::BadSignature.into());
        }
        match trust.identity {
            Some(trusted) if trusted != r.identity => {
                return Err(Unauthenticated::OtherIdentity { trusted, got: r.identity }.into());
            }
            Some(_) => {}
            None => trust.identity = Some(r.identity),
        }
        if r.statement.nonce != nonce || r.statement.slot != slot {
            return Err(Unauthenticated::Replayed.into());
        }
        Ok(r)
    }

    /// Runs admin command `cmd` authenticated end to end (see the module
    /// documentation): at the counter after the device's signed one, and
    /// confirmed by its signed statement afterwards, which it returns.
    pub fn admin_confirmed<C: Confirm>(
        &mut self,
        mut cmd: C,
        admin: &SigningKey,
        trust: &mut Trust,
    ) -> Result<AdminStateResponse, ClientError> {
        let slot = cmd.slot();
        let before = self.admin_state(slot, trust)?;
        let counter = before
            .statement
            .last_counter
            .checked_add(1)
            .ok_or(Unauthenticated::CounterExhausted)?;
        let payload =
            authorize(&mut cmd, admin, &trust.device_id, counter).map_err(ClientError::Encode)?;
        self.request(&cmd)?;
        let answer = std::mem::take(&mut self.last);
        let after = self.admin_state(slot, trust)?;
        self.last = answer;
        let s = &after.statement;
        let applied = s.last_counter == counter && s.last_payload == payload;
        match (self.last_response::<C>(), applied) {
            (Ok(r), true) if cmd.agrees(&r, s) => Ok(after),
            (Ok(_), true) => Err(Unauthenticated::Disagrees(slot).into()),
            (Ok(_), false) => {
                Err(Unauthenticated::NotApplied { counter, last_counter: s.last_counter }.into())
            }
            (Err(e), true) => Err(Unauthenticated::AppliedButRefused(e.to_string()).into()),
            // Refused, and the statement shows nothing applied: the refusal
            // itself is unauthenticated, but it changed nothing.
            (Err(e), false) => Err(e),
        }
    }
}
