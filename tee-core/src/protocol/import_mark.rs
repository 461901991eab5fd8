//! `0x0F` ImportMark: raise a slot's anti-replay mark to one a signed
//! statement names (`tee-signer marks import`).

use serde::{Deserialize, Serialize};

use super::{AdminAuth, AdminStatement, Command};
use crate::signer::Signature;

/// `0x0F` ImportMark: raise slot `slot`'s anti-replay mark to the one
/// `statement` (an [`super::AdminState`] answer, as `tee-signer marks
/// export` keeps it) names for the slot's key. Marks only rise: a mark at
/// or below the slot's is left as it is, and the answer says so.
///
/// Who may ask:
/// - anyone, when `signature` is this device's identity's over `statement`
///   in this device's admin domain: the device raises its own mark to one it
///   stated before (a state directory put back from a backup older than the
///   export); `auth` is then not read and no admin counter is spent;
/// - otherwise (an export from another device, a fresh state directory with
///   a new identity, a device without an identity key) only the admin:
///   `auth` authorizes the command as for any admin command.
///
/// Either way the statement's key must be the slot's key
/// ([`super::DeviceError::OtherKey`]): a mark belongs to a key, and says
/// nothing of another. The raised mark is committed with its audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportMark {
    /// The slot whose mark to raise (need not be the statement's slot).
    pub slot: u8,
    /// The statement naming the key and its mark.
    pub statement: AdminStatement,
    /// The signature over the statement's digest, by the exporting
    /// device's identity.
    pub signature: Signature,
    /// Admin authorization, needed unless the statement is the device's
    /// own ([`AdminAuth::UNSIGNED`] then).
    pub auth: AdminAuth,
}

/// Response to [`ImportMark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkImported {
    /// The slot.
    pub slot: u8,
    /// The slot's mark now (`None`: the slot has none, and the statement
    /// named none).
    pub sequence: Option<u64>,
    /// Whether this command raised it (`false`: the slot's mark was
    /// already at or above the statement's).
    pub raised: bool,
}

impl Command for ImportMark {
    const CODE: u8 = 0x0F;
    type Request<'a> = Self;
    type Response<'a> = MarkImported;
}

super::admin::admin_command!(ImportMark);
