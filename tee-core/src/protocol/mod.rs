//! Every type that crosses the wire, and nothing else.
//!
//! A request is one [`Command`] type with a stable numeric code; its
//! response is `Result<C::Response, DeviceError>`. Both travel as the body of
//! a frame ([`crate::frame`]) whose header carries the protocol version, the
//! command code and the client's request id. `docs/wire-format.md` describes
//! every message byte by byte.
//!
//! Each command has its own file here: request, response, code and doc.
//! [`for_each_command!`](crate::for_each_command) is the one list of
//! commands; the code list ([`COMMAND_CODES`]), the device's dispatch, the
//! fuzz targets and the protocol tests all expand or iterate it. Adding a
//! command is a new file and one line in that table; the device then asks
//! for its handler (a compile error until `device` handles it).
//!
//! Stability: postcard encodes enum variants and struct fields by position,
//! so variants and fields are only appended, never reordered, removed or
//! `cfg`-gated; command codes are never reused. Any change an older peer
//! could misread bumps [`PROTOCOL_VERSION`].

mod admin;
mod policy;

mod admin_state;
mod attest;
mod attest_action;
mod derive_key;
mod device_info;
mod echo;
mod generate_key;
mod get_audit_log;
mod get_evidence;
mod get_policy;
mod get_public_key;
mod health;
mod import_mark;
mod set_policy;
mod sign;
mod sign_approved;

use serde::{Deserialize, Serialize};

pub use crate::primitives::FixedBytes;
pub use admin::{
    AdminAuth, AdminCommand, admin_action, admin_digest, admin_domain_separator,
    admin_payload_hash, admin_struct_hash, authorize, split_auth,
};
pub use admin_state::{AdminState, AdminStateResponse, AdminStatement};
pub use attest::{Attest, AttestResponse};
pub use attest_action::AttestAction;
pub use derive_key::DeriveKey;
pub use device_info::{DeviceInfo, DeviceInfoResponse};
pub use echo::Echo;
pub use generate_key::GenerateKey;
pub use get_audit_log::{AuditEntry, AuditLogResponse, GetAuditLog, Outcome};
pub use get_evidence::{EvidenceChunk, EvidencePart, GetEvidence};
pub use get_policy::GetPolicy;
pub use get_public_key::{GetPublicKey, KeyOrigin, PublicKeyResponse};
pub use health::{Health, HealthResponse, Probe, Replication};
pub use import_mark::{ImportMark, MarkImported};
pub use policy::{
    Allow, ApprovalRule, KindSet, Policy, PolicyViolation, RateLimit, SpendCap, TokenRule,
};
pub use set_policy::{PolicySet, SetPolicy};
pub use sign::{Sign, SignResponse};
pub use sign_approved::{
    APPROVAL_DOMAIN_NAME, APPROVAL_DOMAIN_VERSION, APPROVAL_LEN, APPROVAL_TYPE, ApprovalNeed,
    Approvals, SignApproved, approval_action, approval_digest, approval_domain_separator,
    approval_struct_hash,
};

/// The wire's size bounds (defined, with every other bound, in [`crate::limits`]).
pub use crate::limits::{
    AUDIT_BATCH, MAX_ECHO_LEN, MAX_EVIDENCE_CHUNK, MAX_PATH_LEN, MAX_POLICY_AGENTS,
    MAX_POLICY_APPROVERS, MAX_POLICY_CHAINS, MAX_POLICY_CONTRACTS, MAX_POLICY_DOMAINS,
    MAX_POLICY_RECIPIENTS, MAX_POLICY_TOKENS, MAX_QUOTE_LEN, MAX_REQUEST_BODY, MAX_REQUEST_FRAME,
    MAX_REQUEST_WIRE, MAX_RESPONSE_BODY, MAX_RESPONSE_FRAME, MAX_RESPONSE_WIRE, MAX_SLOTS,
    NUM_SLOTS,
};

use crate::codec;
use crate::error::{Error, Result};
use crate::frame::FrameError;

/// The protocol version in every frame header.
pub const PROTOCOL_VERSION: u8 = 12;

/// `Attest` at this slot binds the device's identity key (purpose
/// [`crate::binding::Purpose::Device`]) instead of a slot's key.
pub const DEVICE_SLOT: u8 = 0xFF;

/// A request type: its stable code, the request as read from a body, and
/// its response type.
pub trait Command: Serialize {
    /// The command code in the frame header. Never reused.
    const CODE: u8;
    /// The request as decoded from a body: `Self`, or (`Sign`) `Self` with
    /// its fields borrowed from the body.
    type Request<'a>: Serialize + Deserialize<'a> + core::fmt::Debug;
    /// The successful response.
    type Response<'a>: Serialize + Deserialize<'a> + core::fmt::Debug;

    /// Decodes a request body, canonically.
    fn decode(body: &[u8]) -> Result<Self::Request<'_>> {
        codec::decode(body)
    }
}

/// The one list of commands, in code order: expands `$m! { path, ... }`
/// with every command type. Everything that must know every command (the
/// code list, the device's dispatch, fuzz targets, tests) expands this.
#[macro_export]
macro_rules! for_each_command {
    ($m:ident) => {
        $m! {
            $crate::protocol::DeviceInfo,
            $crate::protocol::GetPublicKey,
            $crate::protocol::GenerateKey,
            $crate::protocol::DeriveKey,
            $crate::protocol::SetPolicy,
            $crate::protocol::Sign<'static>,
            $crate::protocol::Attest,
            $crate::protocol::GetAuditLog,
            $crate::protocol::Echo,
            $crate::protocol::GetPolicy,
            $crate::protocol::AttestAction,
            $crate::protocol::GetEvidence,
            $crate::protocol::AdminState,
            $crate::protocol::Health,
            $crate::protocol::ImportMark,
            $crate::protocol::SignApproved<'static>,
        }
    };
}

