//! Every type that crosses the wire, and nothing else.
//!
//! A request is one [`Command`] type with a stable numeric code; its
//! response is `Result<C::Response, DeviceError>`. Both travel as the body of
//! a frame ([`crate::frame`]) whose header carries the protocol version, the
//! command code and the client's request id. `docs/wire-format.md` describes
//! every message byte by byte.
//!
//! Stability: postcard encodes enum variants and struct fields by position,
//! so variants and fields are only appended, never reordered, removed or
//! `cfg`-gated; command codes are never reused. Any change an older peer
//! could misread bumps [`PROTOCOL_VERSION`].

mod admin;
mod bytes;
mod policy;

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

pub use admin::{AdminAuth, admin_action, admin_digest, admin_domain_separator, admin_struct_hash};
pub use bytes::FixedBytes;
pub use policy::{Allow, KindSet, Policy, PolicyViolation, RateLimit};

use crate::action::Action;
use crate::codec;
use crate::error::{Error, Result};
use crate::frame::{FrameError, HEADER_LEN};
use crate::limits::MAX_ACTION_LEN;
use crate::primitives::{Address, B256};
use crate::signer::Signature;

/// The protocol version in every frame header.
pub const PROTOCOL_VERSION: u8 = 1;
/// Number of key slots of a device.
pub const NUM_SLOTS: usize = 8;
/// Longest key-derivation path of `DeriveKey`.
pub const MAX_PATH_LEN: usize = 64;
/// Longest `Echo` payload.
pub const MAX_ECHO_LEN: usize = 256;
/// Longest TDX quote an `Attest` response carries.
pub const MAX_QUOTE_LEN: usize = 8192;
/// Entries per `GetAuditLog` response.
pub const AUDIT_BATCH: usize = 8;

/// Upper bound of any request body (the largest is `Sign`).
pub const MAX_REQUEST_BODY: usize = 1 + 10 + MAX_ACTION_LEN;
/// Upper bound of any response body (the largest is `Attest`).
pub const MAX_RESPONSE_BODY: usize = MAX_QUOTE_LEN + 256;
/// Accumulator a device needs to receive any request frame (COBS-encoded,
/// delimiters excluded).
pub const MAX_REQUEST_FRAME: usize = crate::frame::encoded_len_bound(HEADER_LEN + MAX_REQUEST_BODY);
/// Accumulator a client needs to receive any response frame.
pub const MAX_RESPONSE_FRAME: usize =
    crate::frame::encoded_len_bound(HEADER_LEN + MAX_RESPONSE_BODY);
/// Buffer that holds any request frame on the wire, delimiters included.
pub const MAX_REQUEST_WIRE: usize = crate::frame::wire_len_bound(HEADER_LEN + MAX_REQUEST_BODY);
/// Buffer that holds any response frame on the wire, delimiters included.
pub const MAX_RESPONSE_WIRE: usize = crate::frame::wire_len_bound(HEADER_LEN + MAX_RESPONSE_BODY);

/// A request type: its stable code and its response type.
pub trait Command: Serialize + for<'de> Deserialize<'de> {
    /// The command code in the frame header. Never reused.
    const CODE: u8;
    /// The successful response.
    type Response<'a>: Serialize + Deserialize<'a>;

    /// Decodes a request body, canonically.
    fn decode(body: &[u8]) -> Result<Self> {
        codec::decode(body)
    }
}

/// Commands that change a slot: they carry the admin's authorization last,
/// over the encoding of everything before it.
pub trait AdminCommand: Command {
    /// The authorization.
    fn auth(&self) -> &AdminAuth;
    /// The authorization, to fill in ([`authorize`]).
    fn auth_mut(&mut self) -> &mut AdminAuth;
}

/// keccak-256 of an admin command's encoding up to its `auth` field: what
/// the admin's signature covers.
pub fn admin_payload_hash<C: AdminCommand>(body: &[u8], cmd: &C) -> B256 {
    let auth_len = codec::encoded_len(cmd.auth()).unwrap_or(0);
    crate::primitives::keccak256(body.get(..body.len().saturating_sub(auth_len)).unwrap_or(&[]))
}

