//! `0x0A` GetPolicy: a slot's policy.

use serde::{Deserialize, Serialize};

use super::{Command, Policy};

/// `0x0A` GetPolicy: a slot's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPolicy {
    /// Slot number.
    pub slot: u8,
}

impl Command for GetPolicy {
    const CODE: u8 = 0x0A;
    type Request<'a> = Self;
    type Response<'a> = Policy;
}
