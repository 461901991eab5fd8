//! Collateral from a PCCS (or Intel's PCS) the user configures: the CRLs,
//! TCB info and QE identity a TDX quote is verified against, in dcap-qvl's
//! `QuoteCollateralV3` form. Only ever called with a URL the caller gives;
//! nothing in this crate reaches the network on its own.
//!
//! The requests are those of the PCCS API v4 (as dcap-qvl's own fetcher
//! makes them): `pckcrl?ca=…&encoding=der`, `tdx/…/tcb?fmspc=…`,
//! `tdx/…/qe/identity`, `rootcacrl`, with the issuer chains in the
//! `…-Issuer-Chain` headers (percent-encoded PEM).

use std::time::Duration;

use dcap_qvl::QuoteCollateralV3;
use tee_core::quote::Quote;

/// Why collateral could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum PccsError {
    /// The client cannot be set up as asked.
    #[error("PCCS client: {0}")]
    Config(String),
    /// The quote cannot give what the requests need.
    #[error("quote: {0}")]
    Quote(String),
    /// A request failed.
    #[error("GET {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A response is not what the PCCS API promises.
    #[error("bad response from {url}: {message}")]
    Response {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// A PCCS client.
#[derive(Debug, Clone)]
pub struct Pccs {
    base: String,
    agent: ureq::Agent,
}

struct Response {
    body: Vec<u8>,
    issuer_chain: Option<String>,
}

impl Pccs {
    /// A client for the PCCS at `url` (e.g. `https://pccs.example:8081`,
    /// with or without the `/sgx/certification/v4` suffix). `root_ca_pem`
    /// adds a trusted CA for a PCCS with a private certificate.
    pub fn new(url: &str, root_ca_pem: Option<&[u8]>) -> Result<Self, PccsError> {
        let base = url
            .trim_end_matches('/')
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_owned();
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false);
        if let Some(pem) = root_ca_pem {
            let certs: Vec<_> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(PccsError::Config("the PCCS CA file holds no certificate".into()));
            }
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build();
            config = config.tls_config(tls);
        }
        Ok(Pccs { base, agent: config.build().new_agent() })
    }

    fn get(&self, path: &str, chain_headers: &[&str]) -> Result<Response, PccsError> {
        let url = format!("{}/{path}", self.base);
        let http = |message: String| PccsError::Http { url: url.clone(), message };
        let mut resp = self.agent.get(&url).call().map_err(|e| http(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(http(format!("HTTP {}", resp.status())));
        }
        let issuer_chain = chain_headers
            .iter()
            .find_map(|h| resp.headers().get(*h))
            .and_then(|v| v.to_str().ok())
            .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned());
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| http(e.to_string()))?;
        Ok(Response { body, issuer_chain })
    }

    /// The collateral for `quote` (a TDX quote whose certification data is
    /// the PCK certificate chain, as dstack's are).
    pub fn collateral(&self, quote: &[u8]) -> Result<QuoteCollateralV3, PccsError> {
        let parsed = Quote::parse(quote).map_err(|e| PccsError::Quote(e.to_string()))?;
        if parsed.auth.cert_type != tee_core::quote::CERT_TYPE_PCK_CHAIN {
            return Err(PccsError::Quote(format!(
                "certification data type {} (only 5, an embedded PCK chain, is supported)",
                parsed.auth.cert_type
            )));
        }
        let pck_chain =
            String::from_utf8_lossy(parsed.auth.cert_data).trim_end_matches('\0').to_owned();
        let dcap =
            dcap_qvl::quote::Quote::parse(quote).map_err(|e| PccsError::Quote(format!("{e:#}")))?;
        let fmspc = hex::encode_upper(
            dcap_qvl::intel::quote_fmspc(&dcap).map_err(|e| PccsError::Quote(format!("{e:#}")))?,
        );
        let ca = dcap_qvl::intel::quote_ca(&dcap)
            .map_err(|e| PccsError::Quote(format!("{e:#}")))?
            .as_id_str();

        let missing = |url: String, what: &str| PccsError::Response {
            url,
            message: format!("no {what} header"),
        };
        let crl_path = format!("sgx/certification/v4/pckcrl?ca={ca}&encoding=der");
        let crl = self.get(&crl_path, &["SGX-PCK-CRL-Issuer-Chain"])?;
        let pck_crl_issuer_chain =
            crl.issuer_chain.ok_or_else(|| missing(crl_path.clone(), "issuer chain"))?;

        let tcb_path = format!("tdx/certification/v4/tcb?fmspc={fmspc}");
        let tcb = self.get(&tcb_path, &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"])?;
        let tcb_info_issuer_chain =
            tcb.issuer_chain.clone().ok_or_else(|| missing(tcb_path.clone(), "issuer chain"))?;
        let (tcb_info, tcb_info_signature) = split_signed(&tcb_path, &tcb.body, "tcbInfo")?;

        let qe_path = "tdx/certification/v4/qe/identity".to_owned();
        let qe = self.get(&qe_path, &["SGX-Enclave-Identity-Issuer-Chain"])?;
        let qe_identity_issuer_chain =
            qe.issuer_chain.clone().ok_or_else(|| missing(qe_path.clone(), "issuer chain"))?;
        let (qe_identity, qe_identity_signature) =
            split_signed(&qe_path, &qe.body, "enclaveIdentity")?;

        // A PCCS serves the root CA CRL hex-encoded.
        let root_path = "sgx/certification/v4/rootcacrl".to_owned();
        let root = self.get(&root_path, &[])?;
        let text = String::from_utf8_lossy(&root.body);
        let root_ca_crl = hex::decode(text.trim()).map_err(|e| PccsError::Response {
            url: root_path,
            message: format!("root CA CRL is not hex: {e}"),
        })?;

        Ok(QuoteCollateralV3 {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl: crl.body,
            tcb_info_issuer_chain,
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain,
            qe_identity,
            qe_identity_signature,
            pck_certificate_chain: Some(pck_chain),
        })
    }
}

/// Splits `{"<key>": {...}, "signature": "<hex>"}` into the signed JSON text
/// and the signature bytes.
fn split_signed(url: &str, body: &[u8], key: &str) -> Result<(String, Vec<u8>), PccsError> {
    let bad = |message: String| PccsError::Response { url: url.to_owned(), message };
    // The signature covers the signed object's exact text, so it is taken
    // raw, never re-serialised.
    let v: std::collections::HashMap<&str, &serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let signed = v.get(key).ok_or_else(|| bad(format!("no {key}")))?;
    let signature = v.get("signature").ok_or_else(|| bad("no signature".into()))?;
    let signature: &str = serde_json::from_str(signature.get())
        .map_err(|e| bad(format!("signature is not a string: {e}")))?;
    let signature =
        hex::decode(signature).map_err(|e| bad(format!("signature is not hex: {e}")))?;
    Ok((signed.get().to_owned(), signature))
}
