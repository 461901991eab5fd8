//! A simulated Intel DCAP hierarchy, so the simulated TEE's quotes really
//! verify (with `dcap-qvl`, the production verifier) when, and only when, a
//! verifier is told to trust this simulator's root instead of Intel's.
//!
//! From a 32-byte seed it derives P-256 keys and issues what Intel's PKI
//! issues: a root CA, a PCK platform CA under it, a PCK certificate (with
//! the SGX extension DCAP reads: FMSPC, PCE id, TCB components), the TCB
//! info and QE identity signing certificates, and both CRLs. A quote is a
//! TDX v4 quote whose TD report is signed by a fresh attestation key, that
//! key vouched for by a quoting-enclave report signed with the PCK key;
//! collateral (TCB info, QE identity, CRLs and chains) matches it for a
//! window around the time asked.
//!
//! Everything here is public: the seed is a constant of this crate
//! ([`SIMULATOR_SEED`]), so anyone can rebuild the root (a validator that
//! trusts it trusts nothing but this simulator). Intel's root stays the
//! verifier's default, and under it a simulated quote fails.

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams,
    CustomExtension, DnType, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData,
    SerialNumber, SignatureAlgorithm,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The simulator's PKI seed: public, so the simulated root is reproducible
/// by anyone (`SHA-256("erc8004-tee-signer simulated Intel PKI v1")`).
pub const SIMULATOR_SEED: [u8; 32] = [
    0x50, 0xd0, 0xa4, 0x2a, 0x17, 0x20, 0xb4, 0x0e, 0x4a, 0x0c, 0xe4, 0xcf, 0xb9, 0xfb, 0x29, 0x87,
    0x63, 0xa5, 0x5c, 0x65, 0x8b, 0x7f, 0xed, 0xf1, 0x7c, 0xd6, 0x5d, 0xaf, 0xec, 0xd7, 0x2e, 0xc9,
];

/// The certificates' validity: 2020-01-01 to 2100-01-01.
const NOT_BEFORE: i64 = 1_577_836_800;
const NOT_AFTER: i64 = 4_102_444_800;
/// Intel's QE vendor id, which DCAP expects in the quote header.
const QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];
/// The simulated quoting enclave's signer and product id (the QE identity
/// names them).
const QE_MR_SIGNER: [u8; 32] = [0x44; 32];
const QE_PROD_ID: u16 = 1;
const QE_SVN: u16 = 1;

/// Why the simulated PKI could not be made or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A certificate or CRL.
    #[error("simulated PKI: {0}")]
    X509(#[from] rcgen::Error),
    /// A key or a time.
    #[error("simulated PKI: {0}")]
    Other(String),
}

/// A P-256 key that signs certificates for rcgen.
pub(crate) struct P256Key {
    key: SigningKey,
    /// SEC1 uncompressed public key.
    public: Vec<u8>,
}

impl P256Key {
    /// The key for `label` under `seed` (HKDF-SHA256, retried in the
    /// negligible case of an invalid scalar).
    pub(crate) fn derive(seed: &[u8; 32], label: &str) -> Result<P256Key, PkiError> {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"tee-signer simulated pki"), seed);
        for counter in 0u8..=255 {
            let mut secret = Zeroizing::new([0u8; 32]);
            hk.expand(&[label.as_bytes(), &[counter]].concat(), &mut secret[..])
                .map_err(|e| PkiError::Other(e.to_string()))?;
            if let Ok(key) = SigningKey::from_slice(&secret[..]) {
                let public = key.verifying_key().to_sec1_point(false).as_bytes().to_vec();
                return Ok(P256Key { key, public });
            }
        }
        Err(PkiError::Other(format!("no valid key for {label}")))
    }

    pub(crate) fn random() -> Result<P256Key, PkiError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        loop {
            getrandom::fill(&mut secret[..]).map_err(|e| PkiError::Other(e.to_string()))?;
            if let Ok(key) = SigningKey::from_slice(&secret[..]) {
                let public = key.verifying_key().to_sec1_point(false).as_bytes().to_vec();
                return Ok(P256Key { key, public });
            }
        }
    }

    /// The key identifier (RFC 7093 method 1: SHA-256 of the public key,
    /// truncated), which certificates and CRLs name their issuer by.
    pub(crate) fn id(&self) -> KeyIdMethod {
        let digest = Sha256::digest(&self.public);
        KeyIdMethod::PreSpecified(digest.get(..20).unwrap_or(&digest).to_vec())
    }

    /// The private key, PKCS#8 PEM.
    pub(crate) fn pkcs8_pem(&self) -> Result<String, PkiError> {
        use p256::pkcs8::EncodePrivateKey;
        let pem = self
            .key
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .map_err(|e| PkiError::Other(e.to_string()))?;
        Ok(pem.as_str().to_owned())
    }

    /// `r ‖ s`, as DCAP carries signatures.
    fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        let sig: Signature = self.key.sign(msg);
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        out
    }
}

