//! Serving one device to many clients over unix sockets, TCP, vsock and
//! serial lines at once.
//!
//! There is one [`Device`]; every connection has its own frame accumulator
//! and takes the device's lock only to handle a frame it completed, never
//! while reading from or writing to its peer, and never while dstack makes
//! a quote (the device decides, the quote is made, the device answers:
//! [`Device::begin`](tee_core::device::Device::begin)). So a client that
//! stalls, floods garbage or disconnects mid-frame costs only its own
//! thread: the others go on being served, and no request is half-handled
//! (the device sees whole frames or nothing). A `Sign`'s mark is written
//! under the lock and made durable outside it, by one fsync shared among
//! every request waiting (group commit: [`tee_store::group`]); each
//! reply leaves only once its ticket is durable.
//!
//! Limits: at most [`Limits::max_connections`] connections, and at most
//! [`Limits::max_per_peer`] from one peer (a unix user, a TCP address, a
//! vsock context); more are closed at once. A frame must arrive whole
//! within [`Limits::frame_timeout`] of its first byte; a connection that
//! completes no request for [`Limits::idle_timeout`] is closed; a peer that
//! does not take its responses within [`Limits::write_timeout`] is dropped.

use std::io;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use tee_core::frame::Accumulator;
use tee_core::protocol::{MAX_REQUEST_FRAME, MAX_RESPONSE_WIRE};

mod answer;

use super::listen::{Alarm, Conn, Open, Peer, Timed, Wake, bind_unix};
use super::marks::pool::Claims;
use super::metrics::Metrics;
use super::served::Prober;
pub use super::served::{Committer, Quoter, Served, Shared};
use answer::answer;
use tee_transport::{Endpoint, open_serial};

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// How much later than its deadline a connection may be closed (the read
/// timeout is not set again for less).
const TIMEOUT_SLACK: Duration = Duration::from_millis(1);

/// Resource limits of a server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Connections one peer (a unix user id, a TCP address, a vsock
    /// context) may hold at once, so no one client takes every place.
    pub max_per_peer: usize,
    /// A connection that completes no request for this long is closed
    /// (bytes that make no frame do not count).
    pub idle_timeout: Duration,
    /// A frame must arrive whole within this long of its first byte.
    pub frame_timeout: Duration,
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
            max_per_peer: 16,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            socket_mode: 0o600,
        }
    }
}

