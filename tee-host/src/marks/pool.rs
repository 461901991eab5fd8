//! The shared marks as the server uses them: a few connections
//! ([`MarksPool`]) and the claims made outside the device's lock
//! ([`Claims`]).
//!
//! Claiming a mark is a round trip and a commit in the database; made under
//! the device's lock, one at a time, it bounds a replica to one claim per
//! round trip. So the server asks the device first what a `Sign` would
//! claim ([`tee_core::device::Device::sign_claim`]: the replay rule and the
//! policy, nothing consumed), claims it outside the lock on one of the
//! pool's connections, many requests at once, and only then lets the
//! device commit the mark: the backend finds the claim made and does not
//! ask the database again ([`Claims::take`]), and never asks it under the
//! lock (a mark not claimed before is refused). The rule stays: a local mark
//! is written only once the database committed its claim, and nothing is
//! signed on an answer of the database that was not for this exact
//! (key, sequence, commitment). A claim the device then does not use (it
//! refused meanwhile) has raised the shared mark: that sequence is spent,
//! as after a crash between the two.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use tee_core::device::SignClaim;
use tee_core::protocol::CapRefusal;
use tee_core::{Address, B256};
use zeroize::Zeroizing;

use tee_core::protocol::Replication;

use super::replication::ReplicationRule;
use super::{Known, Mark, MarksError, Outcome, PgMarks, TIMEOUT};

/// Connections to the marks database, opened when needed up to a bound.
pub struct MarksPool {
    url: String,
    mac_key: Zeroizing<[u8; 32]>,
    rule: ReplicationRule,
    /// The last reading of how the database replicates (any connection's).
    replication: Mutex<Replication>,
    size: usize,
    /// What the connections learn of the rows, shared among them.
    known: Known,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<PgMarks>,
    open: usize,
}

impl std::fmt::Debug for MarksPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarksPool").field("size", &self.size).finish_non_exhaustive()
    }
}

/// Connections a pool opens at most, by default.
pub const POOL_SIZE: usize = 8;

impl MarksPool {
    /// Connects once to `url` (creating or checking the schema:
    /// [`PgMarks::connect`]), and opens up to `size` connections later as
    /// requests need them.
    pub fn connect(
        url: &str,
        mac_key: Zeroizing<[u8; 32]>,
        size: usize,
        rule: ReplicationRule,
    ) -> Result<Arc<MarksPool>, MarksError> {
        let first = PgMarks::connect(url, mac_key.clone(), rule)?;
        Ok(Arc::new(MarksPool {
            url: url.to_owned(),
            mac_key,
            rule,
            replication: Mutex::new(first.replication()),
            size: size.max(1),
            known: first.known.clone(),
            state: Mutex::new(PoolState { idle: vec![first], open: 1 }),
            freed: Condvar::new(),
        }))
    }

    fn take(&self) -> Result<PgMarks, MarksError> {
        let deadline = Instant::now() + TIMEOUT;
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(c) = s.idle.pop() {
                return Ok(c);
            }
            if s.open < self.size {
                s.open += 1;
                drop(s);
                return PgMarks::connect(&self.url, self.mac_key.clone(), self.rule)
                    .map(|c| c.with_known(self.known.clone()))
                    .inspect_err(|_| {
                        self.state.lock().unwrap_or_else(PoisonError::into_inner).open -= 1;
                        self.freed.notify_one();
                    });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MarksError::Busy);
            }
            s = self.freed.wait_timeout(s, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn give(&self, c: PgMarks) {
        *self.replication.lock().unwrap_or_else(PoisonError::into_inner) = c.replication();
        self.state.lock().unwrap_or_else(PoisonError::into_inner).idle.push(c);
        self.freed.notify_one();
    }

    /// How the database replicates, as the pool last read it.
    #[must_use]
    pub fn replication(&self) -> Replication {
        *self.replication.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`PgMarks::ping`] on one of the pool's connections.
    pub fn ping(&self) -> Result<Replication, MarksError> {
        let mut c = self.take()?;
        let r = c.ping();
        self.give(c);
        r
    }

    /// A connection of its own, outside the pool (the rollback anchor's:
    /// its writes never wait behind claims for a connection).
    pub fn dedicated(&self) -> Result<PgMarks, MarksError> {
        PgMarks::connect(&self.url, self.mac_key.clone(), self.rule)
            .map(|c| c.with_known(self.known.clone()))
    }

    /// [`PgMarks::raise`] on one of the pool's connections.
    pub fn raise(&self, marks: &[Mark<'_>]) -> Result<Vec<Outcome>, MarksError> {
        let mut c = self.take()?;
        let r = c.raise(marks);
        self.give(c);
        r
    }
}

/// What a claim came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// Raised, or the same claim already there: the mark may be committed.
    Ok,
    /// Another action holds this sequence (the stored mark).
    Used(u64),
    /// The key's shared spend window has less than the action's value
    /// left: nothing raised, nothing reserved.
    OverCap(CapRefusal),
    /// The row fails its MAC, or the database failed: refuse.
    Failed,
}

/// Claims of signatures' marks in the shared database, made outside the
/// device's lock and waiting for the device to commit them. See the module
/// documentation.
#[derive(Debug)]
pub struct Claims {
    pool: Arc<MarksPool>,
    space: &'static str,
    made: Mutex<HashMap<Key, Claimed>>,
}

/// A claim as the device's commit finds it again: (signer, sequence,
/// commitment).
type Key = (Address, u64, B256);

fn key(c: &SignClaim) -> Key {
    (c.signer, c.sequence, c.commitment)
}

/// A claim made and not yet used: forgotten when dropped.
#[derive(Debug)]
#[must_use = "the claim is forgotten when this is dropped"]
pub struct Held<'a> {
    claims: &'a Claims,
    claim: Key,
}

