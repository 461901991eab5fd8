//! dstack's `VersionedAttestation`, what its guest agent's `Attest` returns
//! (`/v1/Attest` on dstack 0.6; `/Attest` on 0.5): a platform's evidence
//! (for TDX the quote and its event log) with what the dstack stack adds
//! (the 64 bytes of `report_data`, the runtime events, the VM config).
//!
//! The encoding is told by its first byte (dstack `dstack-attest`):
//!
//! - `0x00`: V0, SCALE: `00` (V0) ‖ `00` (a dstack TDX quote) ‖ quote ‖
//!   event log (`imr: u32 LE`, `event_type: u32 LE`, digest, name,
//!   payload) ‖ platform runtime events ‖ `report_data` (64) ‖ VM config;
//! - a MessagePack map: V1, `{version: 1, platform: {kind, data},
//!   stack: {kind, data}}` as `rmp_serde::to_vec_named` writes it. Byte
//!   fields are MessagePack arrays of integers (`quote`, `report_data`) or
//!   `bin` (event digests and payloads); both forms are read.
//!
//! Only the `tdx` platform carries what this verifier checks; `gcp-tdx`
//! (whose TPM quote it does not bind), `nitro-enclave`, `aws-nitro-tpm` and
//! `sev-snp` are [`AttestationError::UnsupportedPlatform`]. The stack's
//! `report_data` must be the quote's, and its runtime events the log's
//! RTMR3 events, or the attestation is [`AttestationError::Inconsistent`]:
//! the quote is what is verified, so a stack section that says something
//! else is refused rather than believed.

use serde::{Deserialize, Serialize};

use super::eventlog::{DSTACK_RUNTIME_EVENT_TYPE, Event};

/// The largest attestation read (a TDX quote with its certificates and an
/// event log are far below it).
pub const MAX_ATTESTATION: usize = 1 << 20;

/// A dstack TDX attestation, as the verifier takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxAttestation {
    /// Which encoding it came in: 0 (SCALE) or 1 (MessagePack).
    pub version: u64,
    /// The TDX quote.
    pub quote: Vec<u8>,
    /// The event log (for V1, dstack strips it to RTMR3's runtime events
    /// and the ACPI data events; runtime events come without a digest,
    /// which the content gives).
    pub event_log: Vec<Event>,
    /// The 64 bytes the caller asked to bind (the quote's `report_data`).
    pub report_data: [u8; 64],
    /// The VM configuration (JSON, the VMM's), as the stack states it.
    pub vm_config: String,
}

/// Why bytes are not a dstack TDX attestation this verifier checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// Empty, or over [`MAX_ATTESTATION`].
    #[error("an attestation is 1 to {MAX_ATTESTATION} bytes, not {0}")]
    Size(usize),
    /// Not a well-formed V0 or V1 encoding.
    #[error("malformed dstack attestation: {0}")]
    Malformed(String),
    /// A V1 attestation of another version.
    #[error("unsupported dstack attestation version {0} (this verifier reads 0 and 1)")]
    UnsupportedVersion(u64),
    /// Evidence of a platform this verifier does not check.
    #[error("unsupported platform {0:?}: this verifier checks Intel TDX (kind \"tdx\") only")]
    UnsupportedPlatform(String),
    /// A stack this verifier does not know.
    #[error("unsupported stack {0:?}: this verifier reads kind \"dstack\"")]
    UnsupportedStack(String),
    /// The stack's statements disagree with the quote and its log.
    #[error("inconsistent dstack attestation: {0}")]
    Inconsistent(&'static str),
}

/// Parses a `VersionedAttestation` (either encoding).
pub fn parse(bytes: &[u8]) -> Result<TdxAttestation, AttestationError> {
    if bytes.is_empty() || bytes.len() > MAX_ATTESTATION {
        return Err(AttestationError::Size(bytes.len()));
    }
    let a = if bytes.first() == Some(&0) { parse_v0(bytes)? } else { parse_v1(bytes)? };
    check_consistent(&a)?;
    Ok(a)
}

/// The report data must be the quote's (offset 568 of a v4 TDX quote,
/// 48-byte header then the TD report's last 64 bytes).
fn check_consistent(a: &TdxAttestation) -> Result<(), AttestationError> {
    let quoted = tee_core::quote::Quote::parse(&a.quote)
        .map_err(|e| AttestationError::Malformed(format!("quote: {e:?}")))?;
    if quoted.report.report_data != &a.report_data {
        return Err(AttestationError::Inconsistent("report_data differs from the quote's"));
    }
    Ok(())
}

