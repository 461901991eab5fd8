//! The marks database's connection string, as libpq users write it, and
//! the TLS the connection uses.
//!
//! The string is a libpq URL (`postgres://user@host/db?sslmode=require`) or
//! key=value string (`host=db user=signer sslmode=verify-full`). Two of
//! libpq's TLS options the PostgreSQL driver does not read are taken here:
//! `sslrootcert` (a PEM file of the CAs to trust; `system` or absent: the
//! Mozilla roots) and `sslmode` `verify-ca` / `verify-full`, both read as
//! `require`. Whenever the connection uses TLS, the server's certificate
//! chain and host name are verified (what libpq calls `verify-full`); with
//! `require` a server without TLS is refused; `prefer` (libpq's default,
//! which would use a server without TLS in plain text) is refused over TCP:
//! say `require` or `disable`. Unix sockets never use TLS.

use std::sync::Arc;

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::MarksError;

/// Where to connect and with which TLS.
pub(super) struct Target {
    pub config: Config,
    pub tls: MakeRustlsConnect,
}

/// Reads a connection string: see the module documentation.
pub(super) fn parse(url: &str) -> Result<Target, MarksError> {
    let (rest, root_cert) = take_tls_options(url)?;
    let config: Config =
        rest.parse().map_err(|e: tokio_postgres::Error| MarksError::Url(e.to_string()))?;
    let roots = match root_cert.as_deref() {
        None | Some("system") => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        Some(path) => {
            let bad =
                |e: &dyn std::fmt::Display| MarksError::Url(format!("sslrootcert {path}: {e}"));
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MarksError::Url(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // libpq's default, `prefer`, takes plain text from a server (or a man
    // in the middle) that offers no TLS: over TCP the operator must say
    // which they mean.
    let tcp = config.get_hosts().iter().any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)));
    if tcp && config.get_ssl_mode() == tokio_postgres::config::SslMode::Prefer {
        return Err(MarksError::Url(
            "sslmode=prefer (libpq's default when sslmode is absent) over TCP would take plain \
             text from whoever answers without TLS: say sslmode=require (TLS, the server's \
             certificate and host name verified) or sslmode=disable (plain text, on a network \
             you trust)"
                .into(),
        ));
    }
    Ok(Target { config, tls: MakeRustlsConnect::new(tls) })
}

/// The connection string without `sslrootcert` (returned apart) and with
/// `sslmode` `verify-ca`/`verify-full` read as `require`.
fn take_tls_options(url: &str) -> Result<(String, Option<String>), MarksError> {
    let mut root_cert = None;
    let mut keep = |key: &str, value: String| -> Option<String> {
        match (key, value.as_str()) {
            ("sslrootcert", _) => {
                root_cert = Some(value);
                None
            }
            ("sslmode", "verify-ca" | "verify-full") => Some("require".to_owned()),
            _ => Some(value),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None));
        };
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            if let Some(value) = keep(&key, decode(value)?) {
                let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
                pairs.push(format!("{}={}", enc(&key), enc(&value)));
            }
        }
        if pairs.is_empty() { base.to_owned() } else { format!("{base}?{}", pairs.join("&")) }
    } else {
        let mut out = Vec::new();
        for (key, value) in key_values(url)? {
            if let Some(value) = keep(&key, value) {
                let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                out.push(format!("{key}='{quoted}'"));
            }
        }
        out.join(" ")
    };
    Ok((rest, root_cert))
}

fn decode(s: &str) -> Result<String, MarksError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| MarksError::Url("a query parameter is not UTF-8".into()))
}

/// A libpq key=value string's pairs: `key = value`, the value plain up to
/// white space or in single quotes, `\` escaping the next character.
fn key_values(s: &str) -> Result<Vec<(String, String)>, MarksError> {
    let bad = |why: &str| MarksError::Url(format!("connection string: {why}"));
    let mut it = s.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(bad(&format!("expected = after {key:?}")));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = it.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match it.next() {
                Some('\'') if quoted => break,
                Some(c) if !quoted && c.is_whitespace() => break,
                Some('\\') => value.push(it.next().ok_or_else(|| bad("a trailing \\"))?),
                Some(c) => value.push(c),
                None if quoted => return Err(bad("an unterminated quoted value")),
                None => break,
            }
        }
        if key.is_empty() || (!quoted && value.is_empty()) {
            return Err(bad("an empty key or value"));
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_taken_out_and_the_rest_kept() {
        let (rest, root) = take_tls_options(
            "host=db.example port=5433 options='-c search_path=a\\'b' sslmode=verify-full sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            rest,
            "host='db.example' port='5433' options='-c search_path=a\\'b' sslmode='require'"
        );
        let config: Config = rest.parse().unwrap();
        assert_eq!(config.get_options(), Some("-c search_path=a'b"));
        assert_eq!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);

        let (rest, root) = take_tls_options(
            "postgres://u@db.example/marks?sslrootcert=%2Fetc%2Fca.pem&sslmode=verify-ca&application_name=x",
        )
        .unwrap();
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(rest, "postgres://u@db.example/marks?sslmode=require&application%5Fname=x");
        let config: Config = rest.parse().unwrap();
        assert_eq!(config.get_application_name(), Some("x"));

        let (rest, root) = take_tls_options("postgresql://db/marks").unwrap();
        assert_eq!((rest.as_str(), root), ("postgresql://db/marks", None));
    }

    #[test]
    fn broken_strings_are_typed_errors() {
        for bad in ["host", "host=", "host='db", "host=db\\", "sslmode=verify-everything"] {
            assert!(matches!(parse(bad), Err(MarksError::Url(_))), "{bad}");
        }
        let missing = parse("host=db sslrootcert=/nonexistent/ca.pem");
        assert!(matches!(missing, Err(MarksError::Url(m)) if m.contains("/nonexistent/ca.pem")));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!("host=db sslrootcert={}", empty.display());
        assert!(matches!(parse(&url), Err(MarksError::Url(m)) if m.contains("no certificate")));
    }
}