impl PublicKeyData for P256Key {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(der_signature(&self.sign_raw(msg)))
    }
}

/// An ECDSA signature `r ‖ s` as X.509 carries it: DER
/// `SEQUENCE { INTEGER r, INTEGER s }`.
fn der_signature(rs: &[u8; 64]) -> Vec<u8> {
    let int = |v: &[u8]| {
        // Minimal: no leading zero bytes (but one for zero itself).
        let start = v.iter().position(|&b| b != 0).unwrap_or(v.len().saturating_sub(1));
        let v = v.get(start..).unwrap_or(v);
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        let mut out = vec![0x02, (v.len() + usize::from(pad)) as u8];
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let (r, s) = rs.split_at(32);
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// A certificate with its key.
struct Cert {
    cert: Certificate,
    params: CertificateParams,
    key: P256Key,
}

impl Cert {
    fn issuer(&self) -> Issuer<'_, &P256Key> {
        Issuer::from_params(&self.params, &self.key)
    }
}

fn at(secs: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PkiError::Other(e.to_string()))
}

/// The certificate parameters for `name`, whose key is `key`.
fn params(name: &str, ca: bool, key: &P256Key) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::default();
    p.key_identifier_method = key.id();
    p.distinguished_name.push(DnType::CommonName, name);
    p.distinguished_name
        .push(DnType::OrganizationName, "erc8004-tee-signer simulator (no hardware)");
    p.serial_number = Some(SerialNumber::from(1u64));
    p.not_before = at(NOT_BEFORE)?;
    p.not_after = at(NOT_AFTER)?;
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
    } else {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
    }
    Ok(p)
}

/// The SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1):
/// PPID, TCB (PCESVN and CPUSVN), PCE id, FMSPC and SGX type, all zero (the
/// TCB info names the same).
fn sgx_extension() -> CustomExtension {
    const SGX: [u64; 8] = [1, 2, 840, 113_741, 1, 13, 1, 0];
    let oid = |tail: &[u64]| {
        let mut o = SGX[..7].to_vec();
        o.extend_from_slice(tail);
        yasna::models::ObjectIdentifier::from_slice(&o)
    };
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(&[1]));
                w.next().write_bytes(&[0; 16]);
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(&[2]));
                w.next().write_sequence(|w| {
                    for comp in 1..=16u64 {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(&[2, comp]));
                            w.next().write_u8(0);
                        });
                    }
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(&[2, 17]));
                        w.next().write_u8(0);
                    });
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(&[2, 18]));
                        w.next().write_bytes(&[0; 16]);
                    });
                });
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(&[3]));
                w.next().write_bytes(&[0; 2]);
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(&[4]));
                w.next().write_bytes(&[0; 6]);
            });
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(&[5]));
                w.next().write_enum(0);
            });
        });
    });
    CustomExtension::from_oid_content(&SGX[..7], der)
}

/// The measurements a simulated TD reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdMeasurements {
    /// MRTD.
    pub mrtd: [u8; 48],
    /// RTMR0 to RTMR3.
    pub rtmr: [[u8; 48]; 4],
}

/// The simulated Intel PKI. See the module documentation.
pub struct SimPki {
    root: Cert,
    pck_ca: Cert,
    pck: Cert,
    tcb_signer: Cert,
    qe_signer: Cert,
    root_crl: Vec<u8>,
    pck_crl: Vec<u8>,
}

impl std::fmt::Debug for SimPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPki").finish_non_exhaustive()
    }
}

impl tee_verify::SimulatedRoot for SimPki {
    fn root_ca_der(&self) -> Vec<u8> {
        SimPki::root_ca_der(self)
    }
    fn collateral(&self, now: u64) -> Result<dcap_qvl::QuoteCollateralV3, String> {
        SimPki::collateral(self, now).map_err(|e| e.to_string())
    }
}