/// A running server: its listeners and connections run in threads until
/// [`ServerHandle::stop`] (or drop).
#[derive(Debug)]
pub struct ServerHandle {
    stop: Arc<AtomicBool>,
    /// Wakes the listeners when the server stops.
    alarm: Alarm,
    /// The connections, shut down when the server stops.
    open: Arc<Open>,
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
        self.alarm.ring();
        self.open.close_all();
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
pub fn serve<B: Served, const S: usize>(
    device: Shared<B, S>,
    endpoints: &[Endpoint],
    limits: Limits,
) -> io::Result<ServerHandle> {
    serve_pools(device, endpoints, &[], limits)
}

/// [`serve`], with `admin` listeners whose connections are counted apart
/// from the agent's: the agent, whatever it holds of its own listeners'
/// places (it may run as the admin's user, so the per-peer limit cannot
/// tell them apart), never takes the admin's. Each pool has `limits`.
pub fn serve_pools<B: Served, const S: usize>(
    device: Shared<B, S>,
    agent: &[Endpoint],
    admin: &[Endpoint],
    limits: Limits,
) -> io::Result<ServerHandle> {
    serve_metered(device, agent, admin, limits, None)
}

/// [`serve_pools`], counting what it serves in `metrics` (which then also
/// reads the backend's journal, anchor and health probe).
pub fn serve_metered<B: Served, const S: usize>(
    device: Shared<B, S>,
    agent: &[Endpoint],
    admin: &[Endpoint],
    limits: Limits,
    metrics: Option<Arc<Metrics>>,
) -> io::Result<ServerHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(Open::new(stop.clone()));
    let pool = || (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(HashMap::new())));
    let (agent_pool, admin_pool) = (pool(), pool());
    let endpoints =
        agent.iter().map(|e| (e, &agent_pool)).chain(admin.iter().map(|e| (e, &admin_pool)));
    let (quoter, committer, claims, prober) = {
        let d = device.lock().map_err(|_| io::Error::other("the device lock is poisoned"))?;
        let prober = d.backend().prober();
        if let Some(m) = &metrics {
            let (group, anchor) = d.backend().metered();
            m.watch(group, anchor, prober.clone());
        }
        (d.backend().quoter(), d.backend().committer(), d.backend().claims(), prober)
    };
    let mut handle = ServerHandle {
        stop: stop.clone(),
        alarm: Alarm::new()?,
        open: open.clone(),
        threads: Vec::new(),
        endpoints: Vec::new(),
        sockets: Vec::new(),
    };
    for (endpoint, (live, peers)) in endpoints {
        let ctx = Ctx {
            device: device.clone(),
            quoter: quoter.clone(),
            committer: committer.clone(),
            claims: claims.clone(),
            prober: prober.clone(),
            metrics: metrics.clone(),
            stop: stop.clone(),
            live: live.clone(),
            open: open.clone(),
            peers: peers.clone(),
            limits,
        };
        let (bound, thread) = match endpoint {
            Endpoint::Unix(path) => {
                let listener = bind_unix(path, limits.socket_mode)?;
                handle.sockets.push(path.clone());
                listener.set_nonblocking(true)?;
                let wake = handle.alarm.watch()?;
                let accept = move || accept_loop(&ctx, &listener, &wake, UnixListener::accept);
                (endpoint.clone(), spawn("unix", accept)?)
            }
            Endpoint::Tcp(addr) => {
                let listener = TcpListener::bind(addr)?;
                let bound = Endpoint::Tcp(listener.local_addr()?.to_string());
                listener.set_nonblocking(true)?;
                let accept = |l: &TcpListener| {
                    let (s, a) = l.accept()?;
                    s.set_nodelay(true)?;
                    Ok((s, a))
                };
                let wake = handle.alarm.watch()?;
                (bound, spawn("tcp", move || accept_loop(&ctx, &listener, &wake, accept))?)
            }
            Endpoint::Vsock { cid, port } => {
                let listener = vsock::VsockListener::bind_with_cid_port(*cid, *port)?;
                listener.set_nonblocking(true)?;
                let wake = handle.alarm.watch()?;
                let accept =
                    move || accept_loop(&ctx, &listener, &wake, vsock::VsockListener::accept);
                (endpoint.clone(), spawn("vsock", accept)?)
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

/// Stack of every serving thread: a request holds actions by value (up to
/// `MAX_ACTION_LEN`, tens of KiB with the host's bounds) and the device's
/// slots, and a debug build copies them; 8 MiB, as a main thread has,
/// whatever `RUST_MIN_STACK` says. Untouched pages cost nothing.
const THREAD_STACK: usize = 8 << 20;

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(format!("serve-{name}")).stack_size(THREAD_STACK).spawn(f)
}

struct Ctx<B: Served, const S: usize> {
    device: Shared<B, S>,
    quoter: Option<Quoter>,
    committer: Option<Committer>,
    claims: Option<Arc<Claims>>,
    prober: Option<Prober>,
    metrics: Option<Arc<Metrics>>,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    open: Arc<Open>,
    peers: Arc<Mutex<HashMap<Peer, usize>>>,
    limits: Limits,
}

impl<B: Served, const S: usize> Clone for Ctx<B, S> {
    fn clone(&self) -> Self {
        Ctx {
            device: self.device.clone(),
            quoter: self.quoter.clone(),
            committer: self.committer.clone(),
            claims: self.claims.clone(),
            prober: self.prober.clone(),
            metrics: self.metrics.clone(),
            stop: self.stop.clone(),
            live: self.live.clone(),
            open: self.open.clone(),
            peers: self.peers.clone(),
            limits: self.limits,
        }
    }
}

/// A connection's places: in the server's count and its peer's, given back
/// when it ends.
struct Place<B: Served, const S: usize> {
    ctx: Ctx<B, S>,
    peer: Peer,
    /// Where its closer is kept, once registered.
    id: Option<u64>,
}

impl<B: Served, const S: usize> Place<B, S> {
    /// Takes a place for `peer`, or says why there is none.
    fn take(ctx: &Ctx<B, S>, peer: Peer) -> Result<Place<B, S>, &'static str> {
        if ctx.live.fetch_add(1, Ordering::SeqCst) >= ctx.limits.max_connections {
            ctx.live.fetch_sub(1, Ordering::SeqCst);
            return Err("the server's connections are all taken");
        }
        let mut peers = ctx.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = peers.entry(peer).or_insert(0);
        if peer != Peer::Unknown && *n >= ctx.limits.max_per_peer {
            drop(peers);
            ctx.live.fetch_sub(1, Ordering::SeqCst);
            return Err("this peer's connections are all taken");
        }
        *n += 1;
        if let Some(m) = &ctx.metrics {
            m.accepted.fetch_add(1, Ordering::Relaxed);
            m.open.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Place { ctx: ctx.clone(), peer, id: None })
    }
}

impl<B: Served, const S: usize> Drop for Place<B, S> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.ctx.open.remove(id);
        }
        let mut peers = self.ctx.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = peers.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
        drop(peers);
        self.ctx.live.fetch_sub(1, Ordering::SeqCst);
        if let Some(m) = &self.ctx.metrics {
            m.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Accepts connections on `listener` (non-blocking) until the server
/// stops: it sleeps in `poll` until a connection waits or `wake` says the
/// server stopped, so a new connection is taken at once and an idle
/// listener never wakes.
fn accept_loop<B, L, C, A, const S: usize>(
    ctx: &Ctx<B, S>,
    listener: &L,
    wake: &Wake,
    accept: impl Fn(&L) -> io::Result<(C, A)>,
) where
    B: Served,
    L: AsFd,
    C: Conn,
{
    while !ctx.stop.load(Ordering::SeqCst) {
        let conn = match accept(listener) {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wake.wait_for(listener, None);
                continue;
            }
            Err(e) => {
                // EMFILE and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                wake.wait_for(listener, Some(POLL));
                continue;
            }
        };
        let peer = conn.peer();
        let mut place = match Place::take(ctx, peer) {
            Ok(p) => p,
            Err(why) => {
                if let Some(m) = &ctx.metrics {
                    m.turned_away.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(?peer, "connection refused: {why}");
                continue;
            }
        };
        match conn.closer() {
            Ok(closer) => place.id = Some(ctx.open.add(closer)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot keep a connection's handle");
                continue;
            }
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
                    tracing::debug!(result = ?r, ?peer, "connection closed");
                }
            }
            // The place is free before the peer sees the close.
            drop(place);
            drop(conn);
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a connection thread");
        }
    }
}

