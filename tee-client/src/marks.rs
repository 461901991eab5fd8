//! Marks that move: the interchange `tee-signer marks export` writes and
//! `marks import` reads.
//!
//! An export is every key's anti-replay mark (its highest signed sequence
//! and the commitment to what it signed there), each in the device's own
//! signed `AdminState` statement, so the file needs no protection of its
//! own: a changed mark no longer verifies. An import raises each key's mark
//! on the target device to the exported one ([`ImportMark`]); marks never
//! go down. The device takes its own statements without the admin (a state
//! directory put back from an older backup); any other device's only with
//! the admin's authorization.
//!
//! ```json
//! {
//!   "format": "erc8004-tee-signer/marks/1",
//!   "deviceId": "0x…", "identity": "0x…",
//!   "marks": [{ "slot": 0, "key": "0x…", "sequence": "5", "commitment": "0x…",
//!               "nonce": "0x…", "lastCounter": "3", "lastPayload": "0x…",
//!               "policyHash": "0x…", "signature": "0x…" }]
//! }
//! ```
//! `sequence` and `lastCounter` are decimal strings (u64); `sequence` is
//! `null` for a key that has not signed.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use tee_core::protocol::{AdminAuth, AdminStatement, DeviceInfo, ImportMark, MarkImported};
use tee_core::signer::Signature;
use tee_core::{Address, B256, SigningKey};

use super::admin::{Confirm, Trust};
use super::{Client, ClientError};

/// The interchange's format tag.
pub const FORMAT: &str = "erc8004-tee-signer/marks/1";

/// Every key's mark on one device, as its identity stated them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MarksExport {
    /// [`FORMAT`].
    pub format: String,
    /// The exporting device's id (its admin domain's salt).
    pub device_id: B256,
    /// The exporting device's identity address, which signed every mark.
    pub identity: Address,
    /// One entry per slot holding a key.
    pub marks: Vec<ExportedMark>,
}

/// One key's mark: the device's signed statement of its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportedMark {
    /// The slot on the exporting device.
    pub slot: u8,
    /// The key's address.
    pub key: Address,
    /// The highest sequence the key signed at (`None`: none yet).
    #[serde(with = "opt_decimal")]
    pub sequence: Option<u64>,
    /// The mark's commitment (zero when `sequence` is `None`).
    pub commitment: B256,
    /// The statement's nonce.
    pub nonce: B256,
    /// The statement's admin counter.
    #[serde(with = "decimal")]
    pub last_counter: u64,
    /// The statement's last admin payload hash.
    pub last_payload: B256,
    /// The slot's policy hash.
    pub policy_hash: B256,
    /// The identity's signature over the statement (`0x` ‖ `r ‖ s ‖ v` in hex).
    pub signature: Signature,
}

/// Why an export cannot be read, or a mark not imported.
#[derive(Debug, thiserror::Error)]
pub enum MarksError {
    /// Not this interchange.
    #[error("not a marks export: format {0:?}, expected {FORMAT:?}")]
    Format(String),
    /// A mark's signature is not the export's identity's.
    #[error(
        "the mark of key {key} (slot {slot}) is not signed by the export's identity {identity}: \
         the file was changed or is not this device's"
    )]
    BadSignature {
        /// The exported slot.
        slot: u8,
        /// The key.
        key: Address,
        /// The identity the export names.
        identity: Address,
    },
    /// An export from another identity, and no admin key to authorize it.
    #[error(
        "the export is signed by identity {exporter} of device {device_id}, not by this signer \
         ({identity}): importing another device's marks needs the admin key (--admin-key-file)"
    )]
    NeedsAdmin {
        /// The exporting identity.
        exporter: Address,
        /// The exporting device.
        device_id: B256,
        /// The target signer's identity.
        identity: Address,
    },
    /// The device answered, but its signed statement afterwards shows a
    /// lower mark than the one imported.
    #[error("slot {slot}: the device states mark {stated}, below the imported {imported}")]
    NotRaised {
        /// The slot.
        slot: u8,
        /// What the device states.
        stated: u64,
        /// What was imported.
        imported: u64,
    },
    /// Talking to the signer.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What became of one exported mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportOutcome {
    /// The key.
    pub key: Address,
    /// The slot here that holds it (`None`: no slot does; put the key back
    /// first, `derive-key` with its path).
    pub slot: Option<u8>,
    /// The exported mark.
    #[serde(with = "opt_decimal")]
    pub imported: Option<u64>,
    /// The slot's mark now, as the device's signed statement gives it.
    #[serde(with = "opt_decimal")]
    pub mark: Option<u64>,
    /// Whether the import raised it.
    pub raised: bool,
}

impl ExportedMark {
    fn statement(&self) -> AdminStatement {
        AdminStatement {
            nonce: self.nonce,
            last_counter: self.last_counter,
            last_payload: self.last_payload,
            slot: self.slot,
            key: self.key,
            policy_hash: self.policy_hash,
            sequence: self.sequence.unwrap_or(0),
            commitment: if self.sequence.is_some() { self.commitment } else { B256::ZERO },
        }
    }
}

