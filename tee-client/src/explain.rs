//! A policy refusal in the operator's words: what the signer read the
//! action as, and the limit of the slot's policy it met. The device answers
//! only the violation (its wire is small); the client has the action and
//! can read the policy, so it says the rest.

use tee_core::ActionKind;
use tee_core::action::Action;
use tee_core::protocol::{Allow, DeviceError, Policy, PolicyViolation};

fn allowed<T: std::fmt::Display, const N: usize>(a: &Allow<T, N>) -> String {
    match a {
        Allow::Any => "any".into(),
        Allow::Only(list) => {
            let items: Vec<String> = list.iter().map(ToString::to_string).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// Why `policy` refused `action` with `e` (a policy refusal: `Denied`,
/// `DeniedAt`, `OverCap` or `ApprovalRequired`), naming the kind the action was read as, the value the
/// policy judged, its limit and, for a rule that reads the time, the
/// device's time. Any other error is named as it is.
#[must_use]
pub fn refusal(action: &Action<'_>, policy: &Policy, e: DeviceError) -> String {
    let Some(v) = e.violation() else {
        return format!("refused: {e:?}");
    };
    let device_time = match e {
        DeviceError::DeniedAt { device_time, .. } => Some(device_time),
        _ => None,
    };
    let kind = action.kind();
    let read_as = match kind {
        ActionKind::GenericTx => format!(
            "{} (a transfer, or a call to a contract that is not an ERC-8004 registry: blind)",
            kind.name()
        ),
        ActionKind::Eip712Prehashed => {
            format!("{} (typed data of no type the signer knows: blind)", kind.name())
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
            "deadline {} is {} s after the device's time {}, more than the policy's \
             max_deadline_ahead_secs ({} s)",
            or_unknown(action.deadline()),
            match (action.deadline(), device_time) {
                (Some(d), Some(t)) => d.saturating_sub(t).to_string(),
                _ => "?".into(),
            },
            or_unknown(device_time),
            policy.max_deadline_ahead_secs
        ),
        PolicyViolation::DeadlineExpired => format!(
            "deadline {} is before the device's time {}",
            or_unknown(action.deadline()),
            or_unknown(device_time)
        ),
        PolicyViolation::RateLimited => match policy.rate_limit {
            Some(r) => format!(
                "the policy's rate limit: {} per {} s, used up in the window at the device's \
                 time {}",
                r.max,
                r.window_secs,
                or_unknown(device_time)
            ),
            None => "the rate limit".into(),
        },
        PolicyViolation::PolicyExpired => format!(
            "the policy ended at its valid_until {}, before the device's time {}",
            policy.valid_until,
            or_unknown(device_time)
        ),
        PolicyViolation::SpendCapExceeded if action.token_move().is_some() => {
            let m = action.token_move();
            let cap = m.and_then(|m| policy.token_rule(m.token)).and_then(|r| r.cap);
            match (e, m, cap) {
                (DeviceError::OverCap(c), Some(m), Some(cap)) => format!(
                    "amount {} of token {} above the {} its cap ({} per {} s) has left in its \
                     window, which ends in {} s by the device's clock",
                    m.amount,
                    m.token,
                    c.remaining(),
                    cap.max,
                    cap.window_secs,
                    c.ends_in
                ),
                _ => "the token's cap".into(),
            }
        }
        PolicyViolation::SpendCapExceeded => match (e, policy.spend_cap) {
            (DeviceError::OverCap(c), Some(cap)) => format!(
                "value {} wei above the {} wei the policy's spend_cap ({} wei per {} s) has \
                 left in its window, which ends in {} s by the device's clock",
                action.value(),
                c.remaining(),
                cap.max,
                cap.window_secs,
                c.ends_in
            ),
            (DeviceError::OverCap(c), None) => format!(
                "value {} wei above the {} wei the spend cap has left for {} s",
                action.value(),
                c.remaining(),
                c.ends_in
            ),
            _ => "the spend cap".into(),
        },
        PolicyViolation::TokenNotAllowed => format!(
            "token {} is not among the policy's tokens [{}]",
            action.token_move().map_or("none".into(), |m| m.token.to_string()),
            policy.tokens.iter().map(|r| r.token.to_string()).collect::<Vec<_>>().join(", ")
        ),
        PolicyViolation::TokenAmountTooHigh => match action.token_move() {
            Some(m) => format!(
                "amount {} of token {} above the policy's max_amount {} for it",
                m.amount,
                m.token,
                policy.token_rule(m.token).map_or("?".into(), |r| r.max_amount.to_string())
            ),
            None => "the token's max_amount".into(),
        },
        PolicyViolation::RecipientNotAllowed => format!(
            "recipient {} is not among the policy's recipients {}",
            action.token_move().map_or("none".into(), |m| m.recipient.to_string()),
            allowed(&policy.recipients)
        ),
        PolicyViolation::UnlimitedApproval => {
            "an unlimited approval (2^256 - 1), which the policy's unlimited_approvals does not \
             allow"
                .into()
        }
        PolicyViolation::PayerIsNotSigner => match action {
            Action::TokenAuthorization(a) => {
                format!("the authorization pays from {}, not from this slot's address", a.from)
            }
            _ => "the payer is not the signer".into(),
        },
        PolicyViolation::ApprovalRequired => match (e, &policy.approvals) {
            (DeviceError::ApprovalRequired(n), Some(rule)) => {
                let approvers: Vec<String> =
                    rule.approvers.iter().map(ToString::to_string).collect();
                format!(
                    "it waits for {} of the approvers [{}] ({} approved), each approval an \
                     EIP-712 signature expiring by {} on the device's clock (`tee-signer \
                     approve`)",
                    n.need,
                    approvers.join(", "),
                    n.have,
                    n.expires_by()
                )
            }
            _ => "it waits for approvals".into(),
        },
        PolicyViolation::ApprovalExpired => {
            format!("the approvals' expiry has passed (device time {})", or_unknown(device_time))
        }
        PolicyViolation::ApprovalTooLong => format!(
            "the approvals expire more than the rule's max_ttl_secs {} after the device's time {}",
            policy.approvals.as_ref().map_or("?".into(), |r| r.max_ttl_secs.to_string()),
            or_unknown(device_time)
        ),
        other => format!("{other:?}"),
    };
    format!("refused by the slot's policy ({v:?}): the action was read as {read_as}; {limit}")
}

fn or_unknown(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".into(), |v| v.to_string())
}
