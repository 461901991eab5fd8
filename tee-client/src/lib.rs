#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

//! The host side of the protocol over any byte stream (unix socket, TCP,
//! serial port): send a command, wait for the response with its request id.
//!
//! Responses to other ids are skipped, including the frame-error answers
//! (request id 0) that line noise earns; if the stream stays silent past its
//! read timeout, the call fails with [`ClientError::Timeout`]. A response
//! is borrowed from the client (a quote or an evidence chunk is not copied)
//! until the next call.

pub mod actions;
pub mod admin;
pub mod alloy;
mod answers;
pub mod approval;
mod error;
pub mod explain;
pub mod marks;
pub mod onchain;
pub mod policyfile;
pub mod provider;
pub mod session;
mod signed;

pub use error::Error;

use std::io::{self, Read, Write};

use tee_core::client::{decode_response, encode_request};
use tee_core::frame::{Accumulator, Header};
use tee_core::protocol::{
    AdminCommand, Command, DeviceError, DeviceInfo, GetPublicKey, MAX_REQUEST_WIRE,
    MAX_RESPONSE_FRAME, PublicKeyResponse, authorize,
};
use tee_core::{B256, SigningKey};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The stream failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// The stream ended.
    #[error("the device closed the connection")]
    Closed,
    /// No response in time.
    #[error("no response before the read timeout")]
    Timeout,
    /// The device refused, with a typed reason.
    #[error("device refused: {0:?}")]
    Device(DeviceError),
    /// The response could not be read.
    #[error("malformed response: {0}")]
    Malformed(tee_core::Error),
    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(tee_core::Error),
    /// An admin answer the device's signed statement does not back.
    #[error("not authenticated: {0}")]
    Unauthenticated(#[from] admin::Unauthenticated),
}

/// A client over `S`.
pub struct Client<S> {
    stream: S,
    rx: Box<Accumulator<MAX_RESPONSE_FRAME>>,
    /// Bytes read but not yet fed.
    pending: Vec<u8>,
    /// The last response's payload (header and body), which the last call's
    /// response borrows from.
    last: Vec<u8>,
    /// Where requests are encoded: made once (with the host's bounds a
    /// request frame can be ~84 KB, too much to allocate and zero per call).
    tx: Vec<u8>,
    next_id: u32,
}

impl<S> std::fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("next_id", &self.next_id).finish_non_exhaustive()
    }
}

impl<S: Read + Write> Client<S> {
    /// A client on `stream` (set its read timeout first if it has one).
    pub fn new(stream: S) -> Self {
        Client {
            stream,
            rx: Box::new(Accumulator::new()),
            pending: Vec::new(),
            last: Vec::new(),
            tx: vec![0u8; MAX_REQUEST_WIRE],
            next_id: 1,
        }
    }

    /// The stream.
    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Writes raw bytes (tests use it to put garbage on the line).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends `cmd` and returns the response payload (header and body).
    pub fn request<C: Command>(&mut self, cmd: &C) -> Result<&[u8], ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let frame = encode_request(id, cmd, &mut self.tx).map_err(ClientError::Encode)?;
        self.stream.write_all(frame)?;
        self.stream.flush()?;
        self.wait_for(id, C::CODE)?;
        Ok(&self.last)
    }

    fn wait_for(&mut self, id: u32, command: u8) -> Result<(), ClientError> {
        let mut chunk = [0u8; 4096];
        loop {
            // Frames already buffered first.
            while !self.pending.is_empty() {
                let input = std::mem::take(&mut self.pending);
                let (frame, rest) = self.rx.feed(&input);
                self.pending = rest.to_vec();
                if let Some(Ok(payload)) = frame
                    && let Ok((h, _)) = Header::split(payload)
                    && h.request_id == id
                    && h.command == command
                {
                    self.last.clear();
                    self.last.extend_from_slice(payload);
                    return Ok(());
                }
            }
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => n,
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    return Err(ClientError::Timeout);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.pending.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        }
    }

    /// The last response, decoded canonically as `C`'s.
    pub(crate) fn last_response<C: Command>(&self) -> Result<C::Response<'_>, ClientError> {
        let (_, r) = decode_response::<C>(&self.last).map_err(ClientError::Malformed)?;
        r.map_err(ClientError::Device)
    }

    /// Sends `cmd` and decodes its response, which borrows from the client
    /// until the next call.
    pub fn call<C: Command>(&mut self, cmd: &C) -> Result<C::Response<'_>, ClientError> {
        self.request(cmd)?;
        self.last_response::<C>()
    }

    /// Every key the device holds (`GetPublicKey` of each slot, empty
    /// slots left out), in slot order.
    pub fn keys(&mut self) -> Result<Vec<PublicKeyResponse>, ClientError> {
        let slots = self.call(&DeviceInfo)?.slots;
        let mut keys = Vec::new();
        for slot in 0..slots {
            match self.call(&GetPublicKey { slot }) {
                Ok(k) => keys.push(k),
                Err(ClientError::Device(DeviceError::SlotEmpty)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(keys)
    }

    /// Authorizes `cmd` with the admin key for device `device_id` at
    /// `counter`, then calls it: for a device without an identity key (an
    /// MCU), whose admin keeps the counter. Elsewhere,
    /// [`Client::admin_confirmed`].
    pub fn admin<C: AdminCommand>(
        &mut self,
        mut cmd: C,
        admin: &SigningKey,
        device_id: &B256,
        counter: u64,
    ) -> Result<C::Response<'_>, ClientError> {
        authorize(&mut cmd, admin, device_id, counter).map_err(ClientError::Encode)?;
        self.call(&cmd)
    }
}
