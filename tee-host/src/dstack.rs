//! dstack's guest agent: key derivation (`GetKey`) with the KMS signature
//! chain, and TDX quotes with the event log, over either of its APIs:
//!
//! - **v0**, dstack 0.5's frozen API (at `/` and `/v0`), through its SDK
//!   (`dstack-sdk`): `GetKey(path, purpose)`, `GetQuote`;
//! - **v1**, dstack 0.6's (`/v1`, its `docs/guest-api-v1.md`), through a
//!   small client here (the SDK release has no v1):
//!   `GetKey{domain = path, algorithm = "secp256k1"}`, whose key and chain
//!   claim differ from v0's for the same name, and `Attest`, whose
//!   `VersionedAttestation` carries the quote and the event log.
//!
//! [`Dstack::detect_api`] asks `/v1/Version`: a 200 is v1, a 404 that is
//! not JSON ("no such mount") is an agent without v1. The signer picks v1
//! for new state when offered and keeps the API its state was made under
//! (`open_device`), since the same path is another key under the other API.
//!
//! The SDK is async; the device is a synchronous state machine, so this
//! facade owns a small current-thread runtime and blocks on each call. It is
//! called only from the thread that holds the device, never from inside a
//! runtime.
//!
//! The endpoint is chosen as the SDK chooses it: the argument, else
//! `DSTACK_SIMULATOR_ENDPOINT`, else dstack's socket paths. A socket path or
//! an `http://` URL both work; the built-in simulator ([`tee_sim`])
//! serves either.

use dstack_sdk::dstack_client::DstackClient;
use zeroize::Zeroizing;

use tee_core::primitives::FixedBytes;
use tee_verify::eventlog::{self, Event};
use tee_verify::{KeyChain, versioned};

/// Which of dstack's guest-agent APIs a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// dstack 0.5's frozen API (`/`, `/v0`).
    V0,
    /// dstack 0.6's `/v1`.
    V1,
}

