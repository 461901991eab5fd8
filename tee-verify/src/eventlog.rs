//! dstack's TDX event log: what RTMR3 measures (the app id, its compose
//! hash, the key provider, ...), replayed and checked against the quote.
//!
//! Format (dstack `cc-eventlog`): a JSON array of events
//! `{"imr": 3, "event_type": 134217729, "digest": hex, "event": name,
//! "event_payload": hex}`. For dstack runtime events (type `0x08000001`) the
//! digest is `sha384(type_le ‖ ":" ‖ name ‖ ":" ‖ payload)` (version 1) or
//! `sha384(canonical JSON {"name","payload" (hex),"type"})` (version 2), and
//! an RTMR is replayed as `rtmr = sha384(rtmr ‖ digest)` from 48 zero bytes.
//! dstack's current guest agent may add `"version": 2` and the digest's
//! `"preimage"` (hex) to an event; a preimage present must be exactly the
//! bytes the event's content gives.
//!
//! Which events say who the app is: dstack's boot sequence measures the
//! identity events (`app-id`, `compose-hash`, `instance-id`, `key-provider`,
//! `os-image-hash`, ...) and then `system-ready`. After `system-ready` the
//! app itself can append any event through `EmitEvent`, with any name, and
//! the log still replays to RTMR3. So identity is read only from the boot
//! part ([`BootLog`]): once, before the first `system-ready`; a log without
//! `system-ready`, or an identity event twice before it, does not say who
//! the app is. Events after it are the app's own ([`BootLog::runtime`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

/// dstack's runtime event type.
pub const DSTACK_RUNTIME_EVENT_TYPE: u32 = 0x0800_0001;

/// One event of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The measurement register it extends (0-3).
    pub imr: u32,
    /// TCG event type, or [`DSTACK_RUNTIME_EVENT_TYPE`].
    pub event_type: u32,
    /// The digest extended into the register.
    #[serde(with = "hex_vec", default)]
    pub digest: Vec<u8>,
    /// Event name (runtime events).
    #[serde(default)]
    pub event: String,
    /// Event payload.
    #[serde(with = "hex_vec", default)]
    pub event_payload: Vec<u8>,
    /// Digest format version of a runtime event (1 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The digest's pre-image, hex (dstack's v2 form); checked against the
    /// content when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preimage: Option<String>,
}

/// The runtime events dstack measures at boot that say who the app is:
/// each may appear at most once before `system-ready`.
pub const IDENTITY_EVENTS: [&str; 6] =
    ["app-id", "compose-hash", "instance-id", "key-provider", "os-image-hash", "mr-kms"];

/// The event that ends the boot-time part of the log.
pub const SYSTEM_READY: &str = "system-ready";

/// Why an event log does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventLogError {
    /// Not the JSON event log format.
    #[error("event log is not valid JSON: {0}")]
    Json(String),
    /// A runtime event's digest does not match its name and payload.
    #[error("event {index} ({name}): digest does not match its content")]
    DigestMismatch {
        /// Position in the log.
        index: usize,
        /// Event name.
        name: String,
    },
    /// A digest is not 48 bytes.
    #[error("event {index}: digest is {len} bytes, not 48")]
    BadDigest {
        /// Position in the log.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// An unknown digest format version.
    #[error("event {index}: unknown digest version {version}")]
    UnknownVersion {
        /// Position in the log.
        index: usize,
        /// The version.
        version: u32,
    },
    /// A runtime event's stated pre-image is not what its content gives.
    #[error("event {index} ({name}): preimage does not match its content")]
    PreimageMismatch {
        /// Position in the log.
        index: usize,
        /// Event name.
        name: String,
    },
    /// No `system-ready` event: the log does not say where boot ended, so
    /// nothing in it can be taken as the app's identity.
    #[error("no system-ready event: the boot-time identity cannot be told from app-emitted events")]
    NoSystemReady,
    /// An identity event appears twice before `system-ready`.
    #[error(
        "identity event {name} appears twice before system-ready (events {first} and {second})"
    )]
    DuplicateIdentity {
        /// The event name.
        name: String,
        /// Position of the first.
        first: usize,
        /// Position of the second.
        second: usize,
    },
}

