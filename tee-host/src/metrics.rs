//! What the signer counts for its operator, in the Prometheus text format
//! (`serve --metrics`), and its health as JSON: every response by command
//! and outcome (a refusal by its reason), connections, the journal's group
//! commits and size, the shared marks' claims and their latency, the
//! rollback anchor, and whether dstack, the marks database and the journal
//! answer.
//!
//! Nothing here is secret or key-dependent: the same counts a peer could
//! make by watching the socket, and the journal's size. The endpoint
//! answers `GET /metrics` and `GET /health` only, one connection at a time,
//! each bounded in size and time, on loopback unless the operator says the
//! network is trusted (`serve`'s rule for its listeners).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tee_core::protocol::{CommandVisitor, DeviceError, HealthResponse, Probe, with_command};
use tee_store::group::GroupCommit;

use crate::marks::anchor::Anchor;
use crate::served::Prober;

pub mod endpoint;

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 12] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A latency histogram (cumulative on output, as Prometheus has it).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    /// Observations above the last bound.
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Counts one observation of `d`.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        match BUCKETS.iter().position(|b| s <= *b) {
            Some(i) => {
                if let Some(c) = self.counts.get(i) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.over.fetch_add(1, Ordering::Relaxed);
            }
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            total += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {total}");
        }
        total += self.over.load(Ordering::Relaxed);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {sum}\n{name}_count {total}"
        );
    }
}

/// The signer's counts. Shared by the server (which counts) and the
/// metrics endpoint (which reads).
#[derive(Default)]
pub struct Metrics {
    /// Responses by (command, outcome): `ok`, or the refusal's reason.
    responses: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Connections accepted, and refused for want of a place.
    pub(crate) accepted: AtomicU64,
    pub(crate) turned_away: AtomicU64,
    /// Connections open now.
    pub(crate) open: AtomicU64,
    /// Frames that did not read (CRC, COBS, too long).
    pub(crate) bad_frames: AtomicU64,
    /// Replies that waited for the journal (and the anchor), and how long.
    pub(crate) commit: Histogram,
    /// The shared marks' claims by outcome, and their round trips.
    claims: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) claim: Histogram,
    /// What the metrics endpoint reads from the backend.
    sources: Mutex<Sources>,
}

#[derive(Default)]
struct Sources {
    group: Option<Arc<GroupCommit>>,
    anchor: Option<Arc<Anchor>>,
    prober: Option<Prober>,
    started: Option<Instant>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Name;

impl CommandVisitor for Name {
    type Output = &'static str;
    fn visit<C: tee_core::protocol::Command>(self) -> &'static str {
        // `tee_core::protocol::sign::Sign<'_>` is `Sign`.
        let full = std::any::type_name::<C>();
        let bare = full.split('<').next().unwrap_or(full);
        bare.rsplit("::").next().unwrap_or(bare)
    }
}

/// A command's name by its code (`unknown` for a code no command has).
#[must_use]
pub fn command_name(code: u8) -> &'static str {
    with_command(code, Name).unwrap_or("unknown")
}

/// A refusal's reason: its variant's name.
#[must_use]
pub fn reason(e: &DeviceError) -> &'static str {
    // The variant's name, as Debug writes it before its fields; the
    // names are few and fixed, so each is leaked once.
    static NAMES: Mutex<BTreeMap<String, &'static str>> = Mutex::new(BTreeMap::new());
    let shown = format!("{e:?}");
    let name = shown.split([' ', '{', '(']).next().unwrap_or("").to_owned();
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = names.get(&name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
    names.insert(name, leaked);
    leaked
}

/// The refusal a response body holds (`Result<T, DeviceError>` in
/// postcard: 0 then `T`, or 1 then the error), `None` for a success.
fn outcome(body: &[u8]) -> Option<DeviceError> {
    match body.split_first() {
        Some((1, rest)) => tee_core::codec::decode::<DeviceError>(rest).ok(),
        _ => None,
    }
}

impl Metrics {
    /// New counts, reading the journal's group commit, the rollback anchor
    /// and the health probe where the backend has them.
    #[must_use]
    pub fn new() -> Arc<Metrics> {
        let m = Metrics::default();
        m.sources.lock().unwrap_or_else(PoisonError::into_inner).started = Some(Instant::now());
        Arc::new(m)
    }

    /// Reads the journal's group commit, the anchor and the health probe
    /// from these.
    pub fn watch(
        &self,
        group: Option<Arc<GroupCommit>>,
        anchor: Option<Arc<Anchor>>,
        prober: Option<Prober>,
    ) {
        let mut s = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        s.group = group;
        s.anchor = anchor;
        s.prober = prober;
    }

    /// Counts a response to `command`: `Ok`, or refused with `e`.
    pub fn response(&self, command: u8, outcome: Result<(), &DeviceError>) {
        let outcome = match outcome {
            Ok(()) => "ok",
            Err(e) => reason(e),
        };
        let mut r = self.responses.lock().unwrap_or_else(PoisonError::into_inner);
        *r.entry((command_name(command), outcome)).or_default() += 1;
    }

