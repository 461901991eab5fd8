//! The host's side of the wire, without I/O: a request frame for a command,
//! and a response frame read back canonically. Transports (tee-transport's
//! client, the tests' pair) move the bytes.

use crate::codec;
use crate::error::{Error, Result};
use crate::frame::{self, Header};
use crate::protocol::{Command, DeviceError, PROTOCOL_VERSION};

/// Encodes a request frame for command `cmd` into `out`.
pub fn encode_request<'o, C: Command>(
    request_id: u32,
    cmd: &C,
    out: &'o mut [u8],
) -> Result<&'o mut [u8]> {
    let h = Header { version: PROTOCOL_VERSION, command: C::CODE, request_id };
    frame::encode(&h, cmd, out)
}

/// A response frame's header and body, decoded canonically: the client side
/// of [`crate::device::Device::handle`].
pub fn decode_response<'p, C: Command>(
    payload: &'p [u8],
) -> Result<(Header, Result<C::Response<'p>, DeviceError>)> {
    let (h, body) = Header::split(payload)?;
    // Errors without a readable request (frame errors) have command 0.
    if h.command != C::CODE && h.command != 0 {
        return Err(Error::Malformed);
    }
    Ok((h, codec::decode(body)?))
}