impl Held<'_> {
    /// What the claim came to, by name (`ok`, `used`, `failed`): for the
    /// metrics.
    #[must_use]
    pub fn outcome_name(&self) -> &'static str {
        match self.claims.made.lock().unwrap_or_else(PoisonError::into_inner).get(&self.claim) {
            Some(Claimed::Ok) => "ok",
            Some(Claimed::Used(_)) => "used",
            Some(Claimed::OverCap(_)) => "over_cap",
            Some(Claimed::Failed) | None => "failed",
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.claims.made.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.claim);
    }
}

impl Claims {
    /// Claims in `space` of the database behind `pool`.
    #[must_use]
    pub fn new(pool: Arc<MarksPool>, space: &'static str) -> Claims {
        Claims { pool, space, made: Mutex::new(HashMap::new()) }
    }

    /// Claims `c` in the database now, for [`Claims::take`]; the guard
    /// forgets it.
    pub fn claim(&self, c: SignClaim) -> Held<'_> {
        let outcome = self.raise(&c);
        self.made.lock().unwrap_or_else(PoisonError::into_inner).insert(key(&c), outcome);
        Held { claims: self, claim: key(&c) }
    }

    /// The outcome of the claim of (`signer`, `sequence`, `commitment`), made before by [`Claims::claim`] (and no
    /// longer held). A claim not made before is [`Claimed::Failed`] and
    /// nothing is asked of the database: the caller holds the device's
    /// lock, and a database round trip there would stall every request
    /// for up to [`TIMEOUT`]. It happens only when the device's state
    /// changed between the server's two looks (a policy or key set in
    /// between): the request is refused, nothing is consumed, and the same
    /// request again is claimed as usual.
    pub fn take(&self, signer: &Address, sequence: u64, commitment: &B256) -> Claimed {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        let made = made.remove(&(*signer, sequence, *commitment));
        made.unwrap_or_else(|| {
            tracing::warn!(%signer, sequence, "a signature's mark was not claimed before the device committed it: refused");
            Claimed::Failed
        })
    }

    /// The pool the claims are made on.
    #[must_use]
    pub fn pool(&self) -> Arc<MarksPool> {
        self.pool.clone()
    }

    /// Claims made and not yet taken or forgotten (none once every request
    /// is answered).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.made.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn raise(&self, c: &SignClaim) -> Claimed {
        let mark = Mark {
            signer: c.signer,
            space: self.space,
            value: c.sequence,
            commitment: c.commitment,
            spend: c.spend,
        };
        match self.pool.raise(&[mark]).as_deref() {
            Ok([Outcome::Raised | Outcome::Retry]) => Claimed::Ok,
            Ok([Outcome::Used { stored }]) => Claimed::Used(*stored),
            Ok([Outcome::OverCap(refusal)]) => Claimed::OverCap(*refusal),
            Ok(outcome) => {
                tracing::error!(signer = %c.signer, ?outcome, "shared mark tampered with (fails its MAC, or below a row this signer saw): signing with this key stops");
                Claimed::Failed
            }
            Err(e) => {
                tracing::warn!(error = %e, "shared marks unavailable: refusing");
                Claimed::Failed
            }
        }
    }
}
