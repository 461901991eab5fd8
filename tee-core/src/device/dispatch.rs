//! Frames in, one handler per command, frames out.
//!
//! The dispatch is generated from the command table
//! ([`crate::for_each_command!`]), so a command in the table without a
//! handler does not build. Each command runs in its own (not inlined)
//! function, so only the running command's frame is on the stack: on a
//! microcontroller the sum of all of them would not fit.

use super::Device;
use super::attest::PendingQuote;
use super::backend::{Backend, Ticket};
use super::reply::{Handle, Reply, respond};
use super::slot::respond_sign;
use crate::frame::{FrameError, Header};
use crate::primitives::B256;
use crate::protocol::{Attest, AttestAction, Command, DeviceError, PROTOCOL_VERSION, Sign};
use crate::signer::SigningKey;

/// What [`Device::begin`] did with a frame.
#[must_use = "a pending quote must be finished, a reply released"]
#[derive(Debug)]
pub enum Step {
    /// The response frame is in `out`, to be released.
    Done(Reply),
    /// A quote is needed first.
    Quote(PendingQuote),
    /// A `Sign` the device admitted (its mark committed): the signature is
    /// to be computed, without the device.
    Sign(PendingSign),
}

/// A `Sign` the device admitted: the anti-replay rule and the policy held,
/// its mark is committed (durable with the ticket) and audited. What is
/// left needs no device state: the signature over the digest, which a host
/// computes outside the device's lock, so signatures for many requests are
/// made on every core at once. Holds a handle on the slot's key (zeroized
/// when dropped) and never shows it.
#[must_use = "an admitted signature is answered only by PendingSign::finish"]
pub struct PendingSign {
    header: Header,
    key: SigningKey,
    digest: B256,
    sequence: u64,
    ticket: Option<Ticket>,
}

impl core::fmt::Debug for PendingSign {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingSign")
            .field("signer", &self.key.address())
            .field("digest", &self.digest)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

impl PendingSign {
    /// Signs and writes the response into `out`: a [`Reply`] that leaves
    /// once its ticket is durable.
    pub fn finish(self, out: &mut [u8]) -> Reply {
        let r = respond_sign(&self.key, &self.digest, self.sequence);
        let len = respond(&self.header, r, out);
        Reply { header: self.header, len, ticket: self.ticket }
    }
}

impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
    /// Handles one received frame (or the reason it could not be read) and
    /// writes the response frame into `out`. Returns the response length; 0
    /// only if `out` cannot hold even an error response.
    ///
    /// Where the backend commits in groups, the response's writes are made
    /// durable here, before it returns ([`CounterStore::make_durable`](super::CounterStore::make_durable)); a
    /// server that shares one sync among many requests uses
    /// [`Device::begin`] and [`Reply`] instead.
    pub fn handle(&mut self, frame: Result<&[u8], FrameError>, out: &mut [u8]) -> usize {
        let reply = match self.read(frame, out) {
            Ok((h, body)) => {
                let len = self.dispatch(&h, body, out);
                self.reply(h, len)
            }
            Err((h, len)) => self.reply(h, len),
        };
        let committed = reply.ticket.map_or(Ok(()), |t| self.backend.make_durable(t));
        reply.release(committed, out)
    }

    /// A response of `len` bytes for `h`, with the backend's ticket.
    pub(super) fn reply(&mut self, header: Header, len: usize) -> Reply {
        Reply { header, len, ticket: self.backend.ticket() }
    }

    /// Like [`Device::handle`], but what needs no device state is left to
    /// the caller, to do without holding the device: a request that needs a
    /// quote (`Attest`, `AttestAction`) comes back as [`Step::Quote`] once
    /// the device decided to make it (the caller gets the quote from its
    /// TEE, then calls [`Device::finish_quote`]); a `Sign` the device
    /// admitted comes back as [`Step::Sign`] (the caller computes the
    /// signature, [`PendingSign::finish`]). Every response is a [`Reply`].
    pub fn begin(&mut self, frame: Result<&[u8], FrameError>, out: &mut [u8]) -> Step {
        let (h, body) = match self.read(frame, out) {
            Ok(request) => request,
            Err((h, len)) => return Step::Done(self.reply(h, len)),
        };
        if h.command == Sign::CODE {
            // The request is decoded in place and only its sequence leaves:
            // with the host's bounds a `Sign` is ~41 KB, and every move of
            // it is a copy of that size.
            let admitted = match Sign::decode(body) {
                Ok(req) => self.admit_sign(&req).map(|(key, digest)| (key, digest, req.sequence)),
                Err(e) => Err(DeviceError::Malformed(e)),
            };
            return match admitted {
                Ok((key, digest, sequence)) => Step::Sign(PendingSign {
                    header: h,
                    key,
                    digest,
                    sequence,
                    ticket: self.backend.ticket(),
                }),
                Err(e) => {
                    let len = respond::<()>(&h, Err(e), out);
                    Step::Done(self.reply(h, len))
                }
            };
        }
        let prepared = match h.command {
            Attest::CODE => Attest::decode(body)
                .map_err(DeviceError::Malformed)
                .and_then(|c| self.prepare_attest(&c)),
            AttestAction::CODE => AttestAction::decode(body)
                .map_err(DeviceError::Malformed)
                .and_then(|c| self.prepare_attest_action(&c)),
            _ => {
                let len = self.dispatch(&h, body, out);
                return Step::Done(self.reply(h, len));
            }
        };
        match prepared {
            Ok(prepared) => Step::Quote(PendingQuote { header: h, prepared }),
            Err(e) => {
                let len = respond::<()>(&h, Err(e), out);
                Step::Done(self.reply(h, len))
            }
        }
    }

    /// The frame's header and body, or the header and length of the error
    /// response written for a frame that cannot be read.
    fn read<'f>(
        &mut self,
        frame: Result<&'f [u8], FrameError>,
        out: &mut [u8],
    ) -> Result<(Header, &'f [u8]), (Header, usize)> {
        self.sync_audit();
        let unknown = Header { version: PROTOCOL_VERSION, command: 0, request_id: 0 };
        let payload = frame
            .map_err(|e| (unknown, respond::<()>(&unknown, Err(DeviceError::Frame(e)), out)))?;
        let Ok((request, body)) = Header::split(payload) else {
            let e = DeviceError::Frame(FrameError::TooShort);
            return Err((unknown, respond::<()>(&unknown, Err(e), out)));
        };
        let h = Header { version: PROTOCOL_VERSION, ..request };
        if request.version != PROTOCOL_VERSION {
            let e = DeviceError::UnsupportedVersion { supported: PROTOCOL_VERSION };
            return Err((h, respond::<()>(&h, Err(e), out)));
        }
        Ok((h, body))
    }

    /// Decodes command `C`, runs its handler and encodes the response.
    #[inline(never)]
    fn on<C: Command>(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize
    where
        Self: Handle<C>,
    {
        match C::decode(body) {
            Ok(cmd) => {
                let r = <Self as Handle<C>>::run(self, &cmd, body);
                respond(h, r, out)
            }
            Err(e) => respond::<()>(h, Err(DeviceError::Malformed(e)), out),
        }
    }
}

macro_rules! dispatch {
    ($($c:path),* $(,)?) => {
        impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
            fn dispatch(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
                match h.command {
                    $(<$c as Command>::CODE => self.on::<$c>(h, body, out),)*
                    _ => respond::<()>(h, Err(DeviceError::UnknownCommand), out),
                }
            }
        }
    };
}
crate::for_each_command!(dispatch);
