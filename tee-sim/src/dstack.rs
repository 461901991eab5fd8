//! A simulated dstack: a KMS that derives keys and signs their chains exactly
//! as dstack's does, an event log, and quotes. It has no hardware: its quotes
//! are signed through a simulated Intel PKI ([`super::pki`]), so DCAP passes
//! only for a verifier told to trust the simulator's root, and fails under
//! Intel's. A verifier that trusts it says so in its verdict.
//!
//! Key derivation (dstack `kms/src/crypto.rs`, `guest-agent/src/rpc_service.rs`,
//! `ra-tls/src/kdf.rs`):
//! `app_key = HKDF-SHA256(salt "RATLS", ikm = KMS root, info = app_id ‖ "app-key")`,
//! `key(path) = HKDF-SHA256(salt "RATLS", ikm = app_key, info = path)`;
//! the chain is `[app key's signature over keccak256("{purpose}:{hex(key)}"),
//! KMS root's signature over keccak256("dstack-kms-issued:" ‖ app_id ‖ app key)]`,
//! public keys SEC1 compressed, signatures `r ‖ s ‖ recovery id (0/1)`.

use hkdf::Hkdf;
use sha2::Sha256;
use tee_core::SigningKey;
use tee_core::hazmat;
use tee_core::primitives::{FixedBytes, keccak256};
use zeroize::Zeroizing;

use super::pki::{SimPki, TdMeasurements};
use tee_verify::KeyChain;
use tee_verify::eventlog::{self, Event};

/// Intel's sample TDX quote v4 (from dcap-qvl 0.7.1, `tests/data/dcap-qvl`).
pub const SAMPLE_QUOTE: &[u8] = include_bytes!("../../tests/data/dcap-qvl/tdx_quote");

/// The sample quote's collateral (dcap-qvl 0.7.1, `tests/data/dcap-qvl`), in
/// dcap-qvl's JSON format: with it a verifier checks the simulated quotes'
/// DCAP signature offline, and sees it fail.
pub const SAMPLE_COLLATERAL: &str =
    include_str!("../../tests/data/dcap-qvl/tdx_quote_collateral.json");

/// A time inside [`SAMPLE_COLLATERAL`]'s validity window (2025-06-25), at
/// which a verifier can check the simulated quotes against it.
pub const SAMPLE_COLLATERAL_TIME: u64 = 1_750_809_600;

/// [`SAMPLE_COLLATERAL`], parsed.
pub fn sample_collateral() -> Result<dcap_qvl::QuoteCollateralV3, serde_json::Error> {
    serde_json::from_str(SAMPLE_COLLATERAL)
}

/// Offsets in a v4 quote: header (48) then the TD report.
const RTMR3_AT: usize = 48 + 472;
const REPORT_DATA_AT: usize = 48 + 520;

/// Events an app may emit (`EmitEvent`) before the simulator refuses
/// more: the log is kept in memory and in every quote's response.
pub const MAX_EMITTED_EVENTS: usize = 256;

/// A simulated KMS and app.
pub struct SimDstack {
    kms_secret: Zeroizing<[u8; 32]>,
    kms_root: SigningKey,
    app_id: [u8; 20],
    app_key: Zeroizing<[u8; 32]>,
    compose_hash: [u8; 32],
    /// The app-compose file whose SHA-256 is `compose_hash` (empty for a
    /// simulator made from a bare hash).
    app_compose: String,
    /// Events the app emitted after boot (`EmitEvent`), in order.
    emitted: std::sync::Mutex<Vec<Event>>,
}

/// Why the simulated guest agent refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// An argument it does not take.
    #[error("{0}")]
    BadRequest(String),
    /// A key or signature operation failed.
    #[error("{0}")]
    Crypto(#[from] tee_core::Error),
    /// The simulated PKI could not issue a certificate.
    #[error("{0}")]
    Pki(String),
}

impl From<super::pki::PkiError> for SimError {
    fn from(e: super::pki::PkiError) -> SimError {
        SimError::Pki(e.to_string())
    }
}

impl std::fmt::Debug for SimDstack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDstack")
            .field("kms_root", &self.kms_root.address())
            .field("app_id", &hex::encode(self.app_id))
            .finish_non_exhaustive()
    }
}

