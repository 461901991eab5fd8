//! The metrics endpoint: HTTP/1.1 `GET /metrics` (the Prometheus text
//! format) and `GET /health` (JSON; 200 when every part signing needs
//! answered, 503 otherwise), on a TCP address or a unix socket.
//!
//! One connection at a time, closed after its answer: a request must arrive
//! whole (at most [`MAX_REQUEST`] bytes) within [`TIMEOUT`], and its answer
//! leave within it, so a client that stalls holds the endpoint for at most
//! that long and never touches signing.

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use tee_core::protocol::Probe;
use tee_transport::Endpoint;

use super::Metrics;

/// How long a request may take to arrive, and its answer to leave.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// The largest request read.
pub const MAX_REQUEST: usize = 8 * 1024;

/// The endpoint, served until dropped.
#[derive(Debug)]
pub struct MetricsHandle {
    stop: Arc<AtomicBool>,
    endpoint: Endpoint,
    thread: Option<JoinHandle<()>>,
}

impl MetricsHandle {
    /// Where it listens (a TCP port 0 resolved).
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for MetricsHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Endpoint::Unix(p) = &self.endpoint {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Serves `metrics` at `at` (`tcp:HOST:PORT` or `unix:PATH`; the caller
/// decides which addresses are allowed).
pub fn serve_metrics(metrics: Arc<Metrics>, at: &Endpoint) -> io::Result<MetricsHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (endpoint, thread) = match at {
        Endpoint::Tcp(addr) => {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            let bound = Endpoint::Tcp(l.local_addr()?.to_string());
            let t = spawn(move || accept_loop(&s, &metrics, || l.accept().map(|(c, _)| c)))?;
            (bound, t)
        }
        Endpoint::Unix(path) => {
            let l = crate::listen::bind_unix(path, 0o600)?;
            l.set_nonblocking(true)?;
            let t = spawn(move || accept_loop(&s, &metrics, || l.accept().map(|(c, _)| c)))?;
            (at.clone(), t)
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{other}: the metrics endpoint listens on tcp:HOST:PORT or unix:PATH"),
            ));
        }
    };
    tracing::info!(%endpoint, "metrics");
    Ok(MetricsHandle { stop, endpoint, thread: Some(thread) })
}

fn spawn(f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("metrics".into()).spawn(f)
}

/// A connection the endpoint answers.
trait Conn: Read + Write {
    fn timeouts(&self, t: Duration) -> io::Result<()>;
}

impl Conn for std::net::TcpStream {
    fn timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Conn for std::os::unix::net::UnixStream {
    fn timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

fn accept_loop<C: Conn>(stop: &AtomicBool, metrics: &Metrics, accept: impl Fn() -> io::Result<C>) {
    while !stop.load(Ordering::SeqCst) {
        match accept() {
            Ok(mut c) => {
                if let Err(e) = c.timeouts(TIMEOUT).and_then(|()| answer(metrics, &mut c)) {
                    tracing::debug!(error = %e, "metrics request");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Reads one request (its head: nothing else is read) and answers it.
fn answer(metrics: &Metrics, c: &mut impl Conn) -> io::Result<()> {
    let started = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST || started.elapsed() > TIMEOUT {
            return respond(c, 431, "text/plain", "request too large or too slow\n");
        }
        match c.read(&mut chunk)? {
            0 => return Ok(()),
            n => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    match route(&buf) {
        Route::Metrics => {
            respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &metrics.render())
        }
        Route::Health => {
            let (status, body) = health(metrics);
            respond(c, status, "application/json", &body)
        }
        Route::NotFound => respond(c, 404, "text/plain", "not found: GET /metrics or /health\n"),
        Route::NotAllowed => respond(c, 405, "text/plain", "only GET\n"),
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`.
    Metrics,
    /// `GET /health`.
    Health,
    /// `GET` of anything else.
    NotFound,
    /// Any other method, or a request line that does not read.
    NotAllowed,
}

/// Reads a request's head (any bytes: what a stranger sends): its first
/// line's method and path (a query string ignored).
#[must_use]
pub fn route(head: &[u8]) -> Route {
    let line = head.split(|b| *b == b'\r' || *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics,
        ("GET", "/health") => Route::Health,
        ("GET", _) => Route::NotFound,
        _ => Route::NotAllowed,
    }
}

/// The health answer: 200 when every part used answered, else 503.
fn health(metrics: &Metrics) -> (u16, String) {
    let name = |p: Probe| match p {
        Probe::NotUsed => "notUsed",
        Probe::Ok => "ok",
        Probe::Failed => "failed",
    };
    let journal = metrics.journal();
    let body = match metrics.health() {
        None => json!({ "healthy": true, "probes": null, "journal": journal }),
        Some(h) => json!({
            "healthy": h.healthy(),
            "dstack": name(h.dstack),
            "marks": name(h.marks),
            "storage": name(h.storage),
            "replication": format!("{:?}", h.replication),
            "journal": journal,
        }),
    };
    let status = if body.get("healthy") == Some(&json!(true)) { 200 } else { 503 };
    (status, body.to_string())
}

fn respond(c: &mut impl Conn, status: u16, kind: &str, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes())?;
    c.write_all(body.as_bytes())?;
    c.flush()
}