/// Something done with a command type chosen at run time by its code
/// ([`with_command`]): a fuzz target's decoder, a test over every command.
pub trait CommandVisitor {
    /// What the visit returns.
    type Output;
    /// Visits command `C`.
    fn visit<C: Command>(self) -> Self::Output;
}

macro_rules! command_table {
    ($($c:path),* $(,)?) => {
        /// Every command code, in the table's order.
        pub const COMMAND_CODES: &[u8] = &[$(<$c as Command>::CODE),*];

        /// Calls `visitor` with the command whose code is `code`; `None` for
        /// a code no command has.
        pub fn with_command<V: CommandVisitor>(code: u8, visitor: V) -> Option<V::Output> {
            match code {
                $(<$c as Command>::CODE => Some(visitor.visit::<$c>()),)*
                _ => None,
            }
        }
    };
}
crate::for_each_command!(command_table);

// Codes rise through the table: none is used twice, and the table is in
// code order.
#[allow(
    clippy::indexing_slicing,
    reason = "constant evaluation: an out-of-range index fails the build"
)]
const _: () = {
    let mut i = 1;
    while i < COMMAND_CODES.len() {
        assert!(
            COMMAND_CODES[i - 1] < COMMAND_CODES[i],
            "command codes must rise through the table"
        );
        i += 1;
    }
};

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
    /// The admin counter is not the one after the last one used (the
    /// device accepts exactly that one: no replay, no jump).
    AdminReplay {
        /// The last admin counter used (0: none yet).
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
    /// `GenerateKey`/`DeriveKey`: the slot holds another key, which the
    /// command would lose; it says `replace` to mean it.
    SlotOccupied,
    /// `Sign`: a field of the action is longer than this device's bound
    /// (`DeviceInfo`'s `bounds`): which field, its length, the bound.
    OverBound(crate::action::OverBound),
    /// `Sign`: a rule of the slot's policy that reads the time refused the
    /// action (`DeadlineExpired`, `DeadlineTooFar`, `RateLimited`): the rule
    /// and the device's time it read, which the client's clock need not
    /// agree with. (A device without a clock answers `Denied(NoClock)`.)
    DeniedAt {
        /// The rule.
        violation: PolicyViolation,
        /// The device's time the rule read (unix seconds).
        device_time: u64,
    },
    /// `ImportMark`: the statement's mark is of another key than the
    /// slot's (or the slot is empty and the statement names a key).
    OtherKey,
    /// `Sign`: the transaction's value would take the slot's spend window
    /// past the policy's `spend_cap` (protocol version 10). Nothing was
    /// reserved or signed.
    OverCap(CapRefusal),
    /// `Sign`, `SignApproved`: the policy allows the action once enough of
    /// its approvers approve it (protocol version 12); nothing was signed
    /// or reserved, and the sequence is still free.
    ApprovalRequired(ApprovalNeed),
}

/// What a spend cap's refusal reports: what the window has left and how
/// long, by the device's clock, until it ends (the value asked is the
/// client's own action's). Small on purpose, 20 bytes aligned to 4: every
/// `Result<_, DeviceError>` on a microcontroller's stack is as large as the
/// largest error, and this keeps it at 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CapRefusal {
    /// What the window has left, in wei: a `u128`, big-endian
    /// ([`CapRefusal::remaining`]; a cap above 2^128 wei reports that much
    /// left while it has more).
    pub remaining_be: [u8; 16],
    /// Seconds from the device's time it read until the window ends and the
    /// cap is whole again (at most `u32::MAX`).
    pub ends_in: u32,
}

impl CapRefusal {
    /// `remaining` wei left, `ends_in` seconds to go.
    #[must_use]
    pub const fn new(remaining: u128, ends_in: u32) -> CapRefusal {
        CapRefusal { remaining_be: remaining.to_be_bytes(), ends_in }
    }

    /// What the window has left, in wei.
    #[must_use]
    pub const fn remaining(&self) -> u128 {
        u128::from_be_bytes(self.remaining_be)
    }
}

impl DeviceError {
    /// The slot's policy refused with `violation`: [`DeviceError::DeniedAt`]
    /// with the device's time for a rule that read it, else
    /// [`DeviceError::Denied`].
    #[must_use]
    pub fn denied(violation: PolicyViolation, now: Option<u64>) -> DeviceError {
        use PolicyViolation as V;
        match (violation, now) {
            (
                V::DeadlineExpired
                | V::DeadlineTooFar
                | V::RateLimited
                | V::PolicyExpired
                | V::ApprovalExpired
                | V::ApprovalTooLong,
                Some(device_time),
            ) => DeviceError::DeniedAt { violation, device_time },
            _ => DeviceError::Denied(violation),
        }
    }

    /// The policy rule that refused, from either form of a policy refusal.
    #[must_use]
    pub fn violation(&self) -> Option<PolicyViolation> {
        match self {
            DeviceError::Denied(v) | DeviceError::DeniedAt { violation: v, .. } => Some(*v),
            DeviceError::OverCap(_) => Some(PolicyViolation::SpendCapExceeded),
            DeviceError::ApprovalRequired(_) => Some(PolicyViolation::ApprovalRequired),
            _ => None,
        }
    }
}