fn hkdf(ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    let info = info.concat();
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
    let _ = Hkdf::<Sha256>::new(Some(b"RATLS"), ikm).expand(&info, &mut out[..]);
    out
}

impl SimDstack {
    /// A simulated KMS with root secret `kms_root`, serving the app
    /// `app_id` whose compose file hashes to `compose_hash`.
    pub fn new(
        kms_root: &[u8; 32],
        app_id: [u8; 20],
        compose_hash: [u8; 32],
    ) -> Result<Self, tee_core::Error> {
        let root = SigningKey::from_bytes(kms_root)?;
        let app_key = hkdf(kms_root, &[&app_id, b"app-key"]);
        SigningKey::from_bytes(&app_key)?;
        Ok(SimDstack {
            kms_secret: Zeroizing::new(*kms_root),
            kms_root: root,
            app_id,
            app_key,
            compose_hash,
            app_compose: String::new(),
            emitted: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A simulated KMS with root secret `kms_root`, serving the app
    /// `app_id` deployed from `app_compose` (its compose hash is the file's
    /// SHA-256, as dstack measures it; `Info` shows the file).
    pub fn with_app_compose(
        kms_root: &[u8; 32],
        app_id: [u8; 20],
        app_compose: &str,
    ) -> Result<Self, tee_core::Error> {
        use sha2::Digest;
        let hash = Sha256::digest(app_compose.as_bytes()).into();
        let mut sim = SimDstack::new(kms_root, app_id, hash)?;
        sim.app_compose = app_compose.to_owned();
        Ok(sim)
    }

    /// The app-compose file (empty if made from a bare hash).
    #[must_use]
    pub fn app_compose(&self) -> &str {
        &self.app_compose
    }

    /// The KMS root secret (the simulated KMS's CA key derives from it).
    pub(super) fn kms_root_secret(&self) -> Zeroizing<[u8; 32]> {
        self.kms_secret.clone()
    }

    /// The app key's secret (the app's CA key derives from it).
    pub(super) fn app_key_secret(&self) -> Zeroizing<[u8; 32]> {
        self.app_key.clone()
    }

    /// The app key (the KMS's key for this app), which signs derived keys.
    pub(super) fn app_key(&self) -> Result<SigningKey, tee_core::Error> {
        SigningKey::from_bytes(&self.app_key)
    }

    /// The secret dstack derives for `path` (the same bytes for every
    /// algorithm).
    pub(super) fn derived_secret(&self, path: &str) -> Zeroizing<[u8; 32]> {
        hkdf(&self.app_key[..], &[path.as_bytes()])
    }

    /// The KMS root's signature over the app key (the chain's last link).
    pub(super) fn kms_signature(&self) -> Result<tee_core::Signature, tee_core::Error> {
        let app = self.app_key()?;
        let issued =
            [&b"dstack-kms-issued:"[..], &self.app_id, &app.public_key().to_compressed()].concat();
        hazmat::sign_prehash(&self.kms_root, &keccak256(&issued))
    }

    /// dstack `EmitEvent`: appends a runtime event to the log (and so to
    /// RTMR3). Refused with an empty name, or past
    /// [`MAX_EMITTED_EVENTS`].
    pub fn emit_event(&self, name: &str, payload: &[u8]) -> Result<(), SimError> {
        if name.is_empty() {
            return Err(SimError::BadRequest("event name cannot be empty".into()));
        }
        let mut emitted = self.emitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if emitted.len() >= MAX_EMITTED_EVENTS {
            return Err(SimError::BadRequest(format!(
                "the simulator keeps at most {MAX_EMITTED_EVENTS} emitted events"
            )));
        }
        emitted.push(Event::runtime(name, payload));
        Ok(())
    }

    /// The KMS root's address (what a verifier's policy names).
    #[must_use]
    pub fn kms_root(&self) -> tee_core::Address {
        self.kms_root.address()
    }

    /// The app id.
    #[must_use]
    pub fn app_id(&self) -> [u8; 20] {
        self.app_id
    }

    /// The compose hash.
    #[must_use]
    pub fn compose_hash(&self) -> [u8; 32] {
        self.compose_hash
    }

    /// dstack `GetKey(path, purpose)`: the key and its signature chain.
    pub fn get_key(
        &self,
        path: &str,
        purpose: &str,
    ) -> Result<(Zeroizing<[u8; 32]>, KeyChain), tee_core::Error> {
        let secret = self.derived_secret(path);
        let key = SigningKey::from_bytes(&secret)?;
        let app = self.app_key()?;
        let public = key.public_key().to_compressed();
        let msg = format!("{purpose}:{}", hex::encode(public));
        let app_signature = hazmat::sign_prehash(&app, &keccak256(msg.as_bytes()))?;
        let kms_signature = self.kms_signature()?;
        let raw = |s: tee_core::Signature| {
            let mut b = s.to_bytes();
            b[64] = u8::from(s.y_parity);
            FixedBytes(b)
        };
        let chain = KeyChain {
            purpose: purpose.to_owned(),
            domain: None,
            public_key: FixedBytes(public),
            app_signature: raw(app_signature),
            kms_signature: raw(kms_signature),
        };
        Ok((secret, chain))
    }

    /// The event log: the runtime events dstack measures into RTMR3 at
    /// boot, then those the app emitted.
    #[must_use]
    pub fn event_log(&self) -> Vec<Event> {
        let mut log = self.boot_log();
        log.extend(
            self.emitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned(),
        );
        log
    }

    /// The runtime events dstack measures into RTMR3 at boot.
    #[must_use]
    pub fn boot_log(&self) -> Vec<Event> {
        vec![
            Event::runtime("system-preparing", &[]),
            Event::runtime("app-id", &self.app_id),
            Event::runtime("compose-hash", &self.compose_hash),
            Event::runtime("instance-id", &keccak256(&self.app_id).0[..20]),
            Event::runtime("boot-mr-done", &[]),
            Event::runtime("key-provider", br#"{"type":"kms","id":"simulated"}"#),
            Event::runtime("system-ready", &[]),
        ]
    }

    /// The TD's measurements: the sample quote's MRTD and RTMR0-2 (a
    /// dstack image's), RTMR3 replayed from the event log.
    #[must_use]
    pub fn measurements(&self) -> TdMeasurements {
        let mut m = TdMeasurements { mrtd: [0; 48], rtmr: [[0; 48]; 4] };
        if let Ok(q) = tee_core::quote::Quote::parse(SAMPLE_QUOTE) {
            m.mrtd = *q.report.mr_td;
            for (dst, src) in m.rtmr.iter_mut().zip(q.report.rtmr) {
                *dst = *src;
            }
        }
        m.rtmr[3] = eventlog::replay(&self.event_log(), 3).unwrap_or([0; 48]);
        m
    }

    /// dstack `GetQuote(report_data)`: a quote of the simulated TD signed
    /// through the simulated Intel PKI ([`SimPki`]: DCAP passes under the
    /// simulator's root only), and the event log.
    #[must_use]
    pub fn get_quote(&self, report_data: &[u8; 64]) -> (Vec<u8>, Vec<Event>) {
        let log = self.event_log();
        let m = self.measurements();
        let quote = match SimPki::shared().map(|pki| pki.quote(&m, report_data)) {
            Some(Ok(q)) => q,
            // Without its PKI (it cannot fail to build but for a bug) the
            // simulator still answers, with a quote that never verifies.
            _ => patched_quote(report_data, &m.rtmr[3]),
        };
        (quote, log)
    }
}

/// The sample quote with `report_data` and `rtmr3` written into its TD report.
#[must_use]
pub fn patched_quote(report_data: &[u8; 64], rtmr3: &[u8; 48]) -> Vec<u8> {
    let mut q = SAMPLE_QUOTE.to_vec();
    if let Some(dst) = q.get_mut(RTMR3_AT..RTMR3_AT + 48) {
        dst.copy_from_slice(rtmr3);
    }
    if let Some(dst) = q.get_mut(REPORT_DATA_AT..REPORT_DATA_AT + 64) {
        dst.copy_from_slice(report_data);
    }
    q
}
