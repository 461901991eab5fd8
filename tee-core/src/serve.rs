//! The one serve loop: bytes in from any `embedded-io` stream, frames to the
//! device, response frames out. The same function serves a UART, a socket
//! and a test pipe.

use embedded_io::{Read, Write};

use crate::device::{Backend, Device};
use crate::frame::Accumulator;

/// Serves requests from `io` until it reports end of stream (a read of 0
/// bytes) or an I/O error. Bad frames are answered with typed errors (or
/// dropped) and never end the loop. `rx` holds partial frames between reads;
/// `tx` must hold the largest response this device sends.
pub fn serve<IO, B, const N: usize, const SLOTS: usize>(
    io: &mut IO,
    device: &mut Device<B, SLOTS>,
    rx: &mut Accumulator<N>,
    tx: &mut [u8],
) -> Result<(), IO::Error>
where
    IO: Read + Write,
    B: Backend,
{
    let mut chunk = [0u8; 64];
    loop {
        let n = io.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        feed(io, device, rx, tx, chunk.get(..n).unwrap_or(&[]))?;
    }
}

/// Feeds `input` to the accumulator and answers every frame it completes:
/// the body of [`serve`], for callers that own their read loop.
pub fn feed<W, B, const N: usize, const SLOTS: usize>(
    out: &mut W,
    device: &mut Device<B, SLOTS>,
    rx: &mut Accumulator<N>,
    tx: &mut [u8],
    mut input: &[u8],
) -> Result<(), W::Error>
where
    W: Write,
    B: Backend,
{
    while !input.is_empty() {
        let (frame, rest) = rx.feed(input);
        input = rest;
        if let Some(frame) = frame {
            let len = device.handle(frame, tx);
            out.write_all(tx.get(..len).unwrap_or(&[]))?;
            out.flush()?;
        }
    }
    Ok(())
}
