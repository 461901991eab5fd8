//! The simulated dstack guest agent: [`SimDstack`] behind dstack's own HTTP
//! API (`POST /GetKey`, `/GetQuote`, `/Info`, `/Version`, JSON bodies), on a
//! unix socket or a TCP port. A signer selects it the way it selects the real
//! one, by endpoint (`DSTACK_SIMULATOR_ENDPOINT` or `--dstack`), and talks to
//! it with the same client (`dstack-sdk`), so the simulated TEE exercises the
//! whole path but the hardware.
//!
//! Bad requests get a 400 with a reason; bodies are capped at 64 KiB; one
//! client's failure never stops the server.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;

use super::SimDstack;
use crate::transport::Endpoint;

const MAX_BODY: usize = 64 * 1024;

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
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (listener, endpoint) = rt.block_on(async {
            match listen {
                Endpoint::Unix(path) => {
                    // A stale socket from an earlier run would make bind fail.
                    if path.exists() {
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
        let sim = Arc::new(sim);
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

async fn accept_loop(listener: Either, sim: Arc<SimDstack>, mut stopped: oneshot::Receiver<()>) {
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
    algorithm: Option<String>,
}

#[derive(Deserialize)]
struct GetQuoteArgs {
    report_data: String,
}

async fn handle(
    req: Request<Incoming>,
    sim: Arc<SimDstack>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST && req.method() != Method::GET {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "{}".into()));
    }
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(bad(format_args!("request body: {e}"))),
    };
    let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
    Ok(match path.as_str() {
        "GetKey" => match serde_json::from_slice::<GetKeyArgs>(body) {
            Err(e) => bad(e),
            Ok(a) if a.algorithm.as_deref().is_some_and(|x| x != "secp256k1" && !x.is_empty()) => {
                bad("only secp256k1 keys are simulated")
            }
            Ok(a) => match sim.get_key(&a.path, &a.purpose) {
                Err(e) => bad(e),
                Ok((key, chain)) => reply(
                    StatusCode::OK,
                    json!({
                        "key": hex::encode(&key[..]),
                        "signature_chain": [
                            hex::encode(chain.app_signature.0),
                            hex::encode(chain.kms_signature.0),
                        ],
                    })
                    .to_string(),
                ),
            },
        },
        "GetQuote" => match serde_json::from_slice::<GetQuoteArgs>(body) {
            Err(e) => bad(e),
            Ok(a) => match hex::decode(a.report_data.trim_start_matches("0x")) {
                Err(e) => bad(format_args!("report_data: {e}")),
                Ok(d) if d.is_empty() || d.len() > 64 => bad("report_data must be 1 to 64 bytes"),
                Ok(d) => {
                    // dstack zero-pads report data to 64 bytes; it does not hash it.
                    let mut rd = [0u8; 64];
                    rd.iter_mut().zip(&d).for_each(|(o, i)| *o = *i);
                    let (quote, log) = sim.get_quote(&rd);
                    reply(
                        StatusCode::OK,
                        json!({
                            "quote": hex::encode(quote),
                            "event_log": serde_json::to_string(&log).unwrap_or_default(),
                            "report_data": hex::encode(rd),
                            "vm_config": "",
                        })
                        .to_string(),
                    )
                }
            },
        },
        "Info" => reply(StatusCode::OK, info(&sim).to_string()),
        "Version" => reply(
            StatusCode::OK,
            json!({ "version": "simulated", "rev": env!("CARGO_PKG_VERSION") }).to_string(),
        ),
        other => reply(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no method {other:?} in the simulated dstack") }).to_string(),
        ),
    })
}

fn info(sim: &SimDstack) -> serde_json::Value {
    let log = sim.event_log();
    let rtmr3 = crate::attest::eventlog::replay(&log, 3).unwrap_or([0; 48]);
    let quote = tee_core::quote::Quote::parse(crate::sim::SAMPLE_QUOTE).ok();
    let mr = |i: usize| {
        quote.as_ref().and_then(|q| q.report.rtmr.get(i).map(hex::encode)).unwrap_or_default()
    };
    let tcb_info = json!({
        "mrtd": quote.as_ref().map(|q| hex::encode(q.report.mr_td)).unwrap_or_default(),
        "rtmr0": mr(0),
        "rtmr1": mr(1),
        "rtmr2": mr(2),
        "rtmr3": hex::encode(rtmr3),
        "os_image_hash": "",
        "compose_hash": hex::encode(sim.compose_hash()),
        "device_id": "",
        "app_compose": "",
        "event_log": log,
    });
    json!({
        "app_id": hex::encode(sim.app_id()),
        "instance_id": hex::encode(&tee_core::primitives::keccak256(&sim.app_id()).0[..20]),
        "app_cert": "",
        "tcb_info": tcb_info.to_string(),
        "app_name": "erc8004-tee-signer (simulated)",
        "device_id": "",
        "mr_aggregated": "",
        "os_image_hash": "",
        "key_provider_info": r#"{"type":"kms","id":"simulated"}"#,
        "compose_hash": hex::encode(sim.compose_hash()),
        "vm_config": "",
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::io::{Read, Write};

    use tee_core::binding::{self, Purpose};
    use tee_core::quote::Quote;
    use tee_core::{B256, SigningKey};

    use super::*;
    use crate::attest::eventlog;
    use crate::attest::verify_key_chain;
    use crate::service::dstack::Dstack;

    fn sim() -> SimDstack {
        SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap()
    }

    /// The SDK's own client, against the simulator on both transports.
    #[test]
    fn dstack_sdk_talks_to_the_simulator() {
        let dir = tempfile::tempdir().unwrap();
        let unix =
            SimServer::start(sim(), &Endpoint::Unix(dir.path().join("dstack.sock"))).unwrap();
        let tcp = SimServer::start(sim(), &Endpoint::Tcp("127.0.0.1:0".into())).unwrap();
        assert!(tcp.endpoint().starts_with("http://127.0.0.1:"));
        let reference = sim();
        for server in [&unix, &tcp] {
            let d = Dstack::new(Some(server.endpoint())).unwrap();
            let (secret, chain) = d.get_key("agent/1", "erc8004-signer").unwrap();
            let (want, _) = reference.get_key("agent/1", "erc8004-signer").unwrap();
            assert_eq!(*secret, *want, "the key is the simulated KMS's");
            let address = SigningKey::from_bytes(&secret).unwrap().address();
            let app = verify_key_chain(&chain, &address, Some(&[0x22; 20]), &reference.kms_root());
            assert!(app.is_ok(), "{app:?}");

            let challenge = B256([9; 32]);
            let rd = binding::bind(&address, Purpose::Challenge, &challenge);
            let q = d.get_quote(&rd).unwrap();
            let parsed = Quote::parse(&q.quote).unwrap();
            assert_eq!(parsed.report.report_data, &rd);
            assert_eq!(eventlog::replay(&q.event_log, 3).unwrap(), *parsed.report.rtmr[3]);
            let boot = eventlog::BootLog::read(&q.event_log).unwrap();
            assert_eq!(boot.get("compose-hash"), Some(&[0x33; 32][..]));

            let info = d.info().unwrap();
            assert_eq!(info.app_id, hex::encode([0x22; 20]));
            assert_eq!(info.compose_hash, hex::encode([0x33; 32]));
        }
    }

    #[test]
    fn bad_requests_get_reasons_and_the_server_keeps_serving() {
        let server = SimServer::start(sim(), &Endpoint::Tcp("127.0.0.1:0".into())).unwrap();
        let addr = server.endpoint().trim_start_matches("http://").to_owned();
        let post = |path: &str, body: &str| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                s,
                "POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        for (path, body, want) in [
            ("GetQuote", "{}", "400"),
            ("GetQuote", r#"{"report_data":"zz"}"#, "400"),
            ("GetQuote", r#"{"report_data":""}"#, "400"),
            ("GetQuote", &format!(r#"{{"report_data":"{}"}}"#, "00".repeat(65)), "400"),
            ("GetKey", r#"{"path":"a","algorithm":"ed25519"}"#, "400"),
            ("GetKey", "not json", "400"),
            ("Nope", "{}", "404"),
        ] {
            let r = post(path, body);
            assert!(r.starts_with(&format!("HTTP/1.1 {want}")), "{path} {body}: {r}");
        }
        // Garbage that is not HTTP, then a good request.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(&[0xff; 300]).unwrap();
        drop(s);
        assert!(post("GetQuote", r#"{"report_data":"01"}"#).starts_with("HTTP/1.1 200"));
        // A body over the cap is refused.
        let big = format!(r#"{{"path":"{}"}}"#, "a".repeat(MAX_BODY));
        assert!(post("GetKey", &big).starts_with("HTTP/1.1 400"));
    }
}
