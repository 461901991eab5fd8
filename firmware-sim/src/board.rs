//! The board abstraction: what the firmware needs from the hardware, and
//! the firmware's main loop over it. tee-core needs no change for a new
//! board: only these traits.

use embedded_io::{Read, Write};
use embedded_storage::nor_flash::NorFlash;
use tee_core::device::{BackendError, Device, DeviceConfig};
use tee_core::frame::Accumulator;
use tee_core::protocol::{DeviceError, MAX_REQUEST_FRAME};

use crate::backend::McuBackend;
use crate::store::StoreError;

/// A source of random bytes (a TRNG, or a DRBG seeded from one).
pub trait Entropy {
    /// Fills `buf`.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), BackendError>;
}

/// A monotonic tick source.
pub trait Ticks {
    /// Ticks since boot.
    fn ticks(&mut self) -> u64;
    /// Ticks per second.
    fn rate(&self) -> u64;
}

/// A board: a UART, NOR flash for state, entropy, and ticks.
pub trait Board {
    /// The serial port the protocol runs over.
    type Uart: Read + Write;
    /// Flash for slots and counters.
    type Flash: NorFlash;
    /// Randomness.
    type Entropy: Entropy;
    /// Time since boot.
    type Ticks: Ticks;

    /// Splits the board into its parts.
    fn into_parts(self) -> (Self::Uart, Self::Flash, Self::Entropy, Self::Ticks);
}

/// Bytes the firmware's transmit buffer holds: every response but an
/// `Attest` with a quote, which an MCU never sends.
pub const TX_BUFFER: usize = 1024;

/// Why the firmware stopped.
#[derive(Debug)]
pub enum Halt<E> {
    /// The flash store could not be opened.
    Store(StoreError),
    /// The device could not be opened from the stored state.
    Device(DeviceError),
    /// The UART failed.
    Uart(E),
    /// The UART reached its end (host boards only).
    EndOfStream,
}

/// Opens the device on `board` and serves the protocol on its UART.
/// Returns only when the UART ends or fails, or the state cannot be opened.
pub fn run<B: Board>(
    board: B,
    config: DeviceConfig,
) -> Halt<<B::Uart as embedded_io::ErrorType>::Error> {
    let (mut uart, flash, entropy, _ticks) = board.into_parts();
    let backend = match McuBackend::open(flash, entropy) {
        Ok(b) => b,
        Err((e, _, _)) => return Halt::Store(e),
    };
    let mut device = match Device::open(backend, config) {
        Ok(d) => d,
        Err(e) => return Halt::Device(e),
    };
    crate::fmt::info!("device open, serving");
    let mut rx = Accumulator::<MAX_REQUEST_FRAME>::new();
    let mut tx = [0u8; TX_BUFFER];
    match tee_core::serve::serve(&mut uart, &mut device, &mut rx, &mut tx) {
        Ok(()) => Halt::EndOfStream,
        Err(e) => Halt::Uart(e),
    }
}