/// Fills in `cmd`'s authorization: `counter`, and the admin's signature
/// for the device `device_id`. The client side of admin commands.
pub fn authorize<C: AdminCommand>(
    cmd: &mut C,
    admin: &crate::signer::SigningKey,
    device_id: &B256,
    counter: u64,
) -> Result<()> {
    cmd.auth_mut().counter = counter;
    let mut buf = [0u8; MAX_REQUEST_BODY];
    let body = codec::encode(cmd, &mut buf)?;
    let payload = admin_payload_hash(body, cmd);
    let action = admin_action(device_id, C::CODE, counter, &payload);
    cmd.auth_mut().signature = admin.sign(&action)?.signature;
    Ok(())
}

/// Which backend a device runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BackendKind {
    /// A Phala dstack confidential VM (Intel TDX): keys from dstack's KMS, TDX quotes.
    Dstack,
    /// The built-in simulated TEE: same protocol, no hardware guarantees.
    Simulated,
    /// A microcontroller: keys in flash, no attestation.
    Mcu,
}

/// Capability bits of [`DeviceInfoResponse::capabilities`].
pub mod capability {
    /// `Attest` returns quotes.
    pub const ATTEST: u32 = 1 << 0;
    /// `DeriveKey` derives keys.
    pub const DERIVE: u32 = 1 << 1;
    /// `GenerateKey` generates keys.
    pub const GENERATE: u32 = 1 << 2;
    /// Policies can use wall-clock time (deadlines, rate limits).
    pub const CLOCK: u32 = 1 << 3;
}

/// Why a command failed. Signing failures carry no key-dependent detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DeviceError {
    /// The frame could not be read; the request id is 0 when unreadable.
    Frame(FrameError),
    /// The frame's protocol version is not this device's.
    UnsupportedVersion {
        /// The version this device speaks.
        supported: u8,
    },
    /// No command has this code.
    UnknownCommand,
    /// The body is not the canonical encoding of the command.
    Malformed(Error),
    /// The slot number is out of range.
    NoSuchSlot,
    /// The slot holds no key.
    SlotEmpty,
    /// The slot's policy refuses the action.
    Denied(PolicyViolation),
    /// The sequence is at or below the slot's high-water mark (and is not an
    /// exact retry of the last signed action).
    Replay {
        /// The slot's high-water mark.
        high_water: u64,
    },
    /// The admin signature does not verify for this device and command.
    Unauthorized,
    /// The admin counter is not above the last one used.
    AdminReplay {
        /// The last admin counter used.
        last: u64,
    },
    /// The backend lacks this capability (quotes, key derivation, ...).
    Unsupported,
    /// Durable storage failed; nothing was signed or changed.
    Storage,
    /// The random number generator failed.
    Entropy,
    /// Signing failed.
    SigningFailed,
    /// The backend failed otherwise.
    Backend,
    /// The response does not fit the device's transmit buffer.
    ResponseTooLarge,
    /// `AttestAction`: the slot's last signature (at its high-water mark)
    /// is not of this digest at this sequence by this slot's key.
    NotLastSigned,
}

/// `0x01` DeviceInfo: what the device is and can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo;

/// Response to [`DeviceInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfoResponse {
    /// [`PROTOCOL_VERSION`].
    pub protocol_version: u8,
    /// The firmware or crate version.
    pub firmware: String<32>,
    /// The backend.
    pub backend: BackendKind,
    /// [`capability`] bits.
    pub capabilities: u32,
    /// Number of key slots.
    pub slots: u8,
    /// Largest request frame this device accepts (encoded, delimiter excluded).
    pub max_request_frame: u32,
    /// The device's identity, bound into admin signatures.
    pub device_id: B256,
    /// The admin address allowed to change slots.
    pub admin: Address,
}

impl Command for DeviceInfo {
    const CODE: u8 = 0x01;
    type Response<'a> = DeviceInfoResponse;
}

/// `0x02` GetPublicKey: a slot's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPublicKey {
    /// Slot number.
    pub slot: u8,
}

/// How a slot's key came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KeyOrigin {
    /// Generated on the device from its RNG.
    Generated,
    /// Derived by the backend from this path (dstack `GetKey`).
    Derived(String<MAX_PATH_LEN>),
}

/// A slot's public key and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyResponse {
    /// Slot number.
    pub slot: u8,
    /// SEC1 compressed public key.
    pub public_key: FixedBytes<33>,
    /// Ethereum address.
    pub address: Address,
    /// Where the key came from.
    pub origin: KeyOrigin,
    /// The slot's anti-replay high-water mark, if it signed anything.
    pub high_water: Option<u64>,
}

