#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

//! Where a signer listens and a client connects: a unix socket, a TCP
//! address, a vsock port (a CVM's host side, or the CVM seen from its host),
//! or a serial line (a signer behind a UART).
//!
//! Written `unix:PATH`, `tcp:HOST:PORT`, `vsock:CID:PORT`, `serial:PATH` or
//! `serial:PATH@BAUD` (115200 baud when absent).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The default serial line speed.
pub const DEFAULT_BAUD: u32 = 115_200;

/// A transport endpoint. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP `host:port`.
    Tcp(String),
    /// A vsock context id and port.
    Vsock {
        /// Context id (2 is the host, 3 and up the guests; `u32::MAX` any).
        cid: u32,
        /// Port.
        port: u32,
    },
    /// A serial device.
    Serial {
        /// The device (`/dev/ttyUSB0`, a pty).
        path: PathBuf,
        /// Line speed.
        baud: u32,
    },
}

/// An endpoint string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad endpoint {input:?}: {reason} (expected unix:PATH, tcp:HOST:PORT, vsock:CID:PORT or serial:PATH[@BAUD])"
)]
pub struct EndpointError {
    input: String,
    reason: &'static str,
}

impl FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Endpoint, EndpointError> {
        let err = |reason| EndpointError { input: s.to_owned(), reason };
        let (scheme, rest) = s.split_once(':').ok_or_else(|| err("no scheme"))?;
        if rest.is_empty() {
            return Err(err("nothing after the scheme"));
        }
        match scheme {
            "unix" => Ok(Endpoint::Unix(rest.into())),
            "tcp" => {
                let (host, port) = rest.rsplit_once(':').ok_or_else(|| err("no port"))?;
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(err("not HOST:PORT"));
                }
                Ok(Endpoint::Tcp(rest.to_owned()))
            }
            "vsock" => {
                let (cid, port) = rest.split_once(':').ok_or_else(|| err("no port"))?;
                let cid = if cid == "any" { Ok(u32::MAX) } else { cid.parse() };
                match (cid, port.parse()) {
                    (Ok(cid), Ok(port)) => Ok(Endpoint::Vsock { cid, port }),
                    _ => Err(err("not CID:PORT")),
                }
            }
            "serial" => {
                let (path, baud) = match rest.rsplit_once('@') {
                    Some((p, b)) => (p, b.parse().map_err(|_| err("baud is not a number"))?),
                    None => (rest, DEFAULT_BAUD),
                };
                if path.is_empty() || baud == 0 {
                    return Err(err("no device path or zero baud"));
                }
                Ok(Endpoint::Serial { path: path.into(), baud })
            }
            _ => Err(err("unknown scheme")),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Endpoint::Serial { path, baud } => write!(f, "serial:{}@{baud}", path.display()),
        }
    }
}

/// A connected byte stream of any transport.
pub trait Stream: Read + Write + Send + fmt::Debug {}
impl<T: Read + Write + Send + fmt::Debug> Stream for T {}

/// Opens a serial line in raw mode with `timeout` on reads.
pub fn open_serial(
    path: &std::path::Path,
    baud: u32,
    timeout: Duration,
) -> io::Result<serialport::TTYPort> {
    serialport::new(path.to_string_lossy(), baud)
        .timeout(timeout)
        .open_native()
        .map_err(io::Error::from)
}

/// Connects to `endpoint`; reads time out after `timeout`.
pub fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<Box<dyn Stream>> {
    Ok(match endpoint {
        Endpoint::Unix(path) => {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Box::new(s)
        }
        Endpoint::Tcp(addr) => {
            let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to nothing"))
            })?;
            let s = TcpStream::connect_timeout(&addr, timeout)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Box::new(s)
        }
        Endpoint::Vsock { cid, port } => {
            let s = vsock::VsockStream::connect_with_cid_port(*cid, *port)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Box::new(s)
        }
        Endpoint::Serial { path, baud } => Box::new(open_serial(path, *baud, timeout)?),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints_parse_and_print() {
        for (text, want) in [
            ("unix:/run/signer.sock", Endpoint::Unix("/run/signer.sock".into())),
            ("tcp:127.0.0.1:7000", Endpoint::Tcp("127.0.0.1:7000".into())),
            ("tcp:[::1]:7000", Endpoint::Tcp("[::1]:7000".into())),
            ("vsock:3:5000", Endpoint::Vsock { cid: 3, port: 5000 }),
            ("vsock:any:5000", Endpoint::Vsock { cid: u32::MAX, port: 5000 }),
            (
                "serial:/dev/ttyUSB0",
                Endpoint::Serial { path: "/dev/ttyUSB0".into(), baud: 115_200 },
            ),
            ("serial:/dev/pts/3@9600", Endpoint::Serial { path: "/dev/pts/3".into(), baud: 9600 }),
        ] {
            let parsed: Endpoint = text.parse().unwrap();
            assert_eq!(parsed, want, "{text}");
            assert_eq!(parsed.to_string().parse::<Endpoint>().unwrap(), want);
        }
        for bad in [
            "",
            "unix:",
            "/run/signer.sock",
            "tcp:7000",
            "tcp:host:99999",
            "tcp::7000",
            "vsock:3",
            "vsock:x:1",
            "serial:/dev/tty@fast",
            "serial:/dev/tty@0",
            "http://x",
        ] {
            let e = bad.parse::<Endpoint>().unwrap_err();
            assert!(e.to_string().contains("expected unix:PATH"), "{bad}: {e}");
        }
    }
}
