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
use super::slot::{Asked, Recovered, respond_sign};
use crate::frame::{FrameError, Header};
use crate::primitives::{Address, B256};
use crate::protocol::{
    Approvals, Attest, AttestAction, Command, DeviceError, PROTOCOL_VERSION, Sign, SignApproved,
};
use crate::signer::SigningKey;

/// A request frame read once, before the device is asked about it: its
/// header and body, a `Sign` decoded (its action borrowed from the frame)
/// and hashed, or the error to answer an unreadable frame with. Needs no
/// device state, so a host reads frames outside the device's lock.
#[derive(Debug)]
// No allocator to box the `Sign` in; an `Incoming` is read once and
// consumed where it is, never stored or moved through layers.
#[allow(clippy::large_enum_variant)]
pub enum Incoming<'f> {
    /// An unreadable frame, or one of another protocol version: the error
    /// to answer it with (request id 0 when the header is unreadable).
    Refused(Header, DeviceError),
    /// A `Sign`, decoded and hashed.
    Sign(DecodedSign<'f>),
    /// Any other request: its header and body.
    Other(Header, &'f [u8]),
}

/// A `Sign` request decoded once (its action borrowing the frame) with
/// its digest computed once: what a shared-marks claim
/// ([`Device::sign_claim`]) and the device's admission both read.
#[derive(Debug)]
pub struct DecodedSign<'f> {
    pub(super) header: Header,
    pub(super) request: Sign<'f>,
    /// A `SignApproved`'s approvals (`None` for a `Sign`).
    pub(super) approvals: Option<Approvals<'f>>,
    /// Who signed them, if the host recovered them outside the device's
    /// lock ([`DecodedSign::recover_approvals`]).
    pub(super) recovered: Option<Recovered>,
    pub(super) digest: B256,
    /// The action's canonical length (what [`crate::action::ActionBounds::action`] bounds).
    pub(super) action_len: usize,
}

impl<'f> DecodedSign<'f> {
    /// Decodes a `Sign` or `SignApproved` body and hashes its action.
    pub(super) fn decode(header: Header, body: &'f [u8]) -> Result<Self, DeviceError> {
        use crate::codec::encoded_len;
        let (request, approvals) = if header.command == SignApproved::CODE {
            let r = SignApproved::decode(body).map_err(DeviceError::Malformed)?;
            let approvals = Approvals { expires: r.expires, signatures: r.approvals };
            (Sign { slot: r.slot, sequence: r.sequence, action: r.action }, Some(approvals))
        } else {
            (Sign::decode(body).map_err(DeviceError::Malformed)?, None)
        };
        let digest = request.action.digest();
        // What precedes the action: the slot (a byte), the sequence (a
        // varint), and a `SignApproved`'s expiry and approvals.
        let mut prefix = 1 + encoded_len(&request.sequence).unwrap_or(0);
        if let Some(a) = &approvals {
            prefix += encoded_len(&(a.expires, a.signatures)).unwrap_or(0);
        }
        let action_len = body.len().saturating_sub(prefix);
        Ok(DecodedSign { header, request, approvals, recovered: None, digest, action_len })
    }

    /// The request.
    #[must_use]
    pub fn request(&self) -> &Sign<'f> {
        &self.request
    }

    /// The action's digest.
    #[must_use]
    pub fn digest(&self) -> &B256 {
        &self.digest
    }

    /// Whether it carries approvals (a `SignApproved`).
    #[must_use]
    pub fn has_approvals(&self) -> bool {
        self.approvals.is_some()
    }

    /// Recovers who signed its approvals for the key `signer` (the slot's,
    /// [`Device::approvals_signer`]), for a host to do outside the device's
    /// lock: each recovery is an elliptic-curve operation, and an agent
    /// sending approvals should not hold every other client's signatures
    /// up. The device uses them only if the slot's key is still `signer`,
    /// and recovers them itself otherwise.
    pub fn recover_approvals(&mut self, signer: &Address) {
        if let Some(a) = &self.approvals {
            self.recovered = Some(Recovered::of(a, signer, self.request.sequence, &self.digest));
        }
    }

    /// Its approvals as the device checks them.
    pub(super) fn asked(&self) -> Option<Asked<'_>> {
        let approvals = self.approvals.as_ref()?;
        Some(Asked { approvals, recovered: self.recovered.as_ref() })
    }
}

