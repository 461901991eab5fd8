//! The simulated dstack guest agent: [`SimDstack`] behind dstack's own HTTP
//! API, on a unix socket or a TCP port: the whole of dstack 0.5's frozen one
//! (`POST /GetKey`, `/GetQuote`, `/Attest`, `/Info`, `/EmitEvent`, `/Sign`,
//! `/Verify`, `/GetTlsKey`, `/Version`, JSON bodies, also under `/v0/`) and
//! dstack 0.6's `/v1/` (`GetKey`, `Attest`, `Info`, `Version`, `IssueCert`),
//! each surface on or off ([`Surfaces`]: a 0.5 agent without `/v1`, a 0.6
//! agent with both, an agent with `/v1` only). A signer selects it the way
//! it selects the real one, by endpoint (`DSTACK_SIMULATOR_ENDPOINT` or
//! `--dstack`), and talks to it with the same clients (`dstack-sdk` for v0),
//! so the simulated TEE exercises the whole path but the hardware.
//!
//! Status codes are dstack's: 400 with `{"error"}` for a call that failed,
//! 404 with `{"error": "Service not found: <Method>"}` for a method a
//! mounted surface lacks, and a plain (not JSON) 404 for a surface that is
//! not mounted, which is how a client tells a pre-0.6 agent. Bodies are
//! capped at 64 KiB; one client's failure never stops the server.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;

use super::guest::Algorithm;
use super::tls::TlsKeyRequest;
use super::v1::KeyAlgorithm;
use super::{SimDstack, SimError};
use tee_transport::Endpoint;

/// The largest request body the simulated guest agent reads.
pub const MAX_BODY: usize = 64 * 1024;

/// A running simulated agent. Dropping it stops the server.
#[derive(Debug)]
pub struct SimServer {
    endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimServer {
    /// Starts serving `sim` on `listen` (a unix socket, dstack's own
    /// transport, or a TCP address: `tcp:127.0.0.1:0` for any free port) in
    /// a background thread; returns once it accepts connections.
    pub fn start(sim: SimDstack, listen: &Endpoint) -> std::io::Result<SimServer> {
        SimServer::start_with(sim, listen, Surfaces::default())
    }

    /// [`SimServer::start`], serving only `surfaces`.
    pub fn start_with(
        sim: SimDstack,
        listen: &Endpoint,
        surfaces: Surfaces,
    ) -> std::io::Result<SimServer> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (listener, endpoint) = rt.block_on(async {
            match listen {
                Endpoint::Unix(path) => {
                    // A stale socket from an earlier run would make bind
                    // fail; a live one is another simulator's (a second
                    // `serve --simulated` on a state directory in use must
                    // not take the running signer's dstack away).
                    if std::os::unix::net::UnixStream::connect(path).is_ok() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::AddrInUse,
                            format!(
                                "{} is in use by a running simulator: is another signer serving this state directory?",
                                path.display()
                            ),
                        ));
                    }
                    if std::fs::symlink_metadata(path).is_ok() {
                        std::fs::remove_file(path)?;
                    }
                    let l = UnixListener::bind(path)?;
                    Ok::<_, std::io::Error>((Either::Unix(l), path.display().to_string()))
                }
                Endpoint::Tcp(addr) => {
                    let l = TcpListener::bind(addr).await?;
                    let endpoint = format!("http://{}", l.local_addr()?);
                    Ok((Either::Tcp(l), endpoint))
                }
                other => Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    format!("{other}: the simulated dstack listens on a unix socket or TCP"),
                )),
            }
        })?;
        let (stop, stopped) = oneshot::channel();
        let sim = Arc::new((sim, surfaces));
        let thread = std::thread::Builder::new()
            .name("sim-dstack".into())
            .spawn(move || rt.block_on(accept_loop(listener, sim, stopped)))?;
        Ok(SimServer { endpoint, stop: Some(stop), thread: Some(thread) })
    }

    /// The endpoint a dstack client is given: a socket path or `http://host:port`.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Serves until the process ends (the `sim-dstack` command).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Either {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Which API surfaces the simulated agent mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Surfaces {
    /// dstack 0.5's frozen API, at `/` and `/v0/`.
    pub v0: bool,
    /// dstack 0.6's `/v1/`.
    pub v1: bool,
}

impl Default for Surfaces {
    /// Both, as a dstack 0.6 guest agent serves them.
    fn default() -> Surfaces {
        Surfaces { v0: true, v1: true }
    }
}

