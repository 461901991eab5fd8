//! Serving one device to many clients over unix sockets, TCP, vsock and
//! serial lines at once.
//!
//! There is one [`Device`]; every connection has its own frame accumulator
//! and takes the device's lock only to handle a frame it completed
//! ([`tee_core::serve::feed`] into a buffer), never while reading from or
//! writing to its peer. So a client that stalls, floods garbage or
//! disconnects mid-frame costs only its own thread: the others go on being
//! served, and no request is half-handled (the device sees whole frames or
//! nothing).
//!
//! Limits: at most [`Limits::max_connections`] connections (more are closed
//! at once), a connection idle for [`Limits::idle_timeout`] is closed, and a
//! peer that does not take its responses within [`Limits::write_timeout`] is
//! dropped.

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tee_core::device::{Backend, Device};
use tee_core::frame::Accumulator;
use tee_core::protocol::{MAX_REQUEST_FRAME, MAX_RESPONSE_WIRE};

use crate::transport::{Endpoint, open_serial};

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Resource limits of a server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A peer that does not read its response for this long is dropped.
    pub write_timeout: Duration,
    /// Permission bits of unix sockets: 0o600 (the signer's user only) by
    /// default; 0o660 lets a group in, for an agent in another container
    /// that shares the socket's volume on purpose.
    pub socket_mode: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
            socket_mode: 0o600,
        }
    }
}

/// The device, shared by every connection.
pub type Shared<B> = Arc<Mutex<Device<B>>>;

/// A running server: its listeners and connections run in threads until
/// [`ServerHandle::stop`] (or drop).
#[derive(Debug)]
pub struct ServerHandle {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    endpoints: Vec<Endpoint>,
    /// Unix socket files to remove on stop.
    sockets: Vec<PathBuf>,
}

impl ServerHandle {
    /// The endpoints served, as bound (a TCP port 0 shows the port chosen).
    #[must_use]
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Stops accepting and closes every connection; returns when all
    /// threads have ended.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the server stops (it stops only on [`ServerHandle::stop`]
    /// from elsewhere, or when every listener failed).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for s in self.sockets.drain(..) {
            let _ = std::fs::remove_file(s);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds every endpoint and serves `device` on them. A unix socket path
/// that exists is replaced only if it is a socket nobody answers on.
pub fn serve<B: Backend + Send + 'static>(
    device: Shared<B>,
    endpoints: &[Endpoint],
    limits: Limits,
) -> io::Result<ServerHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicUsize::new(0));
    let mut handle = ServerHandle {
        stop: stop.clone(),
        threads: Vec::new(),
        endpoints: Vec::new(),
        sockets: Vec::new(),
    };
    for endpoint in endpoints {
        let ctx = Ctx { device: device.clone(), stop: stop.clone(), live: live.clone(), limits };
        let (bound, thread) = match endpoint {
            Endpoint::Unix(path) => {
                let listener = bind_unix(path, limits.socket_mode)?;
                handle.sockets.push(path.clone());
                listener.set_nonblocking(true)?;
                (endpoint.clone(), spawn("unix", move || accept_loop(&ctx, || listener.accept()))?)
            }
            Endpoint::Tcp(addr) => {
                let listener = TcpListener::bind(addr)?;
                let bound = Endpoint::Tcp(listener.local_addr()?.to_string());
                listener.set_nonblocking(true)?;
                let accept = move || {
                    let (s, a) = listener.accept()?;
                    s.set_nodelay(true)?;
                    Ok((s, a))
                };
                (bound, spawn("tcp", move || accept_loop(&ctx, accept))?)
            }
            Endpoint::Vsock { cid, port } => {
                let listener = vsock::VsockListener::bind_with_cid_port(*cid, *port)?;
                listener.set_nonblocking(true)?;
                (endpoint.clone(), spawn("vsock", move || accept_loop(&ctx, || listener.accept()))?)
            }
            Endpoint::Serial { path, baud } => {
                let port = open_serial(path, *baud, POLL)?;
                (endpoint.clone(), spawn("serial", move || serve_serial(&ctx, port))?)
            }
        };
        tracing::info!(endpoint = %bound, "serving");
        handle.endpoints.push(bound);
        handle.threads.push(thread);
    }
    Ok(handle)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(format!("serve-{name}")).spawn(f)
}