impl<'f> Incoming<'f> {
    /// Reads a received frame (or the reason it could not be read).
    #[must_use]
    pub fn read(frame: Result<&'f [u8], FrameError>) -> Incoming<'f> {
        Incoming::read_with(frame, true)
    }

    /// [`Incoming::read`], reading a `SignApproved` as a `Sign` with
    /// approvals only if `approvals` (a device's `Backend::APPROVALS`;
    /// otherwise it stays `Other`, which the device answers `Unsupported`,
    /// and its decoder is not in the image).
    #[must_use]
    pub fn read_with(frame: Result<&'f [u8], FrameError>, approvals: bool) -> Incoming<'f> {
        let unknown = Header { version: PROTOCOL_VERSION, command: 0, request_id: 0 };
        let payload = match frame {
            Ok(p) => p,
            Err(e) => return Incoming::Refused(unknown, DeviceError::Frame(e)),
        };
        let Ok((request, body)) = Header::split(payload) else {
            return Incoming::Refused(unknown, DeviceError::Frame(FrameError::TooShort));
        };
        let h = Header { version: PROTOCOL_VERSION, ..request };
        if request.version != PROTOCOL_VERSION {
            let e = DeviceError::UnsupportedVersion { supported: PROTOCOL_VERSION };
            return Incoming::Refused(h, e);
        }
        if h.command == Sign::CODE || approvals && h.command == SignApproved::CODE {
            return match DecodedSign::decode(h, body) {
                Ok(s) => Incoming::Sign(s),
                Err(e) => Incoming::Refused(h, e),
            };
        }
        Incoming::Other(h, body)
    }
}

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
        self.sync_audit();
        let reply = match Incoming::read_with(frame, B::APPROVALS) {
            Incoming::Refused(h, e) => {
                let len = respond::<()>(&h, Err(e), out);
                self.reply(h, len)
            }
            Incoming::Sign(s) if !B::APPROVALS && s.approvals.is_some() => {
                let len = respond::<()>(&s.header, Err(DeviceError::Unsupported), out);
                self.reply(s.header, len)
            }
            Incoming::Sign(s) => self.handle_sign(&s, out),
            Incoming::Other(h, body) => {
                let len = self.dispatch(&h, body, out);
                self.reply(h, len)
            }
        };
        let committed = reply.ticket.map_or(Ok(()), |t| self.backend.make_durable(t));
        reply.release(committed, out)
    }

    /// [`Device::handle`] of a decoded `Sign`: admitted, signed, answered.
    /// Not inlined, so its frame (the policy's and the signature's
    /// temporaries) is not on the stack of every other command.
    #[inline(never)]
    fn handle_sign(&mut self, s: &DecodedSign<'_>, out: &mut [u8]) -> Reply {
        let r = self.admit_sign(&s.request, s.asked(), &s.digest, s.action_len);
        let r = r.and_then(|key| respond_sign(&key, &s.digest, s.request.sequence));
        let len = respond(&s.header, r, out);
        self.reply(s.header, len)
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
        self.begin_incoming(Incoming::read_with(frame, B::APPROVALS), out)
    }

    /// [`Device::begin`] of a frame already read ([`Incoming::read`]): a
    /// host that claims a `Sign`'s mark in a shared store first reads the
    /// frame once, asks [`Device::sign_claim`], claims, then begins the same
    /// decoded request: a `Sign` is decoded and hashed once on every path.
    pub fn begin_incoming(&mut self, incoming: Incoming<'_>, out: &mut [u8]) -> Step {
        self.sync_audit();
        let (h, body) = match incoming {
            Incoming::Refused(h, e) => {
                let len = respond::<()>(&h, Err(e), out);
                return Step::Done(self.reply(h, len));
            }
            Incoming::Sign(s) if !B::APPROVALS && s.approvals.is_some() => {
                let len = respond::<()>(&s.header, Err(DeviceError::Unsupported), out);
                return Step::Done(self.reply(s.header, len));
            }
            Incoming::Sign(s) => {
                return match self.admit_sign(&s.request, s.asked(), &s.digest, s.action_len) {
                    Ok(key) => Step::Sign(PendingSign {
                        header: s.header,
                        key,
                        digest: s.digest,
                        sequence: s.request.sequence,
                        ticket: self.backend.ticket(),
                    }),
                    Err(e) => {
                        let len = respond::<()>(&s.header, Err(e), out);
                        Step::Done(self.reply(s.header, len))
                    }
                };
            }
            Incoming::Other(h, body) => (h, body),
        };
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

    /// Decodes command `C`, runs its handler and encodes the response.
    #[inline(never)]
    fn on<C: Command>(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize
    where
        Self: Handle<C>,
    {
        match decode_request::<C>(body) {
            Ok(cmd) => {
                let r = <Self as Handle<C>>::run(self, &cmd, body);
                respond(h, r, out)
            }
            Err(e) => respond::<()>(h, Err(DeviceError::Malformed(e)), out),
        }
    }
}

/// A command's request, decoded in a frame of its own: the decoder's
/// temporaries (a policy is half a KiB) are gone before the handler runs.
#[inline(never)]
fn decode_request<C: Command>(body: &[u8]) -> Result<C::Request<'_>, crate::Error> {
    C::decode(body)
}

macro_rules! dispatch {
    ($($c:path),* $(,)?) => {
        impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
            fn dispatch(&mut self, h: &Header, body: &[u8], out: &mut [u8]) -> usize {
                // Resolved at build time: without it, no ImportMark code.
                if !B::IMPORTS_MARKS && h.command == <crate::protocol::ImportMark as Command>::CODE
                    || !B::APPROVALS && h.command == SignApproved::CODE
                {
                    return respond::<()>(h, Err(DeviceError::Unsupported), out);
                }
                // Its signature before its policy (see `pre_authorize`).
                if h.command == <crate::protocol::SetPolicy as Command>::CODE {
                    self.pre_authorize(body);
                }
                match h.command {
                    $(<$c as Command>::CODE => self.on::<$c>(h, body, out),)*
                    _ => respond::<()>(h, Err(DeviceError::UnknownCommand), out),
                }
            }
        }
    };
}
crate::for_each_command!(dispatch);