// ---------------------------------------------------------------- V1 (MessagePack)

/// Bytes as dstack's MessagePack has them: an array of integers (a plain
/// `Vec<u8>` through serde) or `bin`; written as the former, as dstack does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| Bytes(b.into_vec()))
    }
}

/// A `bin` field (`serde_human_bytes` in a binary format); arrays are read too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bin(Vec<u8>);

impl Serialize for Bin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bin, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| Bin(b.into_vec()))
    }
}

#[derive(Debug, Deserialize)]
struct V1 {
    version: u64,
    platform: Tagged<serde::de::IgnoredAny>,
    stack: Tagged<serde::de::IgnoredAny>,
}

/// `{kind, data}`, the data read once the kind is known.
#[derive(Debug, Serialize, Deserialize)]
struct Tagged<T> {
    kind: String,
    data: T,
}

#[derive(Debug, Serialize, Deserialize)]
struct V1Tdx {
    platform: Tagged<TdxData>,
    stack: Tagged<DstackData>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TdxData {
    quote: Bytes,
    event_log: Vec<TdxEvent>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TdxEvent {
    imr: u32,
    event_type: u32,
    #[serde(default)]
    digest: Bin,
    event: String,
    event_payload: Bin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preimage: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DstackData {
    report_data: Bytes,
    runtime_events: Vec<RuntimeEvent>,
    config: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct RuntimeEvent {
    event: String,
    payload: Bin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
}

fn from_msgpack<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AttestationError> {
    let mut cursor = std::io::Cursor::new(bytes);
    let mut de = rmp_serde::Deserializer::new(&mut cursor);
    let v = T::deserialize(&mut de).map_err(|e| AttestationError::Malformed(e.to_string()))?;
    drop(de);
    if cursor.position() != bytes.len() as u64 {
        return Err(AttestationError::Malformed("trailing bytes after the attestation".into()));
    }
    Ok(v)
}

fn parse_v1(bytes: &[u8]) -> Result<TdxAttestation, AttestationError> {
    let outer: V1 = from_msgpack(bytes)?;
    if outer.version != 1 {
        return Err(AttestationError::UnsupportedVersion(outer.version));
    }
    if outer.platform.kind != "tdx" {
        return Err(AttestationError::UnsupportedPlatform(outer.platform.kind));
    }
    if outer.stack.kind != "dstack" {
        return Err(AttestationError::UnsupportedStack(outer.stack.kind));
    }
    let v: V1Tdx = from_msgpack(bytes)?;
    let report_data: [u8; 64] = v
        .stack
        .data
        .report_data
        .0
        .try_into()
        .map_err(|_| AttestationError::Malformed("stack.report_data is not 64 bytes".into()))?;
    let event_log: Vec<Event> = v
        .platform
        .data
        .event_log
        .into_iter()
        .map(|e| Event {
            imr: e.imr,
            event_type: e.event_type,
            digest: e.digest.0,
            event: e.event,
            event_payload: e.event_payload.0,
            version: e.version,
            preimage: e.preimage,
        })
        .collect();
    // The stack's runtime events are the log's RTMR3 runtime events, said
    // twice: they must agree.
    let logged =
        event_log.iter().filter(|e| e.imr == 3 && e.event_type == DSTACK_RUNTIME_EVENT_TYPE);
    let stated = &v.stack.data.runtime_events;
    if logged.clone().count() != stated.len()
        || !logged.zip(stated).all(|(l, s)| {
            l.event == s.event
                && l.event_payload == s.payload.0
                && l.version.unwrap_or(1) == s.version.unwrap_or(1)
        })
    {
        return Err(AttestationError::Inconsistent(
            "the stack's runtime events differ from the event log's",
        ));
    }
    Ok(TdxAttestation {
        version: 1,
        quote: v.platform.data.quote.0,
        event_log,
        report_data,
        vm_config: v.stack.data.config,
    })
}

/// Encodes a V1 TDX attestation as dstack does (the simulated guest agent's
/// `/v1/Attest`): runtime events without their digest, other events
/// without their payload, as dstack strips them.
#[must_use]
pub fn encode_v1(
    quote: &[u8],
    event_log: &[Event],
    report_data: &[u8; 64],
    config: &str,
) -> Vec<u8> {
    let runtime = |e: &&Event| e.imr == 3 && e.event_type == DSTACK_RUNTIME_EVENT_TYPE;
    let v = V1Tdx {
        platform: Tagged {
            kind: "tdx".into(),
            data: TdxData {
                quote: Bytes(quote.to_vec()),
                event_log: event_log
                    .iter()
                    .map(|e| {
                        let rt = runtime(&e);
                        TdxEvent {
                            imr: e.imr,
                            event_type: e.event_type,
                            digest: Bin(if rt { Vec::new() } else { e.digest.clone() }),
                            event: e.event.clone(),
                            event_payload: Bin(if rt {
                                e.event_payload.clone()
                            } else {
                                Vec::new()
                            }),
                            version: e.version.filter(|v| *v != 1),
                            preimage: e.preimage.clone(),
                        }
                    })
                    .collect(),
            },
        },
        stack: Tagged {
            kind: "dstack".into(),
            data: DstackData {
                report_data: Bytes(report_data.to_vec()),
                runtime_events: event_log
                    .iter()
                    .filter(runtime)
                    .map(|e| RuntimeEvent {
                        event: e.event.clone(),
                        payload: Bin(e.event_payload.clone()),
                        version: e.version.filter(|v| *v != 1),
                    })
                    .collect(),
                config: config.into(),
            },
        },
    };
    #[derive(Serialize)]
    struct Out<'a> {
        version: u64,
        platform: &'a Tagged<TdxData>,
        stack: &'a Tagged<DstackData>,
    }
    // Serializing plain data to a Vec cannot fail.
    rmp_serde::to_vec_named(&Out { version: 1, platform: &v.platform, stack: &v.stack })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- V0 (SCALE)

struct Scale<'a>(&'a [u8]);

impl<'a> Scale<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AttestationError> {
        if n > self.0.len() {
            return Err(AttestationError::Malformed("truncated V0 attestation".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, AttestationError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AttestationError> {
        // `take` gave exactly N bytes.
        Ok(self.take(N)?.try_into().unwrap_or([0; N]))
    }

    fn u32(&mut self) -> Result<u32, AttestationError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// SCALE's compact integer, as a length bounded by what is left.
    fn len(&mut self) -> Result<usize, AttestationError> {
        let first = self.u8()?;
        let n = match first & 3 {
            0 => u64::from(first >> 2),
            1 => u64::from(u16::from_le_bytes([first, self.u8()?]) >> 2),
            2 => {
                let [b0, b1, b2] = self.array()?;
                u64::from(u32::from_le_bytes([first, b0, b1, b2]) >> 2)
            }
            _ => {
                let len = usize::from(first >> 2) + 4;
                if len > 8 {
                    return Err(AttestationError::Malformed("length over 64 bits".into()));
                }
                let mut buf = [0u8; 8];
                buf.iter_mut().zip(self.take(len)?).for_each(|(o, i)| *o = *i);
                u64::from_le_bytes(buf)
            }
        };
        // Every element takes at least one byte.
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.0.len())
            .ok_or_else(|| AttestationError::Malformed("a length past the end".into()))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, AttestationError> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self) -> Result<String, AttestationError> {
        String::from_utf8(self.bytes()?)
            .map_err(|_| AttestationError::Malformed("a name that is not UTF-8".into()))
    }
}

fn parse_v0(bytes: &[u8]) -> Result<TdxAttestation, AttestationError> {
    let mut s = Scale(bytes);
    s.u8()?; // 0: V0
    match s.u8()? {
        0 => {}
        other => {
            return Err(AttestationError::UnsupportedPlatform(format!(
                "V0 attestation kind {other}"
            )));
        }
    }
    let quote = s.bytes()?;
    let n = s.len()?;
    // Grown as events read, never sized by the claimed count.
    let mut event_log = Vec::new();
    for _ in 0..n {
        let imr = s.u32()?;
        let event_type = s.u32()?;
        let digest = s.bytes()?;
        let event = s.string()?;
        let event_payload = s.bytes()?;
        event_log.push(Event {
            imr,
            event_type,
            digest,
            event,
            event_payload,
            version: None,
            preimage: None,
        });
    }
    // Platform runtime events (name, payload): dstack writes them only for
    // non-TDX platforms; on TDX they are the log's.
    let extra = s.len()?;
    for _ in 0..extra {
        s.string()?;
        s.bytes()?;
    }
    let report_data: [u8; 64] = s.array()?;
    let vm_config = s.string()?;
    if !s.0.is_empty() {
        return Err(AttestationError::Malformed("trailing bytes after the attestation".into()));
    }
    Ok(TdxAttestation { version: 0, quote, event_log, report_data, vm_config })
}
