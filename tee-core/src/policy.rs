//! Every policy decision, in one place: whether a slot's [`Policy`] lets
//! its key sign an action now, rate-limit window included. The policy type
//! itself is a wire type ([`crate::protocol::Policy`]).

use crate::action::Action;
use crate::primitives::Address;
use crate::protocol::{Policy, PolicyViolation, RateLimit};

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

impl Policy {
    /// Decides whether `action`, signed by `signer` at unix time `now`, is
    /// allowed, and counts it in the slot's rate `window` if so.
    pub fn admit(
        &self,
        window: &mut RateWindow,
        action: &Action<'_>,
        signer: &Address,
        now: Option<u64>,
    ) -> Result<(), PolicyViolation> {
        self.check(action, signer, now)?;
        window.admit(self.rate_limit, now)
    }

    /// Checks `action`, to be signed by `signer`, at unix time `now`:
    /// every rule but the rate limit, which [`Policy::admit`] counts.
    pub fn check(
        &self,
        action: &Action<'_>,
        signer: &Address,
        now: Option<u64>,
    ) -> Result<(), PolicyViolation> {
        use PolicyViolation as V;
        if !self.kinds.contains(action.kind()) {
            return Err(V::KindNotAllowed);
        }
        if action.chain_id().is_some_and(|c| !self.chains.permits(&c)) {
            return Err(V::ChainNotAllowed);
        }
        if action.contract().is_some_and(|a| !self.contracts.permits(a)) {
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
}