impl Surfaces {
    /// A dstack 0.5 agent: no `/v1`.
    pub const V0_ONLY: Surfaces = Surfaces { v0: true, v1: false };
    /// An agent that serves `/v1` alone (what the signer must also run on).
    pub const V1_ONLY: Surfaces = Surfaces { v0: false, v1: true };
}

type Shared = Arc<(SimDstack, Surfaces)>;

async fn accept_loop(listener: Either, sim: Shared, mut stopped: oneshot::Receiver<()>) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            a = accept(&listener) => a,
        };
        let Ok(io) = accepted else { continue };
        let sim = sim.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, sim.clone()));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

type Io = TokioIo<Box<dyn Stream>>;
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

async fn accept(listener: &Either) -> std::io::Result<Io> {
    Ok(match listener {
        Either::Unix(l) => TokioIo::new(Box::new(l.accept().await?.0) as Box<dyn Stream>),
        Either::Tcp(l) => TokioIo::new(Box::new(l.accept().await?.0) as Box<dyn Stream>),
    })
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn bad(reason: impl std::fmt::Display) -> Response<Full<Bytes>> {
    reply(StatusCode::BAD_REQUEST, json!({ "error": reason.to_string() }).to_string())
}

#[derive(Deserialize)]
struct GetKeyArgs {
    #[serde(default)]
    path: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    algorithm: String,
}

#[derive(Deserialize)]
struct ReportDataArgs {
    report_data: String,
}

#[derive(Deserialize)]
struct EmitEventArgs {
    event: String,
    #[serde(default)]
    payload: String,
}

#[derive(Deserialize)]
struct SignArgs {
    #[serde(default)]
    algorithm: String,
    data: String,
}

#[derive(Deserialize)]
struct VerifyArgs {
    #[serde(default)]
    algorithm: String,
    data: String,
    signature: String,
    public_key: String,
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>, SimError> {
    hex::decode(s.trim_start_matches("0x"))
        .map_err(|e| SimError::BadRequest(format!("{what}: {e}")))
}

/// dstack zero-pads report data to 64 bytes; it does not hash it.
fn report_data(args: &ReportDataArgs) -> Result<[u8; 64], SimError> {
    let d = unhex("report_data", &args.report_data)?;
    if d.is_empty() || d.len() > 64 {
        return Err(SimError::BadRequest("report_data must be 1 to 64 bytes".into()));
    }
    let mut rd = [0u8; 64];
    rd.iter_mut().zip(&d).for_each(|(o, i)| *o = *i);
    Ok(rd)
}

fn args<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::BadRequest(e.to_string()))
}

fn hexed(v: impl IntoIterator<Item = Vec<u8>>) -> Vec<String> {
    v.into_iter().map(hex::encode).collect()
}

fn get_key(sim: &SimDstack, body: &[u8]) -> Result<Value, SimError> {
    let a: GetKeyArgs = args(body)?;
    let k = sim.get_key_with(&a.path, &a.purpose, Algorithm::parse(&a.algorithm)?)?;
    Ok(json!({
        "key": hex::encode(&k.secret[..]),
        "signature_chain": hexed(k.chain.iter().map(|c| c.to_vec())),
    }))
}

fn get_quote(sim: &SimDstack, body: &[u8]) -> Result<Value, SimError> {
    let rd = report_data(&args(body)?)?;
    let (quote, log) = sim.get_quote(&rd);
    Ok(json!({
        "quote": hex::encode(quote),
        "event_log": serde_json::to_string(&log).unwrap_or_default(),
        "report_data": hex::encode(rd),
        "vm_config": "",
    }))
}

fn emit_event(sim: &SimDstack, body: &[u8]) -> Result<Value, SimError> {
    let a: EmitEventArgs = args(body)?;
    sim.emit_event(&a.event, &unhex("payload", &a.payload)?)?;
    // What both SDKs read as "no content".
    Ok(Value::Null)
}

fn sign(sim: &SimDstack, body: &[u8]) -> Result<Value, SimError> {
    let a: SignArgs = args(body)?;
    let s = sim.sign(Algorithm::parse(&a.algorithm)?, &unhex("data", &a.data)?)?;
    Ok(json!({
        "signature": hex::encode(s.signature),
        "signature_chain": hexed(s.chain),
        "public_key": hex::encode(s.public_key),
    }))
}

fn verify(sim: &SimDstack, body: &[u8]) -> Result<Value, SimError> {
    let a: VerifyArgs = args(body)?;
    let valid = sim.verify(
        Algorithm::parse(&a.algorithm)?,
        &unhex("data", &a.data)?,
        &unhex("signature", &a.signature)?,
        &unhex("public_key", &a.public_key)?,
    )?;
    Ok(json!({ "valid": valid }))
}

