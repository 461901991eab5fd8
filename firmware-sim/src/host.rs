//! A board on the host (feature `std`): the UART is any std byte stream (a
//! unix socket in tests), the flash a [`SimFlash`] in memory.

use std::time::Instant;
use std::vec::Vec;

use embedded_io_adapters::std::FromStd;

use crate::board::{Board, Ticks};
use crate::entropy::ChaChaEntropy;
use crate::flash::SimFlash;

/// Page size of the host board's flash.
pub const PAGE: usize = 4096;
/// Pages of the host board's flash.
pub const PAGES: usize = 4;

/// The host board's flash.
pub type HostFlash = SimFlash<Vec<u8>, PAGE, PAGES>;

/// Fresh flash, as shipped: erased.
#[must_use]
pub fn blank_flash() -> HostFlash {
    SimFlash::new(std::vec![0xff; PAGE * PAGES])
}

/// Milliseconds since the board was made.
#[derive(Debug, Clone, Copy)]
pub struct StdTicks(Instant);

impl Ticks for StdTicks {
    fn ticks(&mut self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn rate(&self) -> u64 {
        1000
    }
}

/// A host board around a std stream.
#[derive(Debug)]
pub struct HostBoard<S> {
    /// The "UART".
    pub uart: S,
    /// Flash.
    pub flash: HostFlash,
    /// Entropy.
    pub entropy: ChaChaEntropy,
}

impl<S: std::io::Read + std::io::Write> Board for HostBoard<S> {
    type Uart = FromStd<S>;
    type Flash = HostFlash;
    type Entropy = ChaChaEntropy;
    type Ticks = StdTicks;

    fn into_parts(self) -> (FromStd<S>, HostFlash, ChaChaEntropy, StdTicks) {
        (FromStd::new(self.uart), self.flash, self.entropy, StdTicks(Instant::now()))
    }
}
