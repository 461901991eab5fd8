//! The endpoint over HTTP/1.1 (`POST /`, JSON bodies), on a unix socket or
//! a TCP port: loopback unless a bearer token guards it.
//!
//! What a caller that is not the agent meets: a browser page cannot drive
//! the endpoint (a request with an `Origin` header is refused unless that
//! origin was configured, and the body must be `application/json`, which a
//! page cannot send cross-origin without a preflight that is refused); a
//! token, when set, is compared in constant time; bodies are bounded and
//! headers must arrive within 10 s; connections are bounded. One request's
//! failure never stops the server.

use std::convert::Infallible;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tee_transport::Endpoint;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, oneshot};

use crate::Gateway;
use crate::failure::{Failure, INVALID_REQUEST, UNAUTHORIZED};

/// How the endpoint listens.
#[derive(Debug, Clone)]
pub struct Options {
    /// A unix socket or a TCP address (`tcp:127.0.0.1:8545`).
    pub listen: Endpoint,
    /// A bearer token every request must carry (`Authorization: Bearer`).
    pub token: Option<String>,
    /// Origins a browser page may call from (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// The most connections served at once.
    pub max_connections: usize,
}

/// The default largest body: a typed-data request whose message holds a
/// whole attestation bundle as a `data:` URI fits with room to spare.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

impl Options {
    /// Loopback TCP at `listen`, no token, no CORS, the default bounds.
    #[must_use]
    pub fn new(listen: Endpoint) -> Options {
        Options {
            listen,
            token: None,
            cors_origins: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
            max_connections: 256,
        }
    }
}

/// Why the endpoint did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A TCP address that is not loopback, without a token.
    #[error(
        "{0}: not a loopback address; the endpoint signs for whoever reaches it, so listening \
         beyond this machine needs a bearer token (--token-file)"
    )]
    Exposed(String),
    /// Not a transport the endpoint listens on.
    #[error("{0}: the endpoint listens on unix:PATH or tcp:HOST:PORT")]
    Transport(String),
    /// Binding failed.
    #[error("{what}: {source}")]
    Io {
        /// Where.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running endpoint. Dropping it stops the server.
#[derive(Debug)]
pub struct RpcServer {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    gateway: Arc<Gateway>,
    token: Option<String>,
    cors_origins: Vec<String>,
    max_body: usize,
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

fn loopback(addr: &str) -> bool {
    let (host, _) = addr.rsplit_once(':').unwrap_or((addr, ""));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        // A name: every address it resolves to must be loopback.
        Err(_) => addr.to_socket_addrs().is_ok_and(|mut a| a.all(|s| s.ip().is_loopback())),
    }
}

impl RpcServer {
    /// Serves `gateway` as `options` say, in a background thread; returns
    /// once it accepts connections.
    pub fn start(gateway: Arc<Gateway>, options: Options) -> Result<RpcServer, StartError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| StartError::Io { what, source }
        };
        if let Endpoint::Tcp(addr) = &options.listen
            && options.token.is_none()
            && !loopback(addr)
        {
            return Err(StartError::Exposed(addr.clone()));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("runtime"))?;
        let (listener, url) = rt.block_on(async {
            match &options.listen {
                Endpoint::Unix(path) => {
                    let what = path.display().to_string();
                    if std::fs::symlink_metadata(path).is_ok() {
                        std::fs::remove_file(path).map_err(io(&what))?;
                    }
                    let l = UnixListener::bind(path).map_err(io(&what))?;
                    // This user only, as the signer's own socket by default.
                    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
                    std::fs::set_permissions(path, private).map_err(io(&what))?;
                    Ok((Listener::Unix(l), format!("unix:{what}")))
                }
                Endpoint::Tcp(addr) => {
                    let l = TcpListener::bind(addr).await.map_err(io(addr))?;
                    let url = format!("http://{}", l.local_addr().map_err(io(addr))?);
                    Ok((Listener::Tcp(l), url))
                }
                other => Err(StartError::Transport(other.to_string())),
            }
        })?;
        let shared = Arc::new(Shared {
            gateway,
            token: options.token,
            cors_origins: options.cors_origins,
            max_body: options.max_body,
        });
        let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("tee-rpc".into())
            .spawn(move || rt.block_on(accept_loop(listener, shared, permits, stopped)))
            .map_err(io("thread"))?;
        Ok(RpcServer { url, stop: Some(stop), thread: Some(thread) })
    }

    /// Where it listens: `http://HOST:PORT` or `unix:PATH`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

