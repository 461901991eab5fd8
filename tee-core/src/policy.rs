//! Every policy decision, in one place: whether a slot's [`Policy`] lets
//! its key sign an action now, rate-limit window included. The policy type
//! itself is a wire type ([`crate::protocol::Policy`]).

use serde::{Deserialize, Serialize};

use crate::action::{Action, TokenMove};
use crate::primitives::{Address, U256};
use crate::protocol::{ApprovalRule, CapRefusal, Policy, PolicyViolation, RateLimit, SpendCap};

/// A slot's rate-limit window: when it started and how many signatures it
/// has seen. Volatile: a restart starts a new window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateWindow {
    start: u64,
    count: u32,
}

impl RateWindow {
    /// Counts one signature under `limit` at `now`, or refuses it.
    fn admit(&mut self, limit: Option<RateLimit>, now: Option<u64>) -> Result<(), PolicyViolation> {
        let Some(limit) = limit else { return Ok(()) };
        let now = now.ok_or(PolicyViolation::NoClock)?;
        if now.saturating_sub(self.start) >= u64::from(limit.window_secs) {
            *self = RateWindow { start: now, count: 0 };
        }
        if self.count >= limit.max {
            return Err(PolicyViolation::RateLimited);
        }
        self.count += 1;
        Ok(())
    }
}

/// What a capped action reserves ([`Policy::reservation`]): in which
/// window (the native value's, or a token's), how much, under which cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reservation {
    /// `None` for the native value (wei), else the token.
    pub asset: Option<Address>,
    /// Wei, or the token's smallest unit.
    pub amount: U256,
    /// The cap of that window.
    pub cap: SpendCap,
}

/// A slot's spend window: when it started and the native value (or, for a
/// token's window, the token amount) its signatures reserved in it.
/// Durable: committed with each signature's mark
/// ([`crate::device::AuditedMark::spend`]) and read from the store when a
/// capped action needs it ([`crate::device::CounterStore::load_spend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SpendWindow {
    /// When the window started (unix seconds).
    pub start: u64,
    /// Wei reserved in it.
    pub spent: U256,
}

impl SpendWindow {
    /// Reserves `value` under `cap` at `now`: the window with it, or the
    /// refusal. A window ends `cap.window_secs` after it started and the
    /// next starts at the first reservation after that; a clock that went
    /// back never starts one (the window only moves forward).
    pub fn reserve(
        &self,
        cap: &SpendCap,
        value: &U256,
        now: u64,
    ) -> Result<SpendWindow, CapRefusal> {
        let ends = self.start.saturating_add(u64::from(cap.window_secs));
        let window =
            if now >= ends { SpendWindow { start: now, spent: U256::ZERO } } else { *self };
        match window.spent.checked_add(value) {
            Some(spent) if spent <= cap.max => Ok(SpendWindow { start: window.start, spent }),
            _ => {
                let remaining = cap.max.saturating_sub(&window.spent).to_u128();
                let ends = window.start.saturating_add(u64::from(cap.window_secs));
                let ends_in = u32::try_from(ends.saturating_sub(now)).unwrap_or(u32::MAX);
                Err(CapRefusal::new(remaining.unwrap_or(u128::MAX), ends_in))
            }
        }
    }
}

impl Policy {
    /// What `action` would reserve: its native value under `spend_cap`, or
    /// a token action's amount under its token's `cap`, each in a window of
    /// its own; `None` when that is uncapped or nothing (zero).
    #[must_use]
    pub fn reservation(&self, action: &Action<'_>) -> Option<Reservation> {
        let (asset, amount, cap) = match action.token_move() {
            Some(m) => (Some(*m.token), *m.amount, self.token_rule(m.token)?.cap?),
            None => (None, action.value(), self.spend_cap?),
        };
        (!amount.is_zero()).then_some(Reservation { asset, amount, cap })
    }

    /// Counts one signature in the slot's rate `window`, or refuses it.
    pub fn count(&self, window: &mut RateWindow, now: Option<u64>) -> Result<(), PolicyViolation> {
        window.admit(self.rate_limit, now)
    }