impl Event {
    /// A dstack runtime event (version 1 digest), as dstack emits it.
    #[must_use]
    pub fn runtime(name: &str, payload: &[u8]) -> Event {
        let mut e = Event {
            imr: 3,
            event_type: DSTACK_RUNTIME_EVENT_TYPE,
            digest: Vec::new(),
            event: name.to_owned(),
            event_payload: payload.to_vec(),
            version: None,
            preimage: None,
        };
        if let Ok(d) = e.computed_digest(0) {
            e.digest = d.to_vec();
        }
        e
    }

    /// The bytes a runtime event's digest hashes: version 1
    /// `type_le ‖ ":" ‖ name ‖ ":" ‖ payload`, version 2 the RFC 8785
    /// canonical JSON `{"name","payload" (hex),"type"}`.
    pub fn preimage_bytes(&self, index: usize) -> Result<Vec<u8>, EventLogError> {
        match self.version.unwrap_or(1) {
            1 => Ok([
                &DSTACK_RUNTIME_EVENT_TYPE.to_le_bytes()[..],
                b":",
                self.event.as_bytes(),
                b":",
                &self.event_payload,
            ]
            .concat()),
            2 => {
                // Keys sorted, no whitespace: serde_json writes exactly the
                // canonical form for these types.
                #[derive(Serialize)]
                struct Canonical<'a> {
                    name: &'a str,
                    payload: String,
                    r#type: u32,
                }
                let c = Canonical {
                    name: &self.event,
                    payload: hex::encode(&self.event_payload),
                    r#type: DSTACK_RUNTIME_EVENT_TYPE,
                };
                serde_json::to_vec(&c).map_err(|e| EventLogError::Json(e.to_string()))
            }
            version => Err(EventLogError::UnknownVersion { index, version }),
        }
    }

    /// The digest this event's content gives (runtime events), or its
    /// recorded digest (other events, whose pre-image the log does not keep).
    /// A stated pre-image must be the content's.
    pub fn computed_digest(&self, index: usize) -> Result<[u8; 48], EventLogError> {
        if self.event_type != DSTACK_RUNTIME_EVENT_TYPE {
            return self
                .digest
                .as_slice()
                .try_into()
                .map_err(|_| EventLogError::BadDigest { index, len: self.digest.len() });
        }
        let preimage = self.preimage_bytes(index)?;
        if let Some(stated) = &self.preimage {
            let digits = stated.strip_prefix("0x").unwrap_or(stated);
            if hex::decode(digits).ok().as_deref() != Some(&preimage[..]) {
                let name = self.event.clone();
                return Err(EventLogError::PreimageMismatch { index, name });
            }
        }
        Ok(Sha384::digest(&preimage).into())
    }

    fn is_runtime(&self) -> bool {
        self.imr == 3 && self.event_type == DSTACK_RUNTIME_EVENT_TYPE
    }
}

/// Parses dstack's JSON event log.
pub fn parse(json: &str) -> Result<Vec<Event>, EventLogError> {
    serde_json::from_str(json).map_err(|e| EventLogError::Json(e.to_string()))
}

/// Replays register `imr` from `events`, checking every runtime event's
/// digest against its content on the way.
pub fn replay(events: &[Event], imr: u32) -> Result<[u8; 48], EventLogError> {
    let mut mr = [0u8; 48];
    for (index, e) in events.iter().enumerate().filter(|(_, e)| e.imr == imr) {
        let digest = e.computed_digest(index)?;
        if e.event_type == DSTACK_RUNTIME_EVENT_TYPE && !e.digest.is_empty() && e.digest != digest {
            return Err(EventLogError::DigestMismatch { index, name: e.event.clone() });
        }
        let mut h = Sha384::new();
        h.update(mr);
        h.update(digest);
        mr = h.finalize().into();
    }
    Ok(mr)
}

