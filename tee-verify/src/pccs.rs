//! Collateral from a PCCS (or Intel's PCS) the user configures: the CRLs,
//! TCB info and QE identity a TDX quote is verified against, in dcap-qvl's
//! `QuoteCollateralV3` form. Only ever called with a URL the caller gives;
//! nothing in this crate reaches the network on its own.
//!
//! The requests are those of the PCCS API v4 (as dcap-qvl's own fetcher
//! makes them): `pckcrl?ca=…&encoding=der`, `tdx/…/tcb?fmspc=…`,
//! `tdx/…/qe/identity`, `rootcacrl`, with the issuer chains in the
//! `…-Issuer-Chain` headers (percent-encoded PEM).

use std::path::{Path, PathBuf};
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
    /// Where fetched collateral is kept, per FMSPC and PCK CA, while valid.
    cache: Option<PathBuf>,
    /// The FMSPC and `nextUpdate` of the last collateral
    /// [`Pccs::collateral_at`] gave.
    seen: std::sync::Arc<std::sync::Mutex<Option<(String, i64)>>>,
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
        Ok(Pccs { base, agent: config.build().new_agent(), cache: None, seen: Default::default() })
    }

    /// Keeps fetched collateral in `dir` (one JSON file per FMSPC and PCK
    /// CA, the directory made private) and reuses it while it is valid
    /// ([`Pccs::collateral_at`]): a validator answering many requests asks
    /// the PCCS once per platform and collateral period. The collateral is
    /// Intel-signed, checked at every use; a file that does not read, or
    /// belongs to another platform, is fetched again.
    pub fn with_cache(mut self, dir: &Path) -> Result<Self, PccsError> {
        let io = |e: std::io::Error| PccsError::Config(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        self.cache = Some(dir.to_owned());
        Ok(self)
    }

    /// The FMSPC and `nextUpdate` (unix seconds) of the last collateral
    /// [`Pccs::collateral_at`] gave: what a validator warns about ahead of
    /// its expiry.
    #[must_use]
    pub fn last_seen(&self) -> Option<(String, i64)> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The collateral for `quote` at unix time `now`: from the cache while
    /// its `nextUpdate` is ahead of `now`, else fetched (and cached). Says
    /// which.
    pub fn collateral_at(
        &self,
        quote: &[u8],
        now: u64,
    ) -> Result<(QuoteCollateralV3, Source), PccsError> {
        let (fmspc, ca) = platform(quote)?;
        let noted = |c: &QuoteCollateralV3| {
            if let Some(next) = crate::tcb::collateral_next_update(c) {
                *self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((fmspc.clone(), next));
            }
        };
        let Some(dir) = &self.cache else {
            let c = self.collateral(quote)?;
            noted(&c);
            return Ok((c, Source::Fetched));
        };
        let file = dir.join(format!("{fmspc}-{ca}.json"));
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let cached = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<QuoteCollateralV3>(&b).ok())
            .filter(|c| {
                crate::tcb::collateral_next_update(c).is_some_and(|next| now < next)
                    && c.pck_certificate_chain.as_deref() == Some(pck_chain(quote).as_str())
            });
        if let Some(c) = cached {
            noted(&c);
            return Ok((c, Source::Cached));
        }
        let c = self.collateral(quote)?;
        noted(&c);
        // A cache that cannot be written costs a fetch next time, nothing
        // more.
        if let Ok(json) = serde_json::to_vec(&c) {
            let tmp = file.with_extension("tmp");
            if std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &file)).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok((c, Source::Fetched))
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
    /// the PCK certificate chain, as dstack's are), fetched now.
    pub fn collateral(&self, quote: &[u8]) -> Result<QuoteCollateralV3, PccsError> {
        let (fmspc, ca) = platform(quote)?;
        let pck_chain = pck_chain(quote);

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

/// Where collateral came from ([`Pccs::collateral_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cache, still valid.
    Cached,
    /// The PCCS, now.
    Fetched,
}

/// The quote's FMSPC (upper-case hex) and PCK CA (`processor` or
/// `platform`), as dcap-qvl reads them; the quote must carry its PCK
/// certificate chain (certification data type 5, as dstack's do).
fn platform(quote: &[u8]) -> Result<(String, &'static str), PccsError> {
    let parsed = Quote::parse(quote).map_err(|e| PccsError::Quote(e.to_string()))?;
    if parsed.auth.cert_type != tee_core::quote::CERT_TYPE_PCK_CHAIN {
        return Err(PccsError::Quote(format!(
            "certification data type {} (only 5, an embedded PCK chain, is supported)",
            parsed.auth.cert_type
        )));
    }
    let dcap =
        dcap_qvl::quote::Quote::parse(quote).map_err(|e| PccsError::Quote(format!("{e:#}")))?;
    let fmspc = hex::encode_upper(
        dcap_qvl::intel::quote_fmspc(&dcap).map_err(|e| PccsError::Quote(format!("{e:#}")))?,
    );
    let ca = dcap_qvl::intel::quote_ca(&dcap)
        .map_err(|e| PccsError::Quote(format!("{e:#}")))?
        .as_id_str();
    Ok((fmspc, ca))
}

/// The PCK certificate chain the quote carries (PEM).
fn pck_chain(quote: &[u8]) -> String {
    Quote::parse(quote)
        .map(|q| String::from_utf8_lossy(q.auth.cert_data).trim_end_matches('\0').to_owned())
        .unwrap_or_default()
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
