//! What the server asks of a backend, and what a backend hands the server:
//! the shared device, quotes and commits made outside the device lock, and
//! where replicas' shared marks are claimed. The backend implements it and
//! the server uses it; neither imports the other.

use std::sync::{Arc, Mutex};

use tee_core::device::{Backend, BackendError, Device, Ticket};
use tee_core::protocol::{HealthResponse, NUM_SLOTS};

use super::dstack::QuoteEvidence;
use super::marks::anchor::Anchor;
use super::marks::pool::Claims;
use tee_store::group::GroupCommit;

/// The device, shared by every connection.
pub type Shared<B, const S: usize = NUM_SLOTS> = Arc<Mutex<Device<B, S>>>;

/// Makes a quote over `report_data` without the device (dstack's
/// `GetQuote`), with what comes with it.
pub type Quoter = Arc<dyn Fn(&[u8; 64]) -> Result<QuoteEvidence, BackendError> + Send + Sync>;

/// Makes the backend's writes durable up to a ticket without the device
/// (the journal's group commit: [`tee_store::group::GroupCommit::wait`]).
pub type Committer = Arc<dyn Fn(Ticket) -> Result<(), BackendError> + Send + Sync>;

/// Probes what signing needs around the device (dstack, the shared
/// marks, the journal's storage), without the device: what `Health`
/// answers.
pub type Prober = Arc<dyn Fn() -> HealthResponse + Send + Sync>;

/// What the server asks of a backend besides the device's traits: a way to
/// make quotes outside the device lock, where to keep their evidence, and a
/// way to commit replies' writes outside it.
pub trait Served: Backend + Send + 'static {
    /// A committer that needs no device; `None`: a reply's ticket is made
    /// durable through the device (under the lock).
    fn committer(&self) -> Option<Committer> {
        None
    }

    /// A quoter that needs no device; `None`: the device asks its backend
    /// (under the lock).
    fn quoter(&self) -> Option<Quoter> {
        None
    }

    /// Keeps what came with a quote made outside (its event log, which
    /// `GetEvidence` serves).
    fn keep_quote_evidence(&mut self, evidence: QuoteEvidence) {
        let _ = evidence;
    }

    /// Where signatures' marks are claimed in a store replicas share, to
    /// claim them outside the device lock (`None`: no such store).
    fn claims(&self) -> Option<Arc<Claims>> {
        None
    }

    /// The probes `Health` answers with, made outside the device lock;
    /// `None`: the device answers `Health` itself (`Unsupported`).
    fn prober(&self) -> Option<Prober> {
        None
    }

    /// What the metrics read besides the server's counts: the journal's
    /// group commit and the rollback anchor, where the backend has them.
    fn metered(&self) -> (Option<Arc<GroupCommit>>, Option<Arc<Anchor>>) {
        (None, None)
    }
}