impl SimPki {
    /// The simulator's own PKI, from [`SIMULATOR_SEED`].
    pub fn simulator() -> Result<SimPki, PkiError> {
        SimPki::from_seed(&SIMULATOR_SEED)
    }

    /// [`SimPki::simulator`], built once per process (`None` if it could
    /// not be built, which only a bug makes happen).
    #[must_use]
    pub fn shared() -> Option<&'static SimPki> {
        static SHARED: std::sync::OnceLock<Option<SimPki>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| {
                SimPki::simulator()
                    .map_err(|e| tracing::error!(error = %e, "the simulated PKI"))
                    .ok()
            })
            .as_ref()
    }

    /// A PKI from `seed`: the same seed gives the same root, certificates
    /// and CRLs.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SimPki, PkiError> {
        let root_key = P256Key::derive(seed, "root")?;
        let root_params = params("Simulated Intel SGX Root CA", true, &root_key)?;
        let root_cert = root_params.self_signed(&root_key)?;
        let root = Cert { cert: root_cert, params: root_params, key: root_key };
        let issue = |name: &str, label: &str, ca: bool, by: &Cert, pck: bool| {
            let key = P256Key::derive(seed, label)?;
            let mut p = params(name, ca, &key)?;
            if pck {
                p.custom_extensions.push(sgx_extension());
            }
            let cert = p.signed_by(&key, &by.issuer())?;
            Ok::<_, PkiError>(Cert { cert, params: p, key })
        };
        let pck_ca = issue("Simulated Intel SGX PCK Platform CA", "pck-ca", true, &root, false)?;
        let pck = issue("Simulated Intel SGX PCK Certificate", "pck", false, &pck_ca, true)?;
        let tcb_signer = issue("Simulated Intel SGX TCB Signing", "tcb", false, &root, false)?;
        let qe_signer =
            issue("Simulated Intel SGX QE Identity Signing", "qe", false, &root, false)?;
        let crl = |by: &Cert| {
            let params = CertificateRevocationListParams {
                this_update: at(NOT_BEFORE)?,
                next_update: at(NOT_AFTER)?,
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: Vec::new(),
                key_identifier_method: by.key.id(),
            };
            Ok::<_, PkiError>(params.signed_by(&by.issuer())?.der().to_vec())
        };
        let root_crl = crl(&root)?;
        let pck_crl = crl(&pck_ca)?;
        Ok(SimPki { root, pck_ca, pck, tcb_signer, qe_signer, root_crl, pck_crl })
    }

    /// The root CA certificate (DER): what a verifier that trusts this
    /// simulator is given instead of Intel's.
    #[must_use]
    pub fn root_ca_der(&self) -> Vec<u8> {
        self.root.cert.der().to_vec()
    }

    /// A TDX v4 quote of a TD with `measurements` and `report_data`, signed
    /// through the simulated quoting enclave.
    #[must_use = "the quote"]
    pub fn quote(
        &self,
        measurements: &TdMeasurements,
        report_data: &[u8; 64],
    ) -> Result<Vec<u8>, PkiError> {
        let attestation_key = P256Key::random()?;
        let ak: [u8; 64] = attestation_key
            .public
            .get(1..65)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| PkiError::Other("attestation key".into()))?;
        let qe_auth = [0u8; 32];

        let mut q = Vec::with_capacity(6 * 1024);
        // Header: version 4, ECDSA-256-with-P-256, TDX, QE and PCE SVN,
        // Intel's QE vendor id, user data.
        q.extend_from_slice(&4u16.to_le_bytes());
        q.extend_from_slice(&2u16.to_le_bytes());
        q.extend_from_slice(&0x81u32.to_le_bytes());
        q.extend_from_slice(&QE_SVN.to_le_bytes());
        q.extend_from_slice(&0u16.to_le_bytes());
        q.extend_from_slice(&QE_VENDOR_ID);
        q.extend_from_slice(&[0; 20]);
        // TD report 1.0: TEE TCB SVN, MRSEAM, MRSIGNERSEAM, SEAM attributes
        // (the TDX module the TCB info names: all zero), TD attributes
        // (SEPT_VE_DISABLE, not debug), XFAM, MRTD, MRCONFIGID, MROWNER,
        // MROWNERCONFIG, RTMR0-3, report data.
        q.extend_from_slice(&[0; 16 + 48 + 48 + 8]);
        q.extend_from_slice(&[0, 0, 0, 0x10, 0, 0, 0, 0]);
        q.extend_from_slice(&[0xe7, 0x02, 0x06, 0, 0, 0, 0, 0]);
        q.extend_from_slice(&measurements.mrtd);
        q.extend_from_slice(&[0; 48 * 3]);
        for r in &measurements.rtmr {
            q.extend_from_slice(r);
        }
        q.extend_from_slice(report_data);
        let signed_len = q.len();

        // The QE report: its report data commits to the attestation key.
        let mut qe_report = Vec::with_capacity(384);
        qe_report.extend_from_slice(&[0; 16]); // CPUSVN
        qe_report.extend_from_slice(&0u32.to_le_bytes()); // MISCSELECT
        qe_report.extend_from_slice(&[0; 28]);
        qe_report.extend_from_slice(&[0; 16]); // attributes
        qe_report.extend_from_slice(&[0; 32]); // MRENCLAVE
        qe_report.extend_from_slice(&[0; 32]);
        qe_report.extend_from_slice(&QE_MR_SIGNER);
        qe_report.extend_from_slice(&[0; 96]);
        qe_report.extend_from_slice(&QE_PROD_ID.to_le_bytes());
        qe_report.extend_from_slice(&QE_SVN.to_le_bytes());
        qe_report.extend_from_slice(&[0; 60]);
        let commitment = Sha256::new().chain_update(ak).chain_update(qe_auth).finalize();
        qe_report.extend_from_slice(&commitment);
        qe_report.extend_from_slice(&[0; 32]);
        let qe_report_signature = self.pck.key.sign_raw(&qe_report);

        let chain = [self.pck.cert.pem(), self.pck_ca.cert.pem(), self.root.cert.pem()].concat();
        let mut qe_data = Vec::new();
        qe_data.extend_from_slice(&qe_report);
        qe_data.extend_from_slice(&qe_report_signature);
        qe_data.extend_from_slice(&len16(qe_auth.len())?.to_le_bytes());
        qe_data.extend_from_slice(&qe_auth);
        qe_data.extend_from_slice(&5u16.to_le_bytes()); // PCK chain, PEM
        qe_data.extend_from_slice(&len32(chain.len())?.to_le_bytes());
        qe_data.extend_from_slice(chain.as_bytes());

        let signature = attestation_key.sign_raw(q.get(..signed_len).unwrap_or(&[]));
        let mut auth = Vec::new();
        auth.extend_from_slice(&signature);
        auth.extend_from_slice(&ak);
        auth.extend_from_slice(&6u16.to_le_bytes()); // QE report certification data
        auth.extend_from_slice(&len32(qe_data.len())?.to_le_bytes());
        auth.extend_from_slice(&qe_data);
        q.extend_from_slice(&len32(auth.len())?.to_le_bytes());
        q.extend_from_slice(&auth);
        Ok(q)
    }

    /// Collateral for this PKI's quotes, issued a day before `now` and
    /// valid 30 days after it (dcap-qvl's JSON format).
    pub fn collateral(&self, now: u64) -> Result<dcap_qvl::QuoteCollateralV3, PkiError> {
        let now = i64::try_from(now).map_err(|e| PkiError::Other(e.to_string()))?;
        let date = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .ok_or_else(|| PkiError::Other(format!("time {t} out of range")))
        };
        let (issue, next) = (date(now - 86_400)?, date(now + 30 * 86_400)?);
        let zeros = |n| vec![serde_json::json!({ "svn": 0 }); n];
        let tcb_info = serde_json::json!({
            "id": "TDX", "version": 3, "issueDate": issue, "nextUpdate": next,
            "fmspc": "000000000000", "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 1,
            "tdxModule": {
                "mrsigner": "00".repeat(48), "attributes": "00".repeat(8),
                "attributesMask": "00".repeat(8),
            },
            "tcbLevels": [{
                "tcb": { "sgxtcbcomponents": zeros(16), "pcesvn": 0, "tdxtcbcomponents": zeros(16) },
                "tcbDate": issue, "tcbStatus": "UpToDate",
            }],
        })
        .to_string();
        let qe_identity = serde_json::json!({
            "id": "TD_QE", "version": 2, "issueDate": issue, "nextUpdate": next,
            "tcbEvaluationDataNumber": 1, "miscselect": "00000000", "miscselectMask": "00000000",
            "attributes": "00".repeat(16), "attributesMask": "00".repeat(16),
            "mrsigner": hex::encode(QE_MR_SIGNER), "isvprodid": QE_PROD_ID,
            "tcbLevels": [{ "tcb": { "isvsvn": QE_SVN }, "tcbDate": issue, "tcbStatus": "UpToDate" }],
        })
        .to_string();
        let root = self.root.cert.pem();
        Ok(dcap_qvl::QuoteCollateralV3 {
            pck_crl_issuer_chain: [self.pck_ca.cert.pem(), root.clone()].concat(),
            root_ca_crl: self.root_crl.clone(),
            pck_crl: self.pck_crl.clone(),
            tcb_info_issuer_chain: [self.tcb_signer.cert.pem(), root.clone()].concat(),
            tcb_info_signature: self.tcb_signer.key.sign_raw(tcb_info.as_bytes()).to_vec(),
            tcb_info,
            qe_identity_issuer_chain: [self.qe_signer.cert.pem(), root].concat(),
            qe_identity_signature: self.qe_signer.key.sign_raw(qe_identity.as_bytes()).to_vec(),
            qe_identity,
            pck_certificate_chain: None,
        })
    }
}

