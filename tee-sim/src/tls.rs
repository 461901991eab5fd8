//! dstack `GetP256Key` on the simulated dstack: a fresh P-256 key and a
//! certificate chain shaped as dstack's KMS issues it (the app's
//! certificate, signed by a CA the simulated KMS derives for the app, under
//! the simulated KMS's root CA), with dstack's RA-TLS quote extension when
//! `usage_ra_tls` asks for it.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha512};

use super::dstack::{SimDstack, SimError};
use super::pki::P256Key;

/// dstack's RA-TLS certificate extension carrying the TDX quote.
const RA_TLS_QUOTE_OID: [u64; 9] = [1, 3, 6, 1, 4, 1, 62397, 1, 1];
/// dstack's RA-TLS extension carrying the event log.
const RA_TLS_EVENT_LOG_OID: [u64; 9] = [1, 3, 6, 1, 4, 1, 62397, 1, 2];

/// What `GetP256Key` asks for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct TlsKeyRequest {
    /// The certificate's subject (common name).
    pub subject: String,
    /// Subject alternative names (DNS names or IP addresses).
    pub alt_names: Vec<String>,
    /// Embed the quote (and event log) binding the key, as RA-TLS.
    pub usage_ra_tls: bool,
    /// TLS server authentication.
    pub usage_server_auth: bool,
    /// TLS client authentication.
    pub usage_client_auth: bool,
    /// Validity start, unix seconds.
    pub not_before: Option<u64>,
    /// Validity end, unix seconds.
    pub not_after: Option<u64>,
    /// Accepted (the app info extension is not simulated).
    pub with_app_info: bool,
}

fn bad(e: impl std::fmt::Display) -> SimError {
    SimError::BadRequest(e.to_string())
}

fn at(secs: u64) -> Result<time::OffsetDateTime, SimError> {
    let secs = i64::try_from(secs).map_err(bad)?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(bad)
}

fn ca(name: &str, key: &P256Key) -> Result<CertificateParams, SimError> {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = key.id();
    p.serial_number = Some(rcgen::SerialNumber::from(1u64));
    p.not_before = at(1_577_836_800)?;
    p.not_after = at(4_102_444_800)?;
    Ok(p)
}

impl SimDstack {
    /// dstack `GetP256Key`: the key (PKCS#8 PEM) and the chain, leaf first.
    pub fn get_tls_key(&self, r: &TlsKeyRequest) -> Result<(String, Vec<String>), SimError> {
        if let (Some(a), Some(b)) = (r.not_before, r.not_after)
            && a >= b
        {
            return Err(bad("not_before must be before not_after"));
        }
        let root_key = P256Key::derive(&self.kms_root_secret(), "kms-ca")?;
        let root_params = ca("Simulated dstack KMS CA", &root_key)?;
        let root = root_params.self_signed(&root_key).map_err(bad)?;
        let app_key = P256Key::derive(&self.app_key_secret(), "app-ca")?;
        let app_params =
            ca(&format!("Simulated dstack app {}", hex::encode(self.app_id())), &app_key)?;
        let root_issuer = Issuer::from_params(&root_params, &root_key);
        let app = app_params.signed_by(&app_key, &root_issuer).map_err(bad)?;

        let key = P256Key::random()?;
        let mut p = CertificateParams::default();
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).map_err(bad)?;
        serial[0] &= 0x7f;
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        p.distinguished_name.push(DnType::CommonName, r.subject.as_str());
        p.key_identifier_method = key.id();
        for name in &r.alt_names {
            p.subject_alt_names.push(match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into().map_err(bad)?),
            });
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyAgreement];
        if r.usage_server_auth {
            p.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if r.usage_client_auth {
            p.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        p.not_before = at(r.not_before.unwrap_or(now.saturating_sub(60)))?;
        p.not_after = at(r.not_after.unwrap_or(now.saturating_add(365 * 86_400)))?;
        if r.usage_ra_tls {
            // The quote binds the key: report_data = SHA-512("ratls-cert:" ‖
            // the public key's DER), as dstack's RA-TLS does.
            let mut report_data = [0u8; 64];
            let digest = Sha512::new()
                .chain_update(b"ratls-cert:")
                .chain_update(rcgen::PublicKeyData::subject_public_key_info(&key))
                .finalize();
            report_data.copy_from_slice(&digest);
            let (quote, log) = self.get_quote(&report_data);
            let log = serde_json::to_vec(&log).map_err(bad)?;
            p.custom_extensions.push(CustomExtension::from_oid_content(
                &RA_TLS_QUOTE_OID,
                yasna::construct_der(|w| w.write_bytes(&quote)),
            ));
            p.custom_extensions.push(CustomExtension::from_oid_content(
                &RA_TLS_EVENT_LOG_OID,
                yasna::construct_der(|w| w.write_bytes(&log)),
            ));
        }
        let app_issuer = Issuer::from_params(&app_params, &app_key);
        let leaf = p.signed_by(&key, &app_issuer).map_err(bad)?;
        Ok((key.pkcs8_pem()?, vec![leaf.pem(), app.pem(), root.pem()]))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_chain_for_a_request() {
        let sim = SimDstack::with_app_compose(&[0x11; 32], [0x22; 20], "{}").unwrap();
        let r = TlsKeyRequest {
            subject: "agent.example".into(),
            alt_names: vec!["agent.example".into(), "127.0.0.1".into()],
            usage_ra_tls: true,
            usage_server_auth: true,
            ..TlsKeyRequest::default()
        };
        let (key, chain) = sim.get_tls_key(&r).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(chain.len(), 3);
    }
}