fn serve_serial<B: Served, const S: usize>(ctx: &Ctx<B, S>, mut port: serialport::TTYPort) {
    // A serial line has no connections: it is served until the server stops.
    let r = serve_stream(ctx, &mut port, None);
    tracing::info!(result = ?r, "serial line closed");
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    Closed,
    Idle,
    SlowFrame,
    Stopped,
    Io,
    DeviceUnavailable,
}

/// Serves one stream whose reads time out every [`POLL`]. A frame must
/// arrive whole within [`Limits::frame_timeout`] of its first byte, and a
/// connection that completes no request for `idle_timeout` is closed:
/// trickling bytes keeps nobody's place.
fn serve_stream<B: Served, const S: usize, T: Timed>(
    ctx: &Ctx<B, S>,
    io: &mut T,
    idle_timeout: Option<Duration>,
) -> End {
    let mut rx = Box::new(Accumulator::<MAX_REQUEST_FRAME>::new());
    let mut tx = vec![0u8; MAX_RESPONSE_WIRE];
    // A connection's responses are collected and written after the device
    // lock is released.
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut last_request = Instant::now();
    let mut frame_start: Option<Instant> = None;
    // The read timeout set on the stream, if any.
    let mut read_timeout: Option<Duration> = None;
    loop {
        if ctx.stop.load(Ordering::SeqCst) {
            return End::Stopped;
        }
        if frame_start.is_some_and(|t| t.elapsed() >= ctx.limits.frame_timeout) {
            return End::SlowFrame;
        }
        if frame_start.is_none() && idle_timeout.is_some_and(|t| last_request.elapsed() >= t) {
            return End::Idle;
        }
        // Sleep until the next deadline, not a poll interval: an idle
        // client's connection wakes the server only when its time is up.
        let next = match (frame_start, idle_timeout) {
            (Some(t), _) => ctx.limits.frame_timeout.saturating_sub(t.elapsed()),
            (None, Some(idle)) => idle.saturating_sub(last_request.elapsed()),
            (None, None) => POLL,
        };
        // Each read waits at most the timeout set. One that waits too long
        // keeps a connection past its deadline; one far too short wakes the
        // thread for nothing. So it is set again only when the one set is
        // longer than `next` by more than a millisecond, or shorter than
        // half of it: between requests it stays the idle timeout, and a
        // request costs no `setsockopt`.
        if read_timeout.is_none_or(|set| set > next + TIMEOUT_SLACK || set < next / 2) {
            if let Err(e) = io.wait_at_most(next) {
                tracing::debug!(error = %e, "cannot set the read timeout");
                return End::Io;
            }
            read_timeout = Some(next);
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
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "read failed");
                return End::Io;
            }
        };
        let mut input = chunk.get(..n).unwrap_or(&[]);
        while !input.is_empty() {
            let (frame, rest) = rx.feed(input);
            input = rest;
            if let Some(frame) = frame {
                if let Err(end) = answer(ctx, frame, &mut tx, &mut out) {
                    return end;
                }
                last_request = Instant::now();
            }
        }
        frame_start =
            if rx.in_frame() { frame_start.or_else(|| Some(Instant::now())) } else { None };
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