impl Command for GetPublicKey {
    const CODE: u8 = 0x02;
    type Response<'a> = PublicKeyResponse;
}

/// `0x03` GenerateKey (admin): a fresh random key in a slot. The slot's
/// policy becomes deny-all; its high-water mark is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateKey {
    /// Slot number.
    pub slot: u8,
    /// Admin authorization.
    pub auth: AdminAuth,
}

impl Command for GenerateKey {
    const CODE: u8 = 0x03;
    type Response<'a> = PublicKeyResponse;
}

impl AdminCommand for GenerateKey {
    fn auth(&self) -> &AdminAuth {
        &self.auth
    }
    fn auth_mut(&mut self) -> &mut AdminAuth {
        &mut self.auth
    }
}

/// `0x04` DeriveKey (admin): the backend's key for `path` in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeriveKey {
    /// Slot number.
    pub slot: u8,
    /// Derivation path (dstack `GetKey` path).
    pub path: String<MAX_PATH_LEN>,
    /// Admin authorization.
    pub auth: AdminAuth,
}

impl Command for DeriveKey {
    const CODE: u8 = 0x04;
    type Response<'a> = PublicKeyResponse;
}

impl AdminCommand for DeriveKey {
    fn auth(&self) -> &AdminAuth {
        &self.auth
    }
    fn auth_mut(&mut self) -> &mut AdminAuth {
        &mut self.auth
    }
}

/// `0x05` SetPolicy (admin): replace a slot's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPolicy {
    /// Slot number.
    pub slot: u8,
    /// The new policy.
    pub policy: Policy,
    /// Admin authorization.
    pub auth: AdminAuth,
}

/// Response to [`SetPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySet {
    /// Slot number.
    pub slot: u8,
    /// keccak-256 of the policy's canonical encoding.
    pub policy_hash: B256,
}

impl Command for SetPolicy {
    const CODE: u8 = 0x05;
    type Response<'a> = PolicySet;
}

impl AdminCommand for SetPolicy {
    fn auth(&self) -> &AdminAuth {
        &self.auth
    }
    fn auth_mut(&mut self) -> &mut AdminAuth {
        &mut self.auth
    }
}

/// `0x06` Sign: sign `action` with a slot's key at `sequence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sign {
    /// Slot number.
    pub slot: u8,
    /// Anti-replay sequence: above the slot's high-water mark, or equal to it
    /// for an exact retry of the last signed action.
    pub sequence: u64,
    /// What to sign.
    pub action: Action,
}

/// Response to [`Sign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    /// The signature.
    pub signature: Signature,
    /// The digest signed.
    pub digest: B256,
    /// The sequence now committed as the slot's high-water mark.
    pub sequence: u64,
}

impl Command for Sign {
    const CODE: u8 = 0x06;
    type Response<'a> = SignResponse;

    /// The action is the last field; it goes through [`Action::decode`] so an
    /// unknown action tag is reported as such.
    fn decode(body: &[u8]) -> Result<Self> {
        let ((slot, sequence), rest) = postcard::take_from_bytes::<(u8, u64)>(body)?;
        let prefix = body.get(..body.len() - rest.len()).ok_or(Error::Malformed)?;
        if !codec::encodes_to(&(slot, sequence), prefix) {
            return Err(Error::NonCanonical);
        }
        Ok(Sign { slot, sequence, action: Action::decode(rest)? })
    }
}

/// `0x07` Attest: a TDX quote whose `report_data` binds the slot's address
/// to the verifier's challenge ([`crate::binding`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attest {
    /// Slot number.
    pub slot: u8,
    /// The verifier's fresh challenge (or an action digest).
    pub challenge: B256,
}

/// Response to [`Attest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestResponse<'a> {
    /// The slot's address.
    pub address: Address,
    /// The 64 bytes bound into the quote.
    pub report_data: FixedBytes<64>,
    /// The quote, as the backend produced it.
    #[serde(borrow)]
    pub quote: &'a [u8],
}

impl Command for Attest {
    const CODE: u8 = 0x07;
    type Response<'a> = AttestResponse<'a>;
}

/// `0x08` GetAuditLog: entries from index `from` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAuditLog {
    /// First index wanted.
    pub from: u64,
}