    /// Counts the response to `command` in `frame` (the wire frame the
    /// server is about to send) by its outcome, read back with the frame
    /// decoder every client uses. A refusal's frame is short: one too long
    /// for a small buffer is a success.
    pub fn count_frame(&self, command: u8, frame: &[u8]) {
        let mut acc = tee_core::frame::Accumulator::<256>::new();
        let (mut input, mut refused) = (frame, None);
        // A frame starts with a delimiter (a resync): the first one read
        // with a payload is the response.
        while !input.is_empty() {
            let (read, rest) = acc.feed(input);
            input = rest;
            match read {
                Some(Ok(payload)) if !payload.is_empty() => {
                    refused = tee_core::frame::Header::split(payload)
                        .ok()
                        .and_then(|(_, body)| outcome(body));
                    break;
                }
                Some(Err(tee_core::frame::FrameError::TooLong)) => break,
                _ => {}
            }
        }
        self.response(command, refused.as_ref().map_or(Ok(()), Err));
    }

    /// Counts a claim of the shared marks and its round trip.
    pub fn claimed(&self, outcome: &'static str, took: Duration) {
        *self.claims.lock().unwrap_or_else(PoisonError::into_inner).entry(outcome).or_default() +=
            1;
        self.claim.observe(took);
    }

    /// The health probe now (`None`: the backend has none).
    #[must_use]
    pub fn health(&self) -> Option<HealthResponse> {
        let prober = self.sources.lock().unwrap_or_else(PoisonError::into_inner).prober.clone();
        prober.map(|p| p())
    }

    /// The journal's durable size and generation (compactions), whether it
    /// failed, and what the rollback anchor records (JSON, for `/health`).
    #[must_use]
    pub fn journal(&self) -> serde_json::Value {
        let s = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(g) = &s.group else {
            return serde_json::Value::Null;
        };
        let head = g.durable_head();
        serde_json::json!({
            "bytes": head.length,
            "generation": head.generation,
            "failed": g.failed(),
            "syncs": g.syncs(),
            "anchorRecordedBytes": s.anchor.as_ref().map(|a| a.recorded().length),
        })
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let _ = writeln!(
            out,
            "# HELP tee_signer_responses_total Responses by command and outcome (ok, or the refusal's reason).\n\
             # TYPE tee_signer_responses_total counter"
        );
        for ((command, outcome), n) in
            self.responses.lock().unwrap_or_else(PoisonError::into_inner).iter()
        {
            let _ = writeln!(
                out,
                "tee_signer_responses_total{{command=\"{command}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut out,
            "tee_signer_connections_total",
            "Connections accepted.",
            load(&self.accepted),
        );
        counter(
            &mut out,
            "tee_signer_connections_turned_away_total",
            "Connections closed at once: every place (or the peer's) taken.",
            load(&self.turned_away),
        );
        gauge(
            &mut out,
            "tee_signer_connections_open",
            "Connections open.",
            load(&self.open) as f64,
        );
        counter(
            &mut out,
            "tee_signer_bad_frames_total",
            "Frames that did not read (CRC, COBS, length).",
            load(&self.bad_frames),
        );
        self.commit.write(
            &mut out,
            "tee_signer_commit_wait_seconds",
            "How long a reply waited for the journal's group commit (and the rollback anchor).",
        );
        let _ = writeln!(
            out,
            "# HELP tee_signer_marks_claims_total Claims of the shared marks by outcome.\n\
             # TYPE tee_signer_marks_claims_total counter"
        );
        for (outcome, n) in self.claims.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "tee_signer_marks_claims_total{{outcome=\"{outcome}\"}} {n}");
        }
        self.claim.write(
            &mut out,
            "tee_signer_marks_claim_seconds",
            "A claim's round trip to the shared marks database.",
        );
        let s = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(g) = &s.group {
            let head = g.durable_head();
            counter(
                &mut out,
                "tee_signer_journal_syncs_total",
                "fsyncs of the state journal (each covers a group of replies).",
                g.syncs(),
            );
            gauge(
                &mut out,
                "tee_signer_journal_bytes",
                "Durable bytes of the state journal.",
                head.length as f64,
            );
            gauge(
                &mut out,
                "tee_signer_journal_generation",
                "Compactions of the state journal so far.",
                head.generation as f64,
            );
            gauge(
                &mut out,
                "tee_signer_journal_failed",
                "1 once a journal write or sync failed (signing stops until restart).",
                f64::from(u8::from(g.failed())),
            );
        }
        if let Some(a) = &s.anchor {
            let r = a.recorded();
            gauge(
                &mut out,
                "tee_signer_anchor_recorded_bytes",
                "The journal length the marks database records for this directory (the rollback anchor).",
                r.length as f64,
            );
            gauge(
                &mut out,
                "tee_signer_anchor_recorded_generation",
                "The journal generation the rollback anchor records.",
                r.generation as f64,
            );
        }
        if let Some(started) = s.started {
            gauge(
                &mut out,
                "tee_signer_uptime_seconds",
                "Seconds since the signer started.",
                started.elapsed().as_secs_f64(),
            );
        }
        let prober = s.prober.clone();
        drop(s);
        if let Some(p) = prober {
            let h = p();
            let _ = writeln!(
                out,
                "# HELP tee_signer_up Whether a part signing needs answered (1), failed (0); absent when not used.\n\
                 # TYPE tee_signer_up gauge"
            );
            for (part, probe) in [("dstack", h.dstack), ("marks", h.marks), ("journal", h.storage)]
            {
                if probe != Probe::NotUsed {
                    let _ = writeln!(
                        out,
                        "tee_signer_up{{part=\"{part}\"}} {}",
                        u8::from(probe == Probe::Ok)
                    );
                }
            }
        }
        out
    }
}
