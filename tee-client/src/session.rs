//! One connection to a signer, kept across calls: what the provider, the
//! CLI and the Python binding talk through.
//!
//! A [`Session`] opens its connection on first use and keeps it; a kept
//! connection found broken (the server closed an idle one, or restarted) is
//! opened again once and the call repeated. Repeating is safe for every
//! command a session sends: reads are idempotent, and a `Sign` repeated at
//! the same sequence with the same action is the exact retry the device
//! answers with the same signature. Admin commands are not repeated (their
//! counter is spent): they go through [`Session::client`] and fail instead.
//!
//! What a device is does not change while it runs (its id, backend,
//! capabilities and bounds): a session asks `DeviceInfo` once. It counts its
//! connections and round trips ([`Session::stats`]), which the tests hold to
//! the minimum the protocol allows (`docs/attestation.md`).

use std::time::Duration;

use tee_core::protocol::{Command, DeviceInfo, DeviceInfoResponse};
use tee_transport::{Endpoint, Stream, connect};

use super::{Client, ClientError};

/// The default read and write timeout of a session's connection.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many connections a session opened and requests it sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections opened (1 for a session whose connection never broke).
    pub connections: u32,
    /// Requests sent, each one round trip.
    pub round_trips: u32,
}

/// One kept connection to the signer at an endpoint. See the module docs.
pub struct Session {
    endpoint: Endpoint,
    timeout: Duration,
    client: Option<Client<Box<dyn Stream>>>,
    info: Option<DeviceInfoResponse>,
    stats: Stats,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &self.endpoint)
            .field("connected", &self.client.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A failure that says the kept connection is gone, not that the device
/// answered: worth one new connection.
fn broken(e: &ClientError) -> bool {
    matches!(e, ClientError::Io(_) | ClientError::Closed)
}

impl Session {
    /// A session with the signer at `endpoint`; nothing is opened yet.
    #[must_use]
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Session {
        Session { endpoint, timeout, client: None, info: None, stats: Stats::default() }
    }

    /// Where the signer is.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Connections opened and requests sent so far.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The connection, opened if there is none. Calls made on it directly
    /// (admin commands) are not repeated on a broken connection, and are
    /// not counted in [`Session::stats`].
    pub fn client(&mut self) -> Result<&mut Client<Box<dyn Stream>>, ClientError> {
        match &mut self.client {
            Some(c) => Ok(c),
            slot => {
                let stream = connect(&self.endpoint, self.timeout)?;
                self.stats.connections += 1;
                Ok(slot.insert(Client::new(stream)))
            }
        }
    }

    /// Sends `cmd` and decodes its response, which borrows from the session
    /// until its next call. A kept connection found broken is opened again
    /// once and `cmd` sent again.
    pub fn call<C: Command>(&mut self, cmd: &C) -> Result<C::Response<'_>, ClientError> {
        let kept = self.client.is_some();
        self.stats.round_trips += 1;
        match self.client()?.request(cmd).map(|_| ()) {
            Err(e) if kept && broken(&e) => {
                tracing::debug!(error = %e, endpoint = %self.endpoint, "reconnecting");
                self.client = None;
                self.stats.round_trips += 1;
                self.client()?.request(cmd)?;
            }
            r => r?,
        }
        self.client.as_ref().ok_or(ClientError::Closed)?.last_response::<C>()
    }

    /// The device's `DeviceInfo`, asked on the session's first need.
    pub fn info(&mut self) -> Result<&DeviceInfoResponse, ClientError> {
        if self.info.is_none() {
            let info = self.call(&DeviceInfo)?;
            self.info = Some(info);
        }
        self.info.as_ref().ok_or(ClientError::Closed)
    }

    /// Forgets the connection (the next call opens a new one).
    pub fn close(&mut self) {
        self.client = None;
    }
}
