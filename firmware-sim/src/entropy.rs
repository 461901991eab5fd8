//! A ChaCha20 DRBG as the board's entropy: on real hardware it is seeded
//! from the TRNG; boards without one (QEMU's mps2) seed it from a fixed,
//! build-time value, and say so: their keys are predictable.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};
use tee_core::device::{BackendError, Rng};

/// ChaCha20 seeded once.
#[derive(Debug, Clone)]
pub struct ChaChaEntropy(ChaCha20Rng);

impl ChaChaEntropy {
    /// From a 32-byte seed.
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        ChaChaEntropy(ChaCha20Rng::from_seed(seed))
    }
}

impl Rng for ChaChaEntropy {
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), BackendError> {
        self.0.fill_bytes(buf);
        Ok(())
    }
}
