//! The board abstraction: what the firmware needs from the hardware, and
//! the firmware's main loop over it. tee-core needs no change for a new
//! board: only these traits.

use embedded_io::{Read, Write};

use embedded_storage::nor_flash::NorFlash;
use tee_core::action::ActionBounds;
use tee_core::device::{Device, DeviceConfig, Rng};
use tee_core::frame::Accumulator;
use tee_core::limits::MCU_REQUEST_FRAME;
use tee_core::protocol::DeviceError;

use crate::backend::McuBackend;
use crate::log::Part;
use crate::store::StoreError;

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
    /// Randomness (a TRNG, or a DRBG seeded from one): tee-core's own
    /// [`Rng`] trait.
    type Entropy: Rng;
    /// Time since boot.
    type Ticks: Ticks;

    /// Splits the board into its parts.
    fn into_parts(self) -> (Self::Uart, Self::Flash, Self::Entropy, Self::Ticks);
}

/// Bytes the firmware's transmit buffer holds: every response but an
/// `Attest` with a quote, which an MCU never sends (a test checks the
/// largest, an audit-log batch, fits).
pub const TX_BUFFER: usize = 768;

/// Key slots of the firmware's device: fewer than the protocol's eight, to
/// fit 24 KiB of RAM.
pub const MCU_SLOTS: usize = 4;

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

/// Counts what passes through to the UART, so the loop knows when a
/// request was answered.
struct Counting<'a, W> {
    inner: &'a mut W,
    written: usize,
}

impl<W: embedded_io::ErrorType> embedded_io::ErrorType for Counting<'_, W> {
    type Error = W::Error;
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        let n = self.inner.write(buf)?;
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), W::Error> {
        self.inner.flush()
    }
}

/// Opens the device on `board` and serves the protocol on its UART: the
/// loop of `tee_core::serve::serve`, timing each answered request in board
/// ticks for the log. Returns only when the UART ends or fails, or the
/// state cannot be opened.
#[inline(never)]
pub fn run<B: Board>(
    board: B,
    config: DeviceConfig,
) -> Halt<<B::Uart as embedded_io::ErrorType>::Error> {
    let (mut uart, flash, entropy, mut ticks) = board.into_parts();
    let backend = match McuBackend::open(flash, entropy) {
        Ok(b) => b,
        Err((e, _, _)) => return Halt::Store(e),
    };
    // Built in place and loaded through `&mut`: the device is several KiB,
    // and moving it around would multiply its stack cost.
    // The receive buffer below holds a frame of the microcontroller's
    // bounds: those are the device's, whatever the caller asked for.
    let config = DeviceConfig { bounds: ActionBounds::MCU, ..config };
    let mut device = Device::<_, MCU_SLOTS>::new(backend, config);
    if let Err(e) = device.load() {
        return Halt::Device(e);
    }
    crate::log::line(&[Part::Str("device open, serving")]);
    let mut rx = Accumulator::<MCU_REQUEST_FRAME>::new();
    let mut tx = [0u8; TX_BUFFER];
    let mut chunk = [0u8; 64];
    loop {
        let n = match uart.read(&mut chunk) {
            Ok(0) => return Halt::EndOfStream,
            Ok(n) => n,
            Err(e) => return Halt::Uart(e),
        };
        let start = ticks.ticks();
        let mut out = Counting { inner: &mut uart, written: 0 };
        let input = chunk.get(..n).unwrap_or(&[]);
        if let Err(e) = tee_core::serve::feed(&mut out, &mut device, &mut rx, &mut tx, input) {
            return Halt::Uart(e);
        }
        if out.written > 0 {
            let took = u32::try_from(ticks.ticks() - start).unwrap_or(u32::MAX);
            crate::log::line(&[Part::Str("answered in "), Part::Num(took), Part::Str(" ticks")]);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tee_core::frame::{self, Header};
    use tee_core::primitives::{Address, B256, U256};
    use tee_core::protocol::{
        Allow, AuditEntry, AuditLogResponse, DeviceError, KindSet, Outcome, Policy,
        PolicyViolation, RateLimit, SpendCap, TokenRule,
    };

    /// The largest responses a microcontroller sends fit the transmit buffer.
    #[test]
    fn tx_buffer_holds_the_largest_mcu_responses() {
        let h = Header { version: 1, command: 8, request_id: u32::MAX };
        let entry = AuditEntry {
            index: u64::MAX,
            command: 0xff,
            slot: 0xff,
            sequence: u64::MAX,
            digest: B256([0xff; 32]),
            outcome: Outcome::Refused(DeviceError::Denied(PolicyViolation::NoClock)),
        };
        let log = AuditLogResponse {
            prev_hash: B256([0xff; 32]),
            entries: heapless::Vec::from_slice(&[entry; 8]).unwrap(),
            next_index: u64::MAX,
            head_hash: B256([0xff; 32]),
            oldest_kept: u64::MAX,
        };
        let mut tx = [0u8; TX_BUFFER];
        let r: Result<_, DeviceError> = Ok(log);
        assert!(frame::encode(&h, &r, &mut tx).is_ok());
        let policy = Policy {
            kinds: KindSet(u32::MAX),
            chains: Allow::Only(heapless::Vec::from_slice(&[u64::MAX; 4]).unwrap()),
            contracts: Allow::Only(heapless::Vec::from_slice(&[Address([0xff; 20]); 8]).unwrap()),
            agents: Allow::Only(heapless::Vec::from_slice(&[U256([0xff; 32]); 4]).unwrap()),
            max_value: U256([0xff; 32]),
            max_gas_limit: u64::MAX,
            max_fee_per_gas: u128::MAX,
            max_deadline_ahead_secs: u64::MAX,
            rate_limit: Some(RateLimit { max: u32::MAX, window_secs: u32::MAX }),
            eip712_domains: Allow::Any,
            spend_cap: Some(SpendCap { max: U256([0xff; 32]), window_secs: u32::MAX }),
            valid_until: 0,
            tokens: heapless::Vec::from_slice(
                &[TokenRule {
                    token: Address([0xff; 20]),
                    max_amount: U256([0xff; 32]),
                    cap: Some(SpendCap { max: U256([0xff; 32]), window_secs: u32::MAX }),
                }; tee_core::limits::MAX_POLICY_TOKENS],
            )
            .unwrap(),
            recipients: Allow::Only(heapless::Vec::from_slice(&[Address([0xff; 20]); 4]).unwrap()),
            unlimited_approvals: true,
            approvals: None,
        };
        let r: Result<_, DeviceError> = Ok(policy);
        assert!(frame::encode(&h, &r, &mut tx).is_ok());
    }
}