    /// The approval rule `action` waits for, if it flags it: a kind it
    /// names, a transaction's value above its `above_value`, a token
    /// action's amount above its `above_amount` (an unlimited approval is
    /// above any).
    #[must_use]
    pub fn approval_rule(&self, action: &Action<'_>) -> Option<&ApprovalRule> {
        let rule = self.approvals.as_ref()?;
        let above = |bound: Option<U256>, amount: &U256| bound.is_some_and(|b| *amount > b);
        let flagged = rule.kinds.contains(action.kind())
            || (action.envelope().is_some() && above(rule.above_value, &action.value()))
            || action.token_move().is_some_and(|m| {
                rule.above_amount.is_some() && (m.unlimited || above(rule.above_amount, m.amount))
            });
        flagged.then_some(rule)
    }

    /// Checks `action`, to be signed by `signer`, at unix time `now`:
    /// every rule but the rate limit, which [`Policy::count`] counts (the
    /// device asks [`Policy::approval_rule`] in between).
    pub fn check(
        &self,
        action: &Action<'_>,
        signer: &Address,
        now: Option<u64>,
    ) -> Result<(), PolicyViolation> {
        use PolicyViolation as V;
        if self.valid_until != 0 && now.ok_or(V::NoClock)? > self.valid_until {
            return Err(V::PolicyExpired);
        }
        if !self.kinds.contains(action.kind()) {
            return Err(V::KindNotAllowed);
        }
        if action.chain_id().is_some_and(|c| !self.chains.permits(&c)) {
            return Err(V::ChainNotAllowed);
        }
        if let Some(m) = action.token_move() {
            self.check_token(&m, action, signer)?;
        } else if action.contract().is_some_and(|a| !self.contracts.permits(a)) {
            return Err(V::ContractNotAllowed);
        }
        if action.agent_id().is_some_and(|id| !self.agents.permits(id)) {
            return Err(V::AgentNotAllowed);
        }
        if let Action::Eip712Prehashed(p) = action
            && !self.eip712_domains.permits(&p.domain_separator)
        {
            return Err(V::DomainNotAllowed);
        }
        if let Some(tx) = action.envelope() {
            if action.value() > self.max_value {
                return Err(V::ValueTooHigh);
            }
            if tx.gas_limit() > self.max_gas_limit {
                return Err(V::GasLimitTooHigh);
            }
            if tx.max_fee_per_gas() > self.max_fee_per_gas {
                return Err(V::FeeTooHigh);
            }
        }
        if let Action::AgentWalletSet(w) = action
            && w.new_wallet != *signer
        {
            return Err(V::WalletIsNotSigner);
        }
        if let Some(deadline) = action.deadline() {
            let now = now.ok_or(V::NoClock)?;
            if deadline < now {
                return Err(V::DeadlineExpired);
            }
            if deadline - now > self.max_deadline_ahead_secs {
                return Err(V::DeadlineTooFar);
            }
        }
        Ok(())
    }

    /// A token action's rules: the token named, the amount under its
    /// bound (or an unlimited approval allowed), the recipient allowed,
    /// an authorization's payer the signer.
    fn check_token(
        &self,
        m: &TokenMove<'_>,
        action: &Action<'_>,
        signer: &Address,
    ) -> Result<(), PolicyViolation> {
        use PolicyViolation as V;
        let rule = self.token_rule(m.token).ok_or(V::TokenNotAllowed)?;
        if m.unlimited {
            if !self.unlimited_approvals {
                return Err(V::UnlimitedApproval);
            }
        } else if *m.amount > rule.max_amount {
            return Err(V::TokenAmountTooHigh);
        }
        if !self.recipients.permits(m.recipient) {
            return Err(V::RecipientNotAllowed);
        }
        if let Action::TokenAuthorization(a) = action
            && a.from != *signer
        {
            return Err(V::PayerIsNotSigner);
        }
        Ok(())
    }
}