/// An event log read as dstack defines it: the identity measured at boot,
/// and what the app appended after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootLog<'e> {
    /// Each identity event found before `system-ready`: name and payload.
    pub identity: Vec<(&'static str, &'e [u8])>,
    /// The runtime events after `system-ready`, in order: never identity.
    pub runtime: Vec<&'e Event>,
}

impl<'e> BootLog<'e> {
    /// Splits `events` at the first `system-ready` of register 3. Fails if
    /// there is none, or if an identity event appears twice before it.
    pub fn read(events: &'e [Event]) -> Result<BootLog<'e>, EventLogError> {
        let runtime: Vec<(usize, &Event)> =
            events.iter().enumerate().filter(|(_, e)| e.is_runtime()).collect();
        let ready = runtime
            .iter()
            .position(|(_, e)| e.event == SYSTEM_READY)
            .ok_or(EventLogError::NoSystemReady)?;
        let (boot, after) = runtime.split_at(ready);
        let mut identity: Vec<(&'static str, &'e [u8])> = Vec::new();
        let mut seen: Vec<(&'static str, usize)> = Vec::new();
        for &(index, e) in boot {
            let Some(&name) = IDENTITY_EVENTS.iter().find(|n| **n == e.event) else { continue };
            if let Some(&(_, first)) = seen.iter().find(|(n, _)| *n == name) {
                return Err(EventLogError::DuplicateIdentity {
                    name: name.to_owned(),
                    first,
                    second: index,
                });
            }
            seen.push((name, index));
            identity.push((name, &e.event_payload));
        }
        // `after` starts with system-ready itself.
        let runtime = after.iter().skip(1).map(|&(_, e)| e).collect();
        Ok(BootLog { identity, runtime })
    }

    /// The payload of identity event `name`, if the boot measured it.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'e [u8]> {
        self.identity.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }
}

/// Bytes as dstack writes them in its event log: bare lowercase hex (no
/// `0x`); reading accepts `0x` too.
mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.strip_prefix("0x").unwrap_or(&s);
        hex::decode(digits).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// dstack's own tests (cc-eventlog `runtime_events.rs`) pin the v2
    /// canonical JSON: `{"name":"compose-hash","payload":"abcd","type":134217729}`.
    #[test]
    fn digests_follow_dstack() {
        let v1 = Event::runtime("app-id", &[0xde, 0xad, 0xbe, 0xef]);
        let mut h = Sha384::new();
        h.update(0x0800_0001u32.to_le_bytes());
        h.update(b":app-id:");
        h.update([0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(v1.digest, h.finalize().to_vec());

        let mut v2 = Event::runtime("compose-hash", &[0xab, 0xcd]);
        v2.version = Some(2);
        let expected: [u8; 48] =
            Sha384::digest(br#"{"name":"compose-hash","payload":"abcd","type":134217729}"#).into();
        assert_eq!(v2.computed_digest(0).unwrap(), expected);
    }

    #[test]
    fn replay_and_tamper() {
        let log =
            vec![Event::runtime("app-id", &[1; 20]), Event::runtime("compose-hash", &[2; 32])];
        let mut expected = [0u8; 48];
        for e in &log {
            let mut h = Sha384::new();
            h.update(expected);
            h.update(&e.digest);
            expected = h.finalize().into();
        }
        assert_eq!(replay(&log, 3).unwrap(), expected);
        let json = serde_json::to_string(&log).unwrap();
        assert_eq!(parse(&json).unwrap(), log);
        let mut forged = log.clone();
        forged[1].event_payload = vec![3; 32];
        assert!(matches!(replay(&forged, 3), Err(EventLogError::DigestMismatch { index: 1, .. })));
    }
}
