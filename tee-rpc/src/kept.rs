//! The attestations of the last signatures the endpoint made, by signature
//! and by transaction hash (`tee_getAttestation`): bounded, the oldest
//! dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tee_verify::TeeSignature;

/// The last `capacity` signatures with their attestations.
#[derive(Debug)]
pub struct Kept {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    order: VecDeque<Arc<TeeSignature>>,
    by_key: HashMap<String, Arc<TeeSignature>>,
}

/// The keys a signature is found by: its `0x` hex (lowercase) and, for a
/// transaction, its hash.
fn keys(s: &TeeSignature) -> Vec<String> {
    let mut keys = vec![format!("0x{}", hex::encode(s.signature.0))];
    if let Some(h) = s.transaction_hash {
        keys.push(format!("0x{}", hex::encode(h.0)));
    }
    keys
}

impl Kept {
    /// Keeps up to `capacity` signatures (0: none).
    #[must_use]
    pub fn new(capacity: usize) -> Kept {
        Kept { capacity, inner: Mutex::new(Inner::default()) }
    }

    /// Keeps `s`, dropping the oldest past the capacity.
    pub fn keep(&self, s: TeeSignature) {
        if self.capacity == 0 {
            return;
        }
        let s = Arc::new(s);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while inner.order.len() >= self.capacity {
            let Some(old) = inner.order.pop_front() else { break };
            for k in keys(&old) {
                // A later signature with the same key (the exact retry of
                // one request gets the same signature) keeps its entry.
                if inner.by_key.get(&k).is_some_and(|e| Arc::ptr_eq(e, &old)) {
                    inner.by_key.remove(&k);
                }
            }
        }
        for k in keys(&s) {
            inner.by_key.insert(k, s.clone());
        }
        inner.order.push_back(s);
    }

    /// The signature `key` names (its hex, or its transaction's hash; any
    /// case), if still kept.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<Arc<TeeSignature>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.by_key.get(&key.to_ascii_lowercase()).cloned()
    }
}