fn len16(n: usize) -> Result<u16, PkiError> {
    u16::try_from(n).map_err(|e| PkiError::Other(e.to_string()))
}

fn len32(n: usize) -> Result<u32, PkiError> {
    u32::try_from(n).map_err(|e| PkiError::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const NOW: u64 = 1_790_000_000;

    fn measurements() -> TdMeasurements {
        TdMeasurements { mrtd: [0x11; 48], rtmr: [[0x20; 48], [0x21; 48], [0x22; 48], [0x23; 48]] }
    }

    /// dcap-qvl verifies a simulated quote under the simulator's root, and
    /// under no other root; a changed byte or other report data fails.
    #[test]
    fn simulated_quotes_verify_under_the_simulator_root_only() {
        let pki = SimPki::simulator().unwrap();
        let quote = pki.quote(&measurements(), &[0x42; 64]).unwrap();
        let collateral = pki.collateral(NOW).unwrap();
        let verifier = dcap_qvl::verify::QuoteVerifier::new(pki.root_ca_der());
        let v = verifier.verify(&quote, &collateral, NOW).unwrap();
        assert_eq!(v.status, "UpToDate");
        assert_eq!(v.report.as_td10().unwrap().report_data, [0x42; 64]);
        let parsed = tee_core::quote::Quote::parse(&quote).unwrap();
        assert_eq!(parsed.report.mr_td, &[0x11; 48]);
        assert!(!parsed.is_debug());

        // Intel's root, another seed's root: refused.
        assert!(dcap_qvl::verify::verify(&quote, &collateral, NOW).is_err());
        let other = SimPki::from_seed(&[7; 32]).unwrap();
        let r = dcap_qvl::verify::QuoteVerifier::new(other.root_ca_der()).verify(
            &quote,
            &collateral,
            NOW,
        );
        assert!(r.is_err());
        // A changed report byte, an expired collateral: refused.
        let mut tampered = quote.clone();
        tampered[48 + 520] ^= 1;
        assert!(verifier.verify(&tampered, &collateral, NOW).is_err());
        assert!(verifier.verify(&quote, &collateral, NOW + 40 * 86_400).is_err());
    }

    /// The same seed gives the same hierarchy (a validator rebuilds the
    /// root), collateral made apart verifies the same quote.
    #[test]
    fn the_root_is_reproducible() {
        let a = SimPki::simulator().unwrap();
        let b = SimPki::simulator().unwrap();
        assert_eq!(a.root_ca_der(), b.root_ca_der());
        let quote = a.quote(&measurements(), &[1; 64]).unwrap();
        let v = dcap_qvl::verify::QuoteVerifier::new(b.root_ca_der()).verify(
            &quote,
            &b.collateral(NOW).unwrap(),
            NOW,
        );
        assert!(v.is_ok(), "{v:?}");
    }
}