/// One method of dstack's guest-agent API: its JSON answer, or why not;
/// `None` for a method dstack does not have.
fn call(sim: &SimDstack, method: &str, body: &[u8]) -> Option<Result<Value, SimError>> {
    Some(match method {
        "GetKey" => get_key(sim, body),
        "GetQuote" => get_quote(sim, body),
        "Attest" => args(body)
            .and_then(|a| report_data(&a))
            .map(|rd| json!({ "attestation": hex::encode(sim.attest(&rd)) })),
        "EmitEvent" => emit_event(sim, body),
        "Sign" => sign(sim, body),
        "Verify" => verify(sim, body),
        "GetTlsKey" => args::<TlsKeyRequest>(body)
            .and_then(|r| sim.get_tls_key(&r))
            .map(|(key, chain)| json!({ "key": key, "certificate_chain": chain })),
        "Info" => Ok(sim.info()),
        "Version" => Ok(json!({ "version": SIMULATED_VERSION, "rev": env!("CARGO_PKG_VERSION") })),
        _ => return None,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetKeyV1Args {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    algorithm: String,
}

#[derive(Deserialize)]
struct AttestV1Args {
    #[serde(default)]
    report_data: String,
    #[serde(default)]
    include_boottime_gpu_evidence: bool,
}

/// One method of dstack 0.6's `/v1` surface (bytes as hex in JSON, as
/// dstack's prpc writes them); `None` for a method v1 does not have.
fn call_v1(sim: &SimDstack, method: &str, body: &[u8]) -> Option<Result<Value, SimError>> {
    Some(match method {
        "GetKey" => args::<GetKeyV1Args>(body).and_then(|a| {
            let k = sim.get_key_v1(&a.domain, KeyAlgorithm::parse(&a.algorithm)?)?;
            Ok(json!({
                "key": hex::encode(&k.secret[..]),
                "public_key": hex::encode(&k.public),
                "signature_chain": hexed(k.chain.iter().map(|c| c.to_vec())),
            }))
        }),
        "Attest" => args::<AttestV1Args>(body).and_then(|a| {
            // No GPU in the simulator: the boot-time evidence is empty.
            let _ = a.include_boottime_gpu_evidence;
            let rd = report_data(&ReportDataArgs { report_data: a.report_data })?;
            Ok(json!({ "attestation": hex::encode(sim.attest_v1(&rd)), "boottime_gpu_evidence": [] }))
        }),
        "IssueCert" => args::<TlsKeyRequest>(body)
            .and_then(|r| sim.get_tls_key(&r))
            .map(|(key, chain)| json!({ "key": key, "certificate_chain": chain })),
        "Info" => Ok(sim.info_v1()),
        "Version" => Ok(json!({ "version": SIMULATED_VERSION, "rev": env!("CARGO_PKG_VERSION") })),
        _ => return None,
    })
}

/// The guest-agent version the simulator speaks: dstack 0.6's `/v1` and
/// 0.5.11's frozen API (whose `EmitEvent` it still serves, where 0.6
/// refuses it: the verifier's tests extend RTMR3 through it).
pub const SIMULATED_VERSION: &str = "0.6.0-simulated";

/// A surface that is not mounted: a plain 404, not JSON, as a web server
/// answers a path it has no route for.
fn no_mount() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"404 page not found")));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    r
}

async fn handle(
    req: Request<Incoming>,
    shared: Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (sim, surfaces) = (&shared.0, shared.1);
    if req.method() != Method::POST && req.method() != Method::GET {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "{}".into()));
    }
    let path = req.uri().path().trim_start_matches('/').to_owned();
    // dstack serves v0 at `/` and at `/v0`, v1 at `/v1`.
    let (v1, method) = match path.strip_prefix("v1/") {
        Some(m) => (true, m.to_owned()),
        None => (false, path.strip_prefix("v0/").unwrap_or(&path).to_owned()),
    };
    if (v1 && !surfaces.v1) || (!v1 && !surfaces.v0) {
        return Ok(no_mount());
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(bad(format_args!("request body: {e}"))),
    };
    let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let answer = if v1 { call_v1(sim, &method, body) } else { call(sim, &method, body) };
    Ok(match answer {
        Some(Ok(v)) => reply(StatusCode::OK, v.to_string()),
        Some(Err(e)) => bad(e),
        None => reply(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("Service not found: {method}") }).to_string(),
        ),
    })
}