impl MarksExport {
    /// Parses an export and checks every mark's signature by its identity.
    pub fn parse(text: &str) -> Result<MarksExport, MarksError> {
        let export: MarksExport =
            serde_json::from_str(text).map_err(|e| MarksError::Format(format!("{e}")))?;
        export.check()?;
        Ok(export)
    }

    /// Checks the format and every mark's signature.
    pub fn check(&self) -> Result<(), MarksError> {
        if self.format != FORMAT {
            return Err(MarksError::Format(self.format.clone()));
        }
        for m in &self.marks {
            let digest = m.statement().digest(&self.device_id);
            if m.signature.recover_address(&digest) != Ok(self.identity) {
                return Err(MarksError::BadSignature {
                    slot: m.slot,
                    key: m.key,
                    identity: self.identity,
                });
            }
        }
        Ok(())
    }
}

impl Confirm for ImportMark {
    fn agrees(&self, r: &MarkImported, s: &AdminStatement) -> bool {
        r.slot == self.slot
            && s.key == self.statement.key
            && (!self.statement.has_mark() || s.sequence >= self.statement.sequence)
    }
}

impl<S: Read + Write> Client<S> {
    /// Every key's mark, each in a statement the device's identity signed
    /// (checked against `trust`, as every admin statement).
    pub fn export_marks(&mut self, trust: &mut Trust) -> Result<MarksExport, MarksError> {
        let slots = self.call(&DeviceInfo)?.slots;
        let mut marks = Vec::new();
        let mut identity = None;
        for slot in 0..slots {
            let r = self.admin_state(slot, trust)?;
            identity = Some(r.identity);
            let s = r.statement;
            if s.key == Address::ZERO {
                continue;
            }
            marks.push(ExportedMark {
                slot,
                key: s.key,
                sequence: s.has_mark().then_some(s.sequence),
                commitment: s.commitment,
                nonce: s.nonce,
                last_counter: s.last_counter,
                last_payload: s.last_payload,
                policy_hash: s.policy_hash,
                signature: r.signature,
            });
        }
        let identity = identity.or(trust.identity).unwrap_or(Address::ZERO);
        Ok(MarksExport { format: FORMAT.into(), device_id: trust.device_id, identity, marks })
    }

    /// Raises each exported key's mark on this device (the slot holding
    /// the key, wherever it is), confirmed by the device's signed statement
    /// afterwards. The device's own export needs no admin; another's needs
    /// `admin` ([`MarksError::NeedsAdmin`] otherwise, before anything is
    /// sent).
    pub fn import_marks(
        &mut self,
        export: &MarksExport,
        admin: Option<&SigningKey>,
        trust: &mut Trust,
    ) -> Result<Vec<ImportOutcome>, MarksError> {
        export.check()?;
        let info = self.call(&DeviceInfo)?;
        let identity = self.admin_state(tee_core::protocol::DEVICE_SLOT, trust)?.identity;
        let own = export.identity == identity && export.device_id == info.device_id;
        if !own && admin.is_none() {
            return Err(MarksError::NeedsAdmin {
                exporter: export.identity,
                device_id: export.device_id,
                identity,
            });
        }
        // Which slot holds which key (unauthenticated: the device itself
        // refuses a mark for another key, and the statement confirms).
        let mut holder = std::collections::HashMap::new();
        for k in self.keys()? {
            holder.entry(k.address).or_insert(k.slot);
        }
        let mut out = Vec::new();
        for m in &export.marks {
            let Some(&slot) = holder.get(&m.key) else {
                out.push(ImportOutcome {
                    key: m.key,
                    slot: None,
                    imported: m.sequence,
                    mark: None,
                    raised: false,
                });
                continue;
            };
            let cmd = ImportMark {
                slot,
                statement: m.statement(),
                signature: m.signature,
                auth: AdminAuth::UNSIGNED,
            };
            let (raised, after) = match admin.filter(|_| !own) {
                Some(admin) => {
                    let after = self.admin_confirmed(cmd, admin, trust)?;
                    let raised = self.last_response::<ImportMark>().is_ok_and(|r| r.raised);
                    (raised, after)
                }
                None => {
                    let r = self.call(&cmd)?;
                    let raised = r.raised;
                    (raised, self.admin_state(slot, trust)?)
                }
            };
            let s = after.statement;
            let mark = s.has_mark().then_some(s.sequence);
            if let Some(imported) = m.sequence
                && mark.is_none_or(|stated| stated < imported)
            {
                return Err(MarksError::NotRaised { slot, stated: mark.unwrap_or(0), imported });
            }
            out.push(ImportOutcome {
                key: m.key,
                slot: Some(slot),
                imported: m.sequence,
                mark,
                raised,
            });
        }
        Ok(out)
    }
}

mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

mod opt_decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|v| v.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}
