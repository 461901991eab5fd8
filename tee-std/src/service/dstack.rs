//! dstack, through its SDK (`dstack-sdk`): key derivation (`GetKey`) with
//! the KMS signature chain, and TDX quotes (`GetQuote`) with the event log.
//!
//! The SDK is async; the device is a synchronous state machine, so this
//! facade owns a small current-thread runtime and blocks on each call. It is
//! called only from the thread that holds the device, never from inside a
//! runtime.
//!
//! The endpoint is chosen as the SDK chooses it: the argument, else
//! `DSTACK_SIMULATOR_ENDPOINT`, else dstack's socket paths. A socket path or
//! an `http(s)://` URL both work; the built-in simulator ([`crate::simd`])
//! serves either.

use dstack_sdk::dstack_client::DstackClient;
use zeroize::Zeroizing;

use crate::attest::KeyChain;
use crate::attest::eventlog::{self, Event};
use tee_core::primitives::FixedBytes;

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
    endpoint: String,
    rt: tokio::runtime::Runtime,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for Dstack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dstack").field("endpoint", &self.endpoint).finish_non_exhaustive()
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
    /// A client for `endpoint` (see [`resolve_endpoint`]); nothing is
    /// contacted yet.
    pub fn new(endpoint: Option<&str>) -> Result<Dstack, DstackError> {
        let endpoint = resolve_endpoint(endpoint).unwrap_or_else(|| "/var/run/dstack.sock".into());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Dstack {
            client: DstackClient::new(Some(&endpoint)),
            endpoint,
            rt,
            timeout: CALL_TIMEOUT,
        })
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

    /// `GetKey(path, purpose)`: the secp256k1 secret and its signature chain.
    pub fn get_key(
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
            public_key: FixedBytes(key.public_key().to_compressed()),
            app_signature: sig(0)?,
            kms_signature: sig(1)?,
        };
        Ok((secret, chain))
    }

    /// `GetQuote(report_data)`: a TDX quote over the 64 bytes, and the event log.
    pub fn get_quote(&self, report_data: &[u8; 64]) -> Result<QuoteEvidence, DstackError> {
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

    /// `Info`: the app and its measurements.
    pub fn info(&self) -> Result<AppInfo, DstackError> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A guest agent that takes the request and never answers: the call
    /// fails after the timeout, it does not hang the signer.
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
        let start = std::time::Instant::now();
        let e = d.get_quote(&[0; 64]).unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(2), "{:?}", start.elapsed());
        assert!(e.to_string().contains("no answer within"), "{e}");
        held.join().unwrap();
    }
}
