//! Admin authorization: an EIP-712 signature by the device's admin key over
//! the command, bound to one device and one counter value.
//!
//! ```text
//! domain  = EIP712Domain(string name,string version,bytes32 salt)
//!           name "ERC8004TeeSigner", version "1", salt = device id
//! message = AdminCommand(uint8 command,uint64 counter,bytes32 payload)
//!           payload = keccak256(the command's body up to its `auth` field)
//! ```
//! Any Ethereum wallet that signs EIP-712 can act as admin; the device only
//! stores the admin's address. Each command's counter must be the one after
//! the last the device accepted (it keeps the last one durably), so a
//! recorded admin request cannot be replayed nor a counter jumped, and the
//! salt stops a request being replayed to another device. The device's
//! answers are not authenticated, but `AdminState` is: signed by the
//! device's identity key, it tells the admin tool the counter to use and,
//! after a command, that it took effect.

use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use super::Command;
use crate::abi::word;
use crate::action::{Action, Eip712Prehashed};
use crate::codec;
use crate::eip712::typed_data_digest;
use crate::error::Result;
use crate::limits::MAX_SLOT_RECORD;
use crate::primitives::{B256, keccak256};
use crate::signer::{Signature, SigningKey};

/// The admin domain's name.
pub const ADMIN_DOMAIN_NAME: &str = "ERC8004TeeSigner";
/// The admin domain's version.
pub const ADMIN_DOMAIN_VERSION: &str = "1";
const ADMIN_DOMAIN_TYPE: &[u8] = b"EIP712Domain(string name,string version,bytes32 salt)";
const ADMIN_COMMAND_TYPE: &[u8] = b"AdminCommand(uint8 command,uint64 counter,bytes32 payload)";

/// The authorization an admin command carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AdminAuth {
    /// Above every counter the device has accepted before.
    pub counter: u64,
    /// The admin's signature over [`admin_digest`].
    pub signature: Signature,
}

impl AdminAuth {
    /// A placeholder for a command about to be authorized
    /// ([`authorize`] fills it in); the device refuses it.
    pub const UNSIGNED: AdminAuth =
        AdminAuth { counter: 0, signature: Signature { r: [0; 32], s: [0; 32], y_parity: false } };
}

/// The admin EIP-712 domain separator of the device `device_id`.
#[must_use]
pub fn admin_domain_separator(device_id: &B256) -> B256 {
    let mut h = Keccak256::new();
    h.update(keccak256(ADMIN_DOMAIN_TYPE).0);
    h.update(keccak256(ADMIN_DOMAIN_NAME.as_bytes()).0);
    h.update(keccak256(ADMIN_DOMAIN_VERSION.as_bytes()).0);
    h.update(device_id.0);
    B256(h.finalize().into())
}

/// `hashStruct(AdminCommand)`.
#[must_use]
pub fn admin_struct_hash(command: u8, counter: u64, payload: &B256) -> B256 {
    let mut h = Keccak256::new();
    h.update(keccak256(ADMIN_COMMAND_TYPE).0);
    h.update(word::uint(u64::from(command)));
    h.update(word::uint(counter));
    h.update(payload.0);
    B256(h.finalize().into())
}

/// The admin's message as an action any signer can sign: an
/// [`Eip712Prehashed`] over the admin domain (no raw-digest signing needed).
#[must_use]
pub fn admin_action(
    device_id: &B256,
    command: u8,
    counter: u64,
    payload: &B256,
) -> Action<'static> {
    Action::Eip712Prehashed(Eip712Prehashed {
        domain_separator: admin_domain_separator(device_id),
        struct_hash: admin_struct_hash(command, counter, payload),
    })
}

/// The digest the admin signs for `command` with `counter` over `payload`.
#[must_use]
pub fn admin_digest(device_id: &B256, command: u8, counter: u64, payload: &B256) -> B256 {
    typed_data_digest(
        &admin_domain_separator(device_id),
        &admin_struct_hash(command, counter, payload),
    )
}

/// Commands that change a slot: they carry the admin's authorization last,
/// over the encoding of everything before it.
pub trait AdminCommand: Command {
    /// The slot it changes.
    fn slot(&self) -> u8;
    /// The authorization.
    fn auth(&self) -> &AdminAuth;
    /// The authorization, to fill in ([`authorize`]).
    fn auth_mut(&mut self) -> &mut AdminAuth;
}

/// Implements [`AdminCommand`] for a command with a `slot` field and, last,
/// an `auth` field.
macro_rules! admin_command {
    ($t:ty) => {
        impl $crate::protocol::AdminCommand for $t {
            fn slot(&self) -> u8 {
                self.slot
            }
            fn auth(&self) -> &$crate::protocol::AdminAuth {
                &self.auth
            }
            fn auth_mut(&mut self) -> &mut $crate::protocol::AdminAuth {
                &mut self.auth
            }
        }
    };
}
pub(crate) use admin_command;

/// keccak-256 of an admin command's encoding up to its `auth` field: what
/// the admin's signature covers.
pub fn admin_payload_hash<C: AdminCommand>(body: &[u8], cmd: &C) -> B256 {
    let auth_len = codec::encoded_len(cmd.auth()).unwrap_or(0);
    keccak256(body.get(..body.len().saturating_sub(auth_len)).unwrap_or(&[]))
}

/// Splits an admin command's body into what the admin's signature covers
/// and its [`AdminAuth`], from the end, without decoding the command: the
/// signature is the last 65 bytes, the counter the varint before them. A
/// device checks a large command's signature this way before decoding it,
/// so the signature check's deep stack and the decoded command (a policy)
/// are never on the stack together. Exact for every admin command, whose
/// field before `auth` ends in a byte below 0x80 (a varint's last byte, a
/// bool, an option's tag; a test holds every command to it); the device
/// still decodes the whole body and takes it only if its `auth` is this.
#[must_use]
pub fn split_auth(body: &[u8]) -> Option<(&[u8], AdminAuth)> {
    const SIGNATURE_LEN: usize = 65;
    const MAX_VARINT: usize = 10;
    let rest = body.get(..body.len().checked_sub(SIGNATURE_LEN)?)?;
    let mut start = rest.len().checked_sub(1)?;
    if rest.get(start)? & 0x80 != 0 {
        return None;
    }
    while start > 0
        && rest.len() - start < MAX_VARINT
        && rest.get(start - 1).is_some_and(|b| b & 0x80 != 0)
    {
        start -= 1;
    }
    let (prefix, tail) = body.split_at_checked(start)?;
    Some((prefix, codec::decode(tail).ok()?))
}

/// Fills in `cmd`'s authorization: `counter`, and the admin's signature
/// for the device `device_id`. The client side of admin commands. Returns
/// the payload hash signed, which `AdminState` states once the device has
/// accepted the command.
pub fn authorize<C: AdminCommand>(
    cmd: &mut C,
    admin: &SigningKey,
    device_id: &B256,
    counter: u64,
) -> Result<B256> {
    cmd.auth_mut().counter = counter;
    // An admin command is a slot number, a key path or a policy, and its
    // authorization: well within a slot record and a signature.
    let mut buf = [0u8; MAX_SLOT_RECORD + 256];
    let body = codec::encode(cmd, &mut buf)?;
    let payload = admin_payload_hash(body, cmd);
    let action = admin_action(device_id, C::CODE, counter, &payload);
    cmd.auth_mut().signature = admin.sign(&action)?.signature;
    Ok(payload)
}
