//! `0x05` SetPolicy (admin): replace a slot's policy.

use serde::{Deserialize, Serialize};

use super::{AdminAuth, Command, Policy};
use crate::primitives::B256;

/// `0x05` SetPolicy (admin): replace a slot's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPolicy {
    /// Slot number.
    pub slot: u8,
    /// The new policy.
    pub policy: Policy,
    /// Admin authorization.
    pub auth: AdminAuth,
}

/// Response to [`SetPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySet {
    /// Slot number.
    pub slot: u8,
    /// keccak-256 of the policy's canonical encoding.
    pub policy_hash: B256,
}

impl Command for SetPolicy {
    const CODE: u8 = 0x05;
    type Request<'a> = Self;
    type Response<'a> = PolicySet;
}

super::admin::admin_command!(SetPolicy);
