//! `0x09` Echo: returns its data (a link check).

use heapless::Vec;
use serde::{Deserialize, Serialize};

use super::Command;
use crate::limits::MAX_ECHO_LEN;

/// `0x09` Echo: returns its data (a link check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// Anything.
    pub data: Vec<u8, MAX_ECHO_LEN>,
}

impl Command for Echo {
    const CODE: u8 = 0x09;
    type Request<'a> = Self;
    type Response<'a> = Echo;
}
