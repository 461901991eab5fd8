//! The server's side of a connection before it is served: unix sockets
//! bound without ever being reachable under the process's umask, and who
//! is at the other end of a connection (what the per-peer limit counts).

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::time::Duration;

/// Who is on the other end of a connection, as far as its transport says:
/// what the per-peer connection limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// A unix socket peer's user id (`SO_PEERCRED`).
    Uid(u32),
    /// A TCP peer's address.
    Ip(std::net::IpAddr),
    /// A vsock peer's context id.
    Cid(u32),
    /// The transport names no peer.
    Unknown,
}

/// What a served connection must offer besides bytes.
pub(crate) trait Conn: Timed + Send + 'static {
    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()>;
    fn set_blocking(&self) -> io::Result<()>;
    fn peer(&self) -> Peer;
    /// A handle that shuts the connection down from another thread.
    fn closer(&self) -> io::Result<Closer>;
}

/// A stream whose reads the server tells how long to wait: a connection
/// waits for its own next deadline (a frame's, or its idle time's), since
/// stopping the server shuts it down at once ([`Closer`]); a serial line
/// keeps its poll interval, as nothing else would wake it for a stop.
pub(crate) trait Timed: Read + Write {
    fn wait_at_most(&mut self, d: Duration) -> io::Result<()>;
}

impl Timed for serialport::TTYPort {
    fn wait_at_most(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }
}

/// Shuts a connection down from the thread that stops the server: its
/// blocked read returns at once and nothing more is written to it.
#[derive(Debug)]
pub(crate) enum Closer {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
    Vsock(vsock::VsockStream),
}

impl Closer {
    pub(crate) fn close(&self) {
        let both = std::net::Shutdown::Both;
        // Already closed by its peer: nothing to do.
        let _ = match self {
            Closer::Unix(s) => s.shutdown(both),
            Closer::Tcp(s) => s.shutdown(both),
            Closer::Vsock(s) => s.shutdown(both),
        };
    }
}

macro_rules! conn {
    ($t:ty, $closer:ident, |$c:ident| $peer:expr) => {
        impl Conn for $t {
            fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
                self.set_read_timeout(Some(read))?;
                self.set_write_timeout(Some(write))
            }
            fn set_blocking(&self) -> io::Result<()> {
                self.set_nonblocking(false)
            }
            fn peer(&self) -> Peer {
                let $c = self;
                $peer
            }
            fn closer(&self) -> io::Result<Closer> {
                Ok(Closer::$closer(self.try_clone()?))
            }
        }
        impl Timed for $t {
            fn wait_at_most(&mut self, d: Duration) -> io::Result<()> {
                self.set_read_timeout(Some(d.max(Duration::from_millis(1))))
            }
        }
    };
}
conn!(std::os::unix::net::UnixStream, Unix, |c| {
    rustix::net::sockopt::socket_peercred(c)
        .map_or(Peer::Unknown, |cred| Peer::Uid(cred.uid.as_raw()))
});
conn!(std::net::TcpStream, Tcp, |c| c.peer_addr().map_or(Peer::Unknown, |a| Peer::Ip(a.ip())));
conn!(vsock::VsockStream, Vsock, |c| c.peer_addr().map_or(Peer::Unknown, |a| Peer::Cid(a.cid())));

/// Binds a unix socket at `path` with permission bits `mode`, replacing a
/// stale socket file (one nobody answers on) but never a live one or a file
/// that is not a socket. The socket is bound inside a fresh private
/// directory, given its mode, and only then renamed into place: it is never
/// reachable with the process's umask.
pub(crate) fn bind_unix(path: &std::path::Path, mode: u32) -> io::Result<UnixListener> {
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

/// The listeners' alarm: a pipe whose writing end the server holds. Ringing
/// it closes that end, and every listener polling the reading end ([`Wake`])
/// sees it at once, so stopping needs no polling interval.
#[derive(Debug)]
pub(crate) struct Alarm {
    reader: io::PipeReader,
    writer: Option<io::PipeWriter>,
}

impl Alarm {
    pub(crate) fn new() -> io::Result<Alarm> {
        let (reader, writer) = io::pipe()?;
        Ok(Alarm { reader, writer: Some(writer) })
    }

    /// A listener's view of the alarm.
    pub(crate) fn watch(&self) -> io::Result<Wake> {
        Ok(Wake { reader: self.reader.try_clone()? })
    }

    /// Wakes every [`Wake::wait_for`], now and from now on.
    pub(crate) fn ring(&mut self) {
        self.writer = None;
    }
}

/// What a listener sleeps on besides its socket: see [`Alarm`].
#[derive(Debug)]
pub(crate) struct Wake {
    reader: io::PipeReader,
}

impl Wake {
    /// Sleeps until `fd` is readable (a connection waits), the alarm rang,
    /// or `timeout` passed.
    pub(crate) fn wait_for(&self, fd: &impl AsFd, timeout: Option<Duration>) {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(fd, PollFlags::IN), PollFd::new(&self.reader, PollFlags::IN)];
        let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
        // EINTR or the like: the caller tries accept again and comes back.
        let _ = poll(&mut fds, timeout.as_ref());
    }
}

/// The server's open connections, to shut them all down when it stops.
#[derive(Debug)]
pub(crate) struct Open {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Mutex<(u64, std::collections::HashMap<u64, Closer>)>,
}

impl Open {
    pub(crate) fn new(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Open {
        Open { stop, conns: std::sync::Mutex::new((0, std::collections::HashMap::new())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, std::collections::HashMap<u64, Closer>)> {
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `closer`; a connection that comes after the server stopped is
    /// shut down at once (the stop flag is read under the lock that
    /// [`Open::close_all`] takes after setting it).
    pub(crate) fn add(&self, closer: Closer) -> u64 {
        let mut conns = self.lock();
        if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
            closer.close();
        }
        let (next, map) = &mut *conns;
        *next += 1;
        map.insert(*next, closer);
        *next
    }

    pub(crate) fn remove(&self, id: u64) {
        self.lock().1.remove(&id);
    }

    /// Shuts every connection down (the stop flag is already set).
    pub(crate) fn close_all(&self) {
        for closer in self.lock().1.values() {
            closer.close();
        }
    }
}
