//! What a host that controls the network does to the marks database's
//! connection: a server that accepts and never answers ([`black_hole`]),
//! and a TCP proxy to the test's PostgreSQL that can be frozen mid-session
//! ([`Proxy`]: it holds every byte in both directions until thawed, as a
//! host holding packets would, without closing anything).
#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test set-up")]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// A port on loopback that accepts connections and never writes a byte
/// (the connections are kept open for the process's life).
#[must_use]
pub fn black_hole() -> u16 {
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for c in hole.incoming() {
            held.extend(c.ok());
        }
    });
    port
}

/// A TCP proxy on loopback to a PostgreSQL unix socket.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    /// Proxies `127.0.0.1:<port>` to the server whose socket directory is
    /// `socket_dir` (`host=` of a libpq string naming a directory).
    #[must_use]
    pub fn start(socket_dir: &Path) -> Proxy {
        let socket: PathBuf = socket_dir.join(".s.PGSQL.5432");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let (Ok(client), Ok(server)) = (client, UnixStream::connect(&socket)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (fa, fb) = (f.clone(), f.clone());
                thread::spawn(move || pump(client, server, &fa));
                thread::spawn(move || pump(s2, c2, &fb));
            }
        });
        Proxy { port, frozen }
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on nothing passes, either way, until [`Proxy::thaw`].
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// What was held passes, and everything after it.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

/// Both ends of a proxied connection, closed together.
trait Both: Read + Write + Send {
    fn close(&self);
}

impl Both for TcpStream {
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Both for UnixStream {
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

fn pump(mut from: impl Both, mut to: impl Both, frozen: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Held, not dropped: the peer sees a silent network.
        while frozen.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    from.close();
    to.close();
}