/// Binds a unix socket at `path` with permission bits `mode`, replacing a
/// stale socket file (one nobody answers on) but never a live one or a file
/// that is not a socket. The socket is bound inside a fresh private
/// directory, given its mode, and only then renamed into place: it is never
/// reachable with the process's umask.
fn bind_unix(path: &std::path::Path, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let in_use =
            || io::Error::new(io::ErrorKind::AddrInUse, format!("{} is in use", path.display()));
        if !meta.file_type().is_socket() || std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(in_use());
        }
        std::fs::remove_file(path)?;
    }
    let parent =
        path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let private = parent.join(format!(".tee-signer-bind-{}", hex::encode(nonce)));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let staged = private.join("socket");
    let bound = UnixListener::bind(&staged).and_then(|listener| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    bound
}

struct Ctx<B: Backend> {
    device: Shared<B>,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    limits: Limits,
}

impl<B: Backend> Clone for Ctx<B> {
    fn clone(&self) -> Self {
        Ctx {
            device: self.device.clone(),
            stop: self.stop.clone(),
            live: self.live.clone(),
            limits: self.limits,
        }
    }
}

/// What a served connection must offer besides bytes.
trait Conn: Read + Write + Send + 'static {
    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()>;
    fn set_blocking(&self) -> io::Result<()>;
}

macro_rules! conn {
    ($t:ty) => {
        impl Conn for $t {
            fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
                self.set_read_timeout(Some(read))?;
                self.set_write_timeout(Some(write))
            }
            fn set_blocking(&self) -> io::Result<()> {
                self.set_nonblocking(false)
            }
        }
    };
}
conn!(std::os::unix::net::UnixStream);
conn!(std::net::TcpStream);
conn!(vsock::VsockStream);

fn accept_loop<B, C, A>(ctx: &Ctx<B>, mut accept: impl FnMut() -> io::Result<(C, A)>)
where
    B: Backend + Send + 'static,
    C: Conn,
{
    while !ctx.stop.load(Ordering::SeqCst) {
        let conn = match accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(e) => {
                // EMFILE and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(POLL);
                continue;
            }
        };
        if ctx.live.fetch_add(1, Ordering::SeqCst) >= ctx.limits.max_connections {
            ctx.live.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("connection refused: {} connections open", ctx.limits.max_connections);
            continue;
        }
        let c = ctx.clone();
        let spawned = spawn("conn", move || {
            let mut conn = conn;
            let configured =
                conn.set_blocking().and_then(|()| conn.set_timeouts(POLL, c.limits.write_timeout));
            match configured {
                Err(e) => tracing::warn!(error = %e, "cannot configure connection"),
                Ok(()) => {
                    let r = serve_stream(&c, &mut conn, Some(c.limits.idle_timeout));
                    tracing::debug!(result = ?r, "connection closed");
                }
            }
            // The place is free before the peer sees the close.
            c.live.fetch_sub(1, Ordering::SeqCst);
            drop(conn);
        });
        if spawned.is_err() {
            ctx.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve_serial<B: Backend + Send + 'static>(ctx: &Ctx<B>, mut port: serialport::TTYPort) {
    // A serial line has no connections: it is served until the server stops.
    let r = serve_stream(ctx, &mut port, None);
    tracing::info!(result = ?r, "serial line closed");
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    Closed,
    Idle,
    Stopped,
    Io,
    DeviceUnavailable,
}

/// Serves one stream whose reads time out every [`POLL`].
fn serve_stream<B: Backend, S: Read + Write>(
    ctx: &Ctx<B>,
    io: &mut S,
    idle_timeout: Option<Duration>,
) -> End {
    let mut rx = Box::new(Accumulator::<MAX_REQUEST_FRAME>::new());
    let mut tx = vec![0u8; MAX_RESPONSE_WIRE];
    // A connection's responses are collected under the device lock and
    // written after it is released.
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut last = Instant::now();
    loop {
        if ctx.stop.load(Ordering::SeqCst) {
            return End::Stopped;
        }
        let n = match io.read(&mut chunk) {
            Ok(0) => return End::Closed,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if idle_timeout.is_some_and(|t| last.elapsed() >= t) {
                    return End::Idle;
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "read failed");
                return End::Io;
            }
        };
        last = Instant::now();
        let input = chunk.get(..n).unwrap_or(&[]);
        {
            // A poisoned lock means a thread panicked inside the device: its
            // in-memory state is suspect, so nobody is served from it again.
            let Ok(mut device) = ctx.device.lock() else { return End::DeviceUnavailable };
            let Ok(()) = tee_core::serve::feed(&mut out, &mut device, &mut rx, &mut tx, input);
        }
        if !out.is_empty() {
            let r = io.write_all(&out).and_then(|()| io.flush());
            out.clear();
            if let Err(e) = r {
                tracing::debug!(error = %e, "write failed (peer gone or not reading)");
                return End::Io;
            }
        }
    }
}