/// What happened, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// Done.
    Ok,
    /// An exact retry answered with the earlier signature.
    Retry,
    /// Refused, and why.
    Refused(DeviceError),
}

/// One audit log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AuditEntry {
    /// Position in the log since boot (0 is the boot entry).
    pub index: u64,
    /// The command code (0 for the boot entry).
    pub command: u8,
    /// The slot concerned (0 where none).
    pub slot: u8,
    /// The sequence (sign) or admin counter (admin commands).
    pub sequence: u64,
    /// The action digest (sign), payload hash (admin), or zero.
    pub digest: B256,
    /// What happened.
    pub outcome: Outcome,
}

/// Response to [`GetAuditLog`]. Entry `i`'s hash is
/// `keccak256(hash(i-1) ‖ postcard(entry i))`; `prev_hash` is the hash
/// before the first entry returned, so a reader can check every batch
/// joins the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLogResponse {
    /// Hash of the entry before the first one returned.
    pub prev_hash: B256,
    /// Up to [`AUDIT_BATCH`] consecutive entries.
    pub entries: Vec<AuditEntry, AUDIT_BATCH>,
    /// Index of the next entry to be written.
    pub next_index: u64,
    /// Hash of the newest entry.
    pub head_hash: B256,
    /// Entries overwritten before any `GetAuditLog` returned them.
    pub overwritten_unread: u64,
}

impl Command for GetAuditLog {
    const CODE: u8 = 0x08;
    type Response<'a> = AuditLogResponse;
}

/// `0x09` Echo: returns its data (a link check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// Anything.
    pub data: Vec<u8, MAX_ECHO_LEN>,
}

impl Command for Echo {
    const CODE: u8 = 0x09;
    type Response<'a> = Echo;
}

/// `0x0A` GetPolicy: a slot's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPolicy {
    /// Slot number.
    pub slot: u8,
}

impl Command for GetPolicy {
    const CODE: u8 = 0x0A;
    type Response<'a> = Policy;
}

/// `0x0B` AttestAction: a TDX quote whose `report_data` binds the slot's
/// address to the digest of the action it signed last, as a per-action
/// attestation ([`crate::binding::Purpose::ActionDigest`]). Only the action
/// at the slot's high-water mark can be attested this way, and only if this
/// slot's key signed it: the device never binds a digest it did not sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestAction {
    /// Slot number.
    pub slot: u8,
    /// The sequence the action was signed at (the slot's high-water mark).
    pub sequence: u64,
    /// The signed action's digest.
    pub digest: B256,
}

impl Command for AttestAction {
    const CODE: u8 = 0x0B;
    type Response<'a> = AttestResponse<'a>;
}

/// What a verifier needs besides the quote, from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EvidencePart {
    /// The event log that came with the backend's last quote (dstack's
    /// JSON event log): it replays to RTMR3 and names the app and its
    /// compose hash.
    EventLog,
    /// The slot's derived key's signature chain from the backend's KMS
    /// (JSON), up to the KMS root.
    KeyChain,
}

/// `0x0C` GetEvidence: a chunk of evidence, from byte `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEvidence {
    /// Slot number.
    pub slot: u8,
    /// Which evidence.
    pub part: EvidencePart,
    /// First byte wanted.
    pub offset: u32,
}

/// Response to [`GetEvidence`]: up to [`MAX_EVIDENCE_CHUNK`] bytes from the
/// offset; an offset at or past `total` gets none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceChunk<'a> {
    /// The evidence's whole length.
    pub total: u32,
    /// The bytes from the offset.
    #[serde(borrow)]
    pub data: &'a [u8],
}

/// Largest chunk a [`GetEvidence`] response carries.
pub const MAX_EVIDENCE_CHUNK: usize = MAX_QUOTE_LEN;

impl Command for GetEvidence {
    const CODE: u8 = 0x0C;
    type Response<'a> = EvidenceChunk<'a>;
}

/// Every command code, in order.
pub const COMMAND_CODES: [u8; 12] = [
    DeviceInfo::CODE,
    GetPublicKey::CODE,
    GenerateKey::CODE,
    DeriveKey::CODE,
    SetPolicy::CODE,
    Sign::CODE,
    Attest::CODE,
    GetAuditLog::CODE,
    Echo::CODE,
    GetPolicy::CODE,
    AttestAction::CODE,
    GetEvidence::CODE,
];