impl Api {
    /// `v0` or `v1`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Api::V0 => "v0",
            Api::V1 => "v1",
        }
    }

    /// Parses [`Api::name`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Api> {
        match s.trim() {
            "v0" => Some(Api::V0),
            "v1" => Some(Api::V1),
            _ => None,
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A dstack call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DstackError {
    /// The guest agent could not be reached or answered an error.
    #[error("dstack {call}: {message}")]
    Call {
        /// `GetKey`, `GetQuote`, `Info`.
        call: &'static str,
        /// Why (from the SDK).
        message: String,
    },
    /// It answered something that is not what dstack answers.
    #[error("dstack {call} answered malformed data: {message}")]
    Malformed {
        /// The call.
        call: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The runtime could not be started.
    #[error("cannot start the dstack client runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// What `GetQuote` returns: the quote and dstack's event log.
#[derive(Debug, Clone)]
pub struct QuoteEvidence {
    /// The TDX quote.
    pub quote: Vec<u8>,
    /// The event log (RTMR3's runtime events among them).
    pub event_log: Vec<Event>,
}

/// dstack's description of the app and its measurements (`Info`).
#[derive(Debug, Clone)]
pub struct AppInfo {
    /// The app id (hex).
    pub app_id: String,
    /// The instance id (hex).
    pub instance_id: String,
    /// The app name.
    pub app_name: String,
    /// The compose hash (hex).
    pub compose_hash: String,
    /// The key provider (JSON).
    pub key_provider_info: String,
    /// MRTD and RTMR0-3 (hex).
    pub measurements: [(String, String); 5],
}

/// How long a dstack call may take before it fails (a guest agent that
/// hangs must not hang the signer).
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A blocking dstack client; calls from several threads at once are fine
/// (one drives the runtime, the others join it).
pub struct Dstack {
    client: DstackClient,
    api: Api,
    endpoint: String,
    rt: tokio::runtime::Runtime,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for Dstack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dstack")
            .field("endpoint", &self.endpoint)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

fn call_err(call: &'static str) -> impl Fn(anyhow::Error) -> DstackError {
    move |e| DstackError::Call { call, message: format!("{e:#}") }
}

fn malformed(call: &'static str, message: impl std::fmt::Display) -> DstackError {
    DstackError::Malformed { call, message: message.to_string() }
}

/// The endpoint the SDK would use for `endpoint`: the argument, else
/// `DSTACK_SIMULATOR_ENDPOINT`, else the first of dstack's socket paths that
/// exists.
#[must_use]
pub fn resolve_endpoint(endpoint: Option<&str>) -> Option<String> {
    if let Some(e) = endpoint {
        return Some(e.to_owned());
    }
    if let Ok(e) = std::env::var("DSTACK_SIMULATOR_ENDPOINT") {
        return Some(e);
    }
    [
        "/var/run/dstack.sock",
        "/run/dstack.sock",
        "/var/run/dstack/dstack.sock",
        "/run/dstack/dstack.sock",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(str::to_owned)
}

impl Dstack {
    /// A v0 client for `endpoint` (see [`resolve_endpoint`]); nothing is
    /// contacted yet.
    pub fn new(endpoint: Option<&str>) -> Result<Dstack, DstackError> {
        let endpoint = resolve_endpoint(endpoint).unwrap_or_else(|| "/var/run/dstack.sock".into());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Dstack {
            client: DstackClient::new(Some(&endpoint)),
            api: Api::V0,
            endpoint,
            rt,
            timeout: CALL_TIMEOUT,
        })
    }

    /// Speaking `api`.
    #[must_use]
    pub fn with_api(mut self, api: Api) -> Dstack {
        self.api = api;
        self
    }

    /// The API in use.
    #[must_use]
    pub fn api(&self) -> Api {
        self.api
    }

    /// Which API the guest agent offers: v1 if `/v1/Version` answers, v0 if
    /// `/v1` is not mounted (a 404 that is not dstack's JSON "Service not
    /// found").
    pub fn detect_api(&self) -> Result<Api, DstackError> {
        const CALL: &str = "Version";
        let (status, body) = self.call(CALL, post(&self.endpoint, "/v1/Version", "{}".into()))?;
        let not_found = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(|e| e.starts_with("Service not found")));
        match (status, not_found) {
            (200, _) => Ok(Api::V1),
            (404, None) => Ok(Api::V0),
            _ => Err(DstackError::Call {
                call: CALL,
                message: format!(
                    "/v1/Version answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ),
            }),
        }
    }

    /// A v1 call: its JSON answer, or the agent's error.
    fn call_v1(
        &self,
        call: &'static str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, DstackError> {
        let (status, bytes) =
            self.call(call, post(&self.endpoint, &format!("/v1/{call}"), body.to_string()))?;
        if status != 200 {
            return Err(DstackError::Call {
                call,
                message: format!(
                    "/v1/{call} answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| malformed(call, e))
    }

    /// With another call timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Dstack {
        self.timeout = timeout;
        self
    }

    /// Runs one SDK call to completion, or fails it after the timeout.
    fn call<T>(
        &self,
        name: &'static str,
        f: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> Result<T, DstackError> {
        // The timer is made inside the runtime, which it needs.
        match self.rt.block_on(async { tokio::time::timeout(self.timeout, f).await }) {
            Ok(r) => r.map_err(call_err(name)),
            Err(_) => Err(DstackError::Call {
                call: name,
                message: format!("no answer within {:?}", self.timeout),
            }),
        }
    }

    /// The endpoint in use.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `GetKey`: the secp256k1 secret at `path` and its signature chain.
    /// v0 asks `GetKey(path, purpose)`; v1 asks
    /// `GetKey{domain: path, algorithm: "secp256k1"}` (v1 has no purpose:
    /// the domain alone names the key).
    pub fn get_key(
        &self,
        path: &str,
        purpose: &str,
    ) -> Result<(Zeroizing<[u8; 32]>, KeyChain), DstackError> {
        match self.api {
            Api::V0 => self.get_key_v0(path, purpose),
            Api::V1 => self.get_key_v1(path),
        }
    }

    fn get_key_v1(&self, domain: &str) -> Result<(Zeroizing<[u8; 32]>, KeyChain), DstackError> {
        const CALL: &str = "GetKey";
        let r =
            self.call_v1(CALL, serde_json::json!({ "domain": domain, "algorithm": "secp256k1" }))?;
        let field = |name: &str| -> Result<Vec<u8>, DstackError> {
            let s = r
                .get(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| malformed(CALL, format!("no {name}")))?;
            hex::decode(s.trim_start_matches("0x")).map_err(|e| malformed(CALL, e))
        };
        let bytes = Zeroizing::new(field("key")?);
        let secret: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| malformed(CALL, "key is not 32 bytes"))?;
        let secret = Zeroizing::new(secret);
        let key = tee_core::SigningKey::from_bytes(&secret)
            .map_err(|_| malformed(CALL, "key is not a secp256k1 secret"))?;
        let public = key.public_key().to_compressed();
        if field("public_key")? != public {
            return Err(malformed(CALL, "public_key is not the key's"));
        }
        let chain = r
            .get("signature_chain")
            .and_then(|v| v.as_array())
            .ok_or_else(|| malformed(CALL, "no signature_chain"))?;
        let link = |i: usize| -> Result<FixedBytes<65>, DstackError> {
            let s = chain
                .get(i)
                .and_then(|v| v.as_str())
                .ok_or_else(|| malformed(CALL, "signature chain has fewer than 2 entries"))?;
            let b = hex::decode(s.trim_start_matches("0x")).map_err(|e| malformed(CALL, e))?;
            Ok(FixedBytes(
                b.try_into().map_err(|_| malformed(CALL, "chain signature is not 65 bytes"))?,
            ))
        };
        let chain = KeyChain {
            purpose: String::new(),
            domain: Some(domain.to_owned()),
            public_key: FixedBytes(public),
            app_signature: link(0)?,
            kms_signature: link(1)?,
        };
        Ok((secret, chain))
    }

    fn get_key_v0(
        &self,
        path: &str,
        purpose: &str,
    ) -> Result<(Zeroizing<[u8; 32]>, KeyChain), DstackError> {
        const CALL: &str = "GetKey";
        let r =
            self.call(CALL, self.client.get_key(Some(path.to_owned()), Some(purpose.to_owned())))?;
        let bytes = Zeroizing::new(
            hex::decode(r.key.trim_start_matches("0x")).map_err(|e| malformed(CALL, e))?,
        );
        let secret: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| malformed(CALL, "key is not 32 bytes"))?;
        let secret = Zeroizing::new(secret);
        let key = tee_core::SigningKey::from_bytes(&secret)
            .map_err(|_| malformed(CALL, "key is not a secp256k1 secret"))?;
        let sig = |i: usize| -> Result<FixedBytes<65>, DstackError> {
            let s = r
                .signature_chain
                .get(i)
                .ok_or_else(|| malformed(CALL, "signature chain has fewer than 2 entries"))?;
            let b = hex::decode(s.trim_start_matches("0x")).map_err(|e| malformed(CALL, e))?;
            Ok(FixedBytes(
                b.try_into().map_err(|_| malformed(CALL, "chain signature is not 65 bytes"))?,
            ))
        };
        let chain = KeyChain {
            purpose: purpose.to_owned(),
            domain: None,
            public_key: FixedBytes(key.public_key().to_compressed()),
            app_signature: sig(0)?,
            kms_signature: sig(1)?,
        };
        Ok((secret, chain))
    }

    /// A TDX quote over the 64 bytes, and the event log: v0's `GetQuote`,
    /// or v1's `Attest` (its `VersionedAttestation` read, the quote's
    /// `report_data` checked to be the one asked for).
    pub fn get_quote(&self, report_data: &[u8; 64]) -> Result<QuoteEvidence, DstackError> {
        match self.api {
            Api::V0 => self.get_quote_v0(report_data),
            Api::V1 => {
                const CALL: &str = "Attest";
                let r = self.call_v1(
                    CALL,
                    serde_json::json!({ "report_data": hex::encode(report_data) }),
                )?;
                let hexed = r
                    .get("attestation")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| malformed(CALL, "no attestation"))?;
                let bytes =
                    hex::decode(hexed.trim_start_matches("0x")).map_err(|e| malformed(CALL, e))?;
                let a = versioned::parse(&bytes).map_err(|e| malformed(CALL, e))?;
                if a.report_data != *report_data {
                    return Err(malformed(CALL, "the attestation binds other report data"));
                }
                Ok(QuoteEvidence { quote: a.quote, event_log: a.event_log })
            }
        }
    }

    fn get_quote_v0(&self, report_data: &[u8; 64]) -> Result<QuoteEvidence, DstackError> {
        const CALL: &str = "GetQuote";
        let r = self.call(CALL, self.client.get_quote(report_data.to_vec()))?;
        let quote =
            hex::decode(r.quote.trim_start_matches("0x")).map_err(|e| malformed(CALL, e))?;
        let event_log = if r.event_log.is_empty() {
            Vec::new()
        } else {
            eventlog::parse(&r.event_log).map_err(|e| malformed(CALL, e))?
        };
        Ok(QuoteEvidence { quote, event_log })
    }

    /// `Info`: the app and its measurements (v1's `Info` has no
    /// measurement registers: they are read from a fresh quote instead).
    pub fn info(&self) -> Result<AppInfo, DstackError> {
        if self.api == Api::V1 {
            return self.info_v1();
        }
        let r = self.call("Info", self.client.info())?;
        let t = r.tcb_info;
        Ok(AppInfo {
            app_id: r.app_id,
            instance_id: r.instance_id,
            app_name: r.app_name,
            compose_hash: r.compose_hash,
            key_provider_info: r.key_provider_info,
            measurements: [
                ("mrtd".into(), t.mrtd),
                ("rtmr0".into(), t.rtmr0),
                ("rtmr1".into(), t.rtmr1),
                ("rtmr2".into(), t.rtmr2),
                ("rtmr3".into(), t.rtmr3),
            ],
        })
    }
}

impl Dstack {
    fn info_v1(&self) -> Result<AppInfo, DstackError> {
        const CALL: &str = "Info";
        let r = self.call_v1(CALL, serde_json::json!({}))?;
        let text = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let q = self.get_quote(&[0; 64])?;
        let parsed = tee_core::quote::Quote::parse(&q.quote)
            .map_err(|e| malformed(CALL, format!("quote: {e:?}")))?;
        let rtmr =
            |i: usize| parsed.report.rtmr.get(i).map(|r| hex::encode(&r[..])).unwrap_or_default();
        Ok(AppInfo {
            app_id: text("app_id"),
            instance_id: text("instance_id"),
            app_name: text("app_name"),
            compose_hash: text("compose_hash"),
            key_provider_info: text("key_provider_info"),
            measurements: [
                ("mrtd".into(), hex::encode(&parsed.report.mr_td[..])),
                ("rtmr0".into(), rtmr(0)),
                ("rtmr1".into(), rtmr(1)),
                ("rtmr2".into(), rtmr(2)),
                ("rtmr3".into(), rtmr(3)),
            ],
        })
    }
}

/// The most a guest-agent answer may be (a quote and an event log are
/// far below it).
const MAX_ANSWER: usize = 4 << 20;

/// One `POST path` with a JSON body to the guest agent at `endpoint` (a
/// unix socket path or `http://host:port`): the status and the body.
async fn post(endpoint: &str, path: &str, body: String) -> anyhow::Result<(u16, Vec<u8>)> {
    use http_body_util::{BodyExt, Full, Limited};
    use hyper_util::rt::TokioIo;

    async fn exchange<S>(
        io: S,
        request: hyper::Request<Full<hyper::body::Bytes>>,
    ) -> anyhow::Result<(u16, Vec<u8>)>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        let conn = tokio::spawn(conn);
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("answer body: {e}"))?
            .to_bytes()
            .to_vec();
        conn.abort();
        Ok((status, body))
    }

    let (authority, stream) = match endpoint.strip_prefix("http://") {
        Some(rest) => {
            let authority = rest.split('/').next().unwrap_or(rest).to_owned();
            (authority.clone(), Some(tokio::net::TcpStream::connect(authority).await?))
        }
        None if endpoint.starts_with("https://") => {
            anyhow::bail!(
                "dstack's v1 API is reached over its unix socket or http://, not https://"
            )
        }
        None => ("dstack".to_owned(), None),
    };
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(hyper::body::Bytes::from(body)))?;
    match stream {
        Some(tcp) => exchange(tcp, request).await,
        None => exchange(tokio::net::UnixStream::connect(endpoint).await?, request).await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A guest agent that takes the request and never answers: the call
    /// fails with the timeout, it does not hang the signer. (The agent
    /// holds the connection for 3 s, ten times the timeout: only the
    /// timeout gives "no answer within"; a call that waited for the agent
    /// would fail on the closed connection instead.)
    #[test]
    fn a_hanging_guest_agent_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let held = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(3));
            drop(conn);
        });
        let d = Dstack::new(Some(&endpoint))
            .unwrap()
            .with_timeout(std::time::Duration::from_millis(300));
        let e = d.get_quote(&[0; 64]).unwrap_err();
        assert!(e.to_string().contains("no answer within"), "{e}");
        held.join().unwrap();
    }
}
