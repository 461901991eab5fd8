//! What every handler shares: the handler trait, the reply that waits for
//! its ticket, and the response encoder. The handlers (`admin`, `attest`,
//! `query`, `slot`) and the dispatch import it; it imports none of them.

use serde::Serialize;

use super::backend::{BackendError, Ticket};
use crate::frame::{self, Header};
use crate::protocol::{Command, DeviceError};

/// A response frame written into the caller's buffer that may not leave
/// yet: the backend's writes it depends on (a signature's mark, its audit
/// entry) are durable only once its [`Ticket`] is. The caller has the
/// backend make the ticket durable (outside the device's lock, one sync for
/// many replies: [`CounterStore::make_durable`](super::CounterStore::make_durable)) and then releases the
/// reply with the outcome: a failed commit turns the response into
/// [`DeviceError::Storage`], so nothing it produced leaves.
#[must_use = "a reply leaves only through Reply::release, once its ticket is durable"]
#[derive(Debug)]
pub struct Reply {
    pub(super) header: Header,
    pub(super) len: usize,
    pub(super) ticket: Option<Ticket>,
}

impl Reply {
    /// What must be durable before the reply leaves; `None`: nothing.
    #[must_use]
    pub fn ticket(&self) -> Option<Ticket> {
        self.ticket
    }

    /// The response's length in `out` (the buffer the device wrote it to),
    /// given whether the ticket was made durable. On a failed commit the
    /// response is replaced by a [`DeviceError::Storage`] error.
    pub fn release(self, committed: Result<(), BackendError>, out: &mut [u8]) -> usize {
        match (self.ticket, committed) {
            (Some(_), Err(_)) => respond::<()>(&self.header, Err(DeviceError::Storage), out),
            _ => self.len,
        }
    }
}

/// How the device answers command `C`: the decoded request and its body
/// (admin signatures cover the body's bytes) in, the response out.
pub(super) trait Handle<C: Command> {
    fn run(&mut self, cmd: &C::Request<'_>, body: &[u8]) -> Result<C::Response<'_>, DeviceError>;
}

/// Encodes a response frame; falls back to a `ResponseTooLarge` error when
/// `out` is too small for the response itself.
pub(super) fn respond<T: Serialize>(
    h: &Header,
    r: Result<T, DeviceError>,
    out: &mut [u8],
) -> usize {
    if let Ok(f) = frame::encode(h, &r, out) {
        return f.len();
    }
    let e: Result<(), DeviceError> = Err(DeviceError::ResponseTooLarge);
    frame::encode(h, &e, out).map_or(0, |f| f.len())
}
