//! The TCB of the platform a signer runs on: what `tee-signer tcb -c` and
//! Python's `Signer.tcb` show.

use tee_core::protocol::DEVICE_SLOT;
use tee_verify::tcb::TcbReport;

use super::{PhalaDstackProvider, ProviderError};

impl PhalaDstackProvider {
    /// The TCB of the signer's platform at unix time `now`: its identity's
    /// quote for a fresh challenge, read with this provider's verifier's
    /// collateral (stored, a PCCS's, or the simulator's) and policy
    /// ([`tee_verify::Verifier::tcb`]): status, advisories, FMSPC,
    /// evaluation numbers, and how long the collateral lasts.
    pub fn tcb(&self, now: u64) -> Result<TcbReport, ProviderError> {
        let challenge = tee_verify::random_challenge()
            .map_err(|e| ProviderError::Evidence { what: "challenge", message: e.to_string() })?;
        let quote = self.get_attestation_report(DEVICE_SLOT, challenge)?.quote;
        self.verifier().tcb(&quote, now).map_err(ProviderError::Tcb)
    }
}