async fn accept(listener: &Listener) -> std::io::Result<TokioIo<Box<dyn Stream>>> {
    Ok(match listener {
        Listener::Unix(l) => TokioIo::new(Box::new(l.accept().await?.0) as Box<dyn Stream>),
        Listener::Tcp(l) => TokioIo::new(Box::new(l.accept().await?.0) as Box<dyn Stream>),
    })
}

async fn accept_loop(
    listener: Listener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        // At the bound, the next connection waits in the listen queue.
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            a = accept(&listener) => a,
        };
        let Ok(io) = accepted else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(io, service)
                .await;
            drop(permit);
        });
    }
}

fn reply(status: StatusCode, body: Option<&Value>) -> Response<Full<Bytes>> {
    let bytes = body.map(Value::to_string).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    if body.is_some() {
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    r
}

/// An HTTP-level refusal, its body a JSON-RPC error (id null).
fn refuse(status: StatusCode, code: i64, message: String) -> Response<Full<Bytes>> {
    let error = Failure::new(code, message).to_json();
    reply(status, Some(&json!({ "jsonrpc": "2.0", "id": null, "error": error })))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed =
        origin.as_ref().map(|o| shared.cors_origins.iter().any(|c| c.as_bytes() == o.as_bytes()));
    let mut resp = answer(req, &shared, allowed).await;
    if let (Some(o), Some(true)) = (origin, allowed) {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(resp)
}

async fn answer(
    req: Request<Incoming>,
    shared: &Shared,
    origin_allowed: Option<bool>,
) -> Response<Full<Bytes>> {
    if origin_allowed == Some(false) {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
        return refuse(
            StatusCode::FORBIDDEN,
            UNAUTHORIZED,
            format!(
                "origin {}: not an origin this endpoint allows (--cors-origin)",
                origin.unwrap_or_default()
            ),
        );
    }
    if req.method() == Method::OPTIONS && origin_allowed == Some(true) {
        let mut r = reply(StatusCode::NO_CONTENT, None);
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, authorization"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        return r;
    }
    if req.method() != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            INVALID_REQUEST,
            format!("{}: JSON-RPC requests are POSTed", req.method()),
        );
    }
    if req.uri().path() != "/" {
        return refuse(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            format!("{}: the endpoint is /", req.uri().path()),
        );
    }
    let json =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "the body is application/json (Content-Type)".into(),
        );
    }
    if let Some(token) = &shared.token {
        let given = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
        let expected = format!("Bearer {token}");
        if !given.is_some_and(|g| same(g, expected.as_bytes())) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                UNAUTHORIZED,
                "this endpoint needs its bearer token (Authorization: Bearer ...)".into(),
            );
        }
    }
    let max = shared.max_body;
    let read =
        tokio::time::timeout(Duration::from_secs(30), Limited::new(req.into_body(), max).collect());
    let body = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                format!("the request body is over {max} bytes (--max-body)"),
            );
        }
        Ok(Err(e)) => {
            return refuse(StatusCode::BAD_REQUEST, INVALID_REQUEST, format!("the body: {e}"));
        }
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                INVALID_REQUEST,
                "the body did not arrive within 30 s".into(),
            );
        }
    };
    let gateway = shared.gateway.clone();
    match tokio::task::spawn_blocking(move || gateway.handle(&body)).await {
        Ok(Some(v)) => reply(StatusCode::OK, Some(&v)),
        Ok(None) => reply(StatusCode::NO_CONTENT, None),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::failure::INTERNAL,
            format!("the request failed: {e}"),
        ),
    }
}
