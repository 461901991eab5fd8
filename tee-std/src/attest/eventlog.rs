//! dstack's TDX event log: what RTMR3 measures (the app id, its compose
//! hash, the key provider, ...), replayed and checked against the quote.
//!
//! Format (dstack `cc-eventlog`): a JSON array of events
//! `{"imr": 3, "event_type": 134217729, "digest": hex, "event": name,
//! "event_payload": hex}`. For dstack runtime events (type `0x08000001`) the
//! digest is `sha384(type_le ‖ ":" ‖ name ‖ ":" ‖ payload)` (version 1) or
//! `sha384(canonical JSON {"name","payload" (hex),"type"})` (version 2), and
//! an RTMR is replayed as `rtmr = sha384(rtmr ‖ digest)` from 48 zero bytes.

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
}

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
        };
        if let Ok(d) = e.computed_digest(0) {
            e.digest = d.to_vec();
        }
        e
    }

    /// The digest this event's content gives (runtime events), or its
    /// recorded digest (other events, whose pre-image the log does not keep).
    pub fn computed_digest(&self, index: usize) -> Result<[u8; 48], EventLogError> {
        if self.event_type != DSTACK_RUNTIME_EVENT_TYPE {
            return self
                .digest
                .as_slice()
                .try_into()
                .map_err(|_| EventLogError::BadDigest { index, len: self.digest.len() });
        }
        let mut h = Sha384::new();
        match self.version.unwrap_or(1) {
            1 => {
                h.update(DSTACK_RUNTIME_EVENT_TYPE.to_le_bytes());
                h.update(b":");
                h.update(self.event.as_bytes());
                h.update(b":");
                h.update(&self.event_payload);
            }
            2 => {
                // RFC 8785 canonical JSON of this object: keys sorted, no
                // whitespace; serde_json writes exactly that for these types.
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
                let json =
                    serde_json::to_string(&c).map_err(|e| EventLogError::Json(e.to_string()))?;
                h.update(json.as_bytes());
            }
            version => return Err(EventLogError::UnknownVersion { index, version }),
        }
        Ok(h.finalize().into())
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

/// The payload of the last runtime event named `name` in register 3.
#[must_use]
pub fn payload<'e>(events: &'e [Event], name: &str) -> Option<&'e [u8]> {
    events
        .iter()
        .rev()
        .find(|e| e.imr == 3 && e.event_type == DSTACK_RUNTIME_EVENT_TYPE && e.event == name)
        .map(|e| e.event_payload.as_slice())
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
        assert_eq!(payload(&log, "compose-hash"), Some(&[2u8; 32][..]));
        let mut forged = log.clone();
        forged[1].event_payload = vec![3; 32];
        assert!(matches!(replay(&forged, 3), Err(EventLogError::DigestMismatch { index: 1, .. })));
    }
}
