//! What a validator reads from a URI an agent's owner chose: the owner may
//! point it anywhere, so the validator reads only what its operator allows.
//!
//! - `data:` URIs, always;
//! - `https://`, and `http://` only with [`FetchRules::allow_http`];
//! - `ipfs://CID/…` through the operator's gateway;
//! - never a local path (only the operator's `--bundle` reads a file);
//! - at most [`MAX_FETCH`] bytes, within 30 s;
//! - every hop (the URI and each redirect, followed by hand, at most
//!   [`MAX_REDIRECTS`]) must resolve to public addresses only: no
//!   loopback, private, link-local, unique-local or unspecified address,
//!   unless [`FetchRules::allow_private`] (a test network).
//!
//! A host that resolves differently between this check and the connection
//! (DNS rebinding) is not caught: the check is per hop, not per socket.

use std::io::Read;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use super::rpc::RpcError;

/// The most bytes a bundle (or any fetched document) may have.
pub const MAX_FETCH: usize = 1 << 20;
/// The most redirects followed.
pub const MAX_REDIRECTS: usize = 5;

/// What the operator allows a fetch to reach.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchRules<'a> {
    /// The gateway `ipfs://` URIs go through (e.g. `https://ipfs.io`).
    pub ipfs_gateway: Option<&'a str>,
    /// Plain `http://` (not only `https://`).
    pub allow_http: bool,
    /// Hosts on loopback, private and link-local addresses (a test
    /// network; never for a validator on a real one).
    pub allow_private: bool,
}

/// Why a fetch was refused or failed, in words fit for a public report:
/// never the fetched bytes, nor a parser's text about them.
fn refused(uri: &str, message: impl Into<String>) -> RpcError {
    RpcError::Transport { url: uri.to_owned(), message: message.into() }
}

/// Whether `ip` is an address on the public internet.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                // 100.64.0.0/10: carrier-grade NAT, inside a provider.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80) // link local
            }
        },
    }
}

/// The content at `uri` under `rules` (see the module docs).
pub fn fetch(uri: &str, rules: &FetchRules<'_>) -> Result<Vec<u8>, RpcError> {
    let mut url = if uri.starts_with("data:") {
        return super::bundle::read_data_uri(uri).map_err(|e| refused(uri, e.to_string()));
    } else if let Some(path) = uri.strip_prefix("ipfs://") {
        let gateway = rules
            .ipfs_gateway
            .ok_or_else(|| refused(uri, "an ipfs:// URI needs an IPFS gateway (--ipfs-gateway)"))?;
        format!("{}/ipfs/{path}", gateway.trim_end_matches('/'))
    } else {
        uri.to_owned()
    };
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    for _ in 0..=MAX_REDIRECTS {
        check_hop(uri, &url, rules)?;
        let mut resp = agent.get(&url).call().map_err(|e| refused(uri, e.to_string()))?;
        let status = resp.status();
        if status.is_redirection() {
            let next = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| refused(uri, format!("HTTP {status} without a Location")))?;
            url = resolve(&url, next).ok_or_else(|| refused(uri, "a redirect to a bad URL"))?;
            continue;
        }
        if !status.is_success() {
            return Err(refused(uri, format!("HTTP {status}")));
        }
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_FETCH as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| refused(uri, e.to_string()))?;
        if body.len() > MAX_FETCH {
            return Err(refused(uri, format!("longer than {MAX_FETCH} bytes")));
        }
        return Ok(body);
    }
    Err(refused(uri, format!("more than {MAX_REDIRECTS} redirects")))
}

/// `location` against `base`: absolute, or an absolute path on its host.
fn resolve(base: &str, location: &str) -> Option<String> {
    if location.contains("://") {
        return Some(location.to_owned());
    }
    let path = location.strip_prefix('/')?;
    let scheme_end = base.find("://")? + 3;
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    Some(format!("{}/{path}", &base[..host_end]))
}

/// One hop's scheme and addresses under `rules`.
fn check_hop(uri: &str, url: &str, rules: &FetchRules<'_>) -> Result<(), RpcError> {
    let parsed: ureq::http::Uri = url.parse().map_err(|_| refused(uri, "not a URL"))?;
    let port = match parsed.scheme_str() {
        Some("https") => 443,
        Some("http") if rules.allow_http => 80,
        Some("http") => return Err(refused(uri, "http:// is refused (--allow-http to take it)")),
        _ => return Err(refused(uri, "not a data:, https:// or ipfs:// URI")),
    };
    if rules.allow_private || is_gateway(url, rules) {
        return Ok(());
    }
    let host = parsed.host().ok_or_else(|| refused(uri, "a URL without a host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_u16().unwrap_or(port);
    let addrs: Vec<IpAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| refused(uri, format!("{host}: {e}")))?
        .map(|a| a.ip())
        .collect();
    match addrs.iter().find(|ip| !is_public(**ip)) {
        None if !addrs.is_empty() => Ok(()),
        None => Err(refused(uri, format!("{host} resolves to nothing"))),
        Some(ip) => Err(refused(
            uri,
            format!("{host} is a loopback, private or link-local address ({ip}): refused"),
        )),
    }
}

/// The operator's own IPFS gateway is trusted wherever it is.
fn is_gateway(url: &str, rules: &FetchRules<'_>) -> bool {
    rules.ipfs_gateway.is_some_and(|g| url.starts_with(g.trim_end_matches('/')))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn fetch_takes_data_uris_and_refuses_what_it_must_not_reach() {
        let open = FetchRules { allow_http: true, allow_private: true, ..FetchRules::default() };
        assert_eq!(fetch("data:application/json,%7B%7D", &open).unwrap(), b"{}");
        let gateway = fetch("ipfs://bafy", &open).unwrap_err().to_string();
        assert!(gateway.contains("--ipfs-gateway"), "{gateway}");
        for bad in ["ftp://host/file", "file:///etc/passwd", "bundle.json", "/etc/passwd"] {
            assert!(matches!(fetch(bad, &open), Err(RpcError::Transport { .. })), "{bad}");
        }
        // Nothing listens on port 1.
        assert!(matches!(fetch("http://127.0.0.1:1/x", &open), Err(RpcError::Transport { .. })));
        let strict = FetchRules::default();
        let e = fetch("http://example.com/x", &strict).unwrap_err().to_string();
        assert!(e.contains("--allow-http"), "{e}");
        for private in [
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:192.168.0.1]/x",
        ] {
            let e = fetch(private, &strict).unwrap_err().to_string();
            assert!(e.contains("loopback, private or link-local"), "{private}: {e}");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn redirects_resolve_against_their_hop() {
        assert_eq!(resolve("https://a.example/x/y", "/z").unwrap(), "https://a.example/z");
        assert_eq!(resolve("https://a.example", "/z").unwrap(), "https://a.example/z");
        assert_eq!(
            resolve("https://a.example/x", "https://b.example/").unwrap(),
            "https://b.example/"
        );
        assert!(resolve("https://a.example/x", "relative").is_none());
    }
}
