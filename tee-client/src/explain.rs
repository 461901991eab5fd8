//! A policy refusal in the operator's words: what the signer read the
//! action as, and the limit of the slot's policy it met. The device answers
//! only the violation (its wire is small); the client has the action and
//! can read the policy, so it says the rest.

use tee_core::ActionKind;
use tee_core::action::Action;
use tee_core::protocol::{Allow, Policy, PolicyViolation};

fn allowed<T: std::fmt::Display, const N: usize>(a: &Allow<T, N>) -> String {
    match a {
        Allow::Any => "any".into(),
        Allow::Only(list) => {
            let items: Vec<String> = list.iter().map(ToString::to_string).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// Why `policy` refused `action` with `v`, naming the kind the action was
/// read as, the value the policy judged and its limit.
#[must_use]
pub fn refusal(action: &Action<'_>, policy: &Policy, v: PolicyViolation) -> String {
    let kind = action.kind();
    let read_as = match kind {
        ActionKind::GenericTx => format!(
            "{} (a transfer, or a call to a contract that is not an ERC-8004 registry: blind)",
            kind.name()
        ),
        ActionKind::Eip712Prehashed => {
            format!("{} (typed data other than the registry's: blind)", kind.name())
        }
        k => k.name().to_owned(),
    };
    let kinds: Vec<&str> =
        ActionKind::ALL.iter().filter(|k| policy.kinds.contains(**k)).map(|k| k.name()).collect();
    let limit = match v {
        PolicyViolation::KindNotAllowed => format!("the policy allows the kinds {kinds:?}"),
        PolicyViolation::ChainNotAllowed => format!(
            "chain {} is not among the policy's chains {}",
            action.chain_id().map_or("none".into(), |c| c.to_string()),
            allowed(&policy.chains)
        ),
        PolicyViolation::ContractNotAllowed => format!(
            "contract {} is not among the policy's contracts {}",
            action.contract().map_or("none".into(), ToString::to_string),
            allowed(&policy.contracts)
        ),
        PolicyViolation::AgentNotAllowed => format!(
            "agent {} is not among the policy's agents {}",
            action.agent_id().map_or("none".into(), ToString::to_string),
            allowed(&policy.agents)
        ),
        PolicyViolation::ValueTooHigh => {
            format!(
                "value {} wei above the policy's max_value {} wei",
                action.value(),
                policy.max_value
            )
        }
        PolicyViolation::GasLimitTooHigh => format!(
            "gas limit {} above the policy's max_gas_limit {}",
            action.envelope().map_or(0, |e| e.gas_limit()),
            policy.max_gas_limit
        ),
        PolicyViolation::FeeTooHigh => format!(
            "{} wei per gas above the policy's max_fee_per_gas {}",
            action.envelope().map_or(0, |e| e.max_fee_per_gas()),
            policy.max_fee_per_gas
        ),
        PolicyViolation::DeadlineTooFar => format!(
            "the deadline is more than the policy's max_deadline_ahead_secs ({} s) after the \
             device's time",
            policy.max_deadline_ahead_secs
        ),
        PolicyViolation::DeadlineExpired => "the deadline is before the device's time".into(),
        PolicyViolation::RateLimited => match policy.rate_limit {
            Some(r) => format!("the policy's rate limit: {} per {} s", r.max, r.window_secs),
            None => "the rate limit".into(),
        },
        other => format!("{other:?}"),
    };
    format!("refused by the slot's policy ({v:?}): the action was read as {read_as}; {limit}")
}
