//! The crate's one error type.
//!
//! Variants say what was wrong with the input, never anything that depends on
//! a secret: a failed signature is `SigningFailed`, whatever the cause.

use core::fmt;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong in tee-core.
///
/// It also travels on the wire (inside `DeviceError::Malformed`), so
/// variants are only appended, never reordered.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The input ended before the value was complete.
    Truncated,
    /// Bytes followed a complete value.
    TrailingBytes,
    /// The value decoded, but its bytes are not its one canonical encoding
    /// (non-minimal varint or RLP length, leading zeros, single byte wrapped
    /// in a string header, ...).
    NonCanonical,
    /// The bytes do not form a value of the expected shape (bad tag byte,
    /// varint overflow, wrong fixed length, list where bytes were expected).
    Malformed,
    /// An enum discriminant outside the known variants.
    UnknownVariant,
    /// A field is longer than its bound in [`crate::limits`].
    TooLong,
    /// A string field is not UTF-8.
    InvalidUtf8,
    /// A well-formed encoding of something this signer refuses to handle
    /// (contract creation, non-empty access list, another transaction type).
    Unsupported,
    /// The caller's output buffer cannot hold the result.
    BufferTooSmall,
    /// The action is not a transaction, so it has no transaction encoding.
    NotATransaction,
    /// Secret key bytes are zero or not below the curve order.
    InvalidKey,
    /// A signature is malformed, high-S, or does not recover to a key.
    InvalidSignature,
    /// Signing failed. Deliberately carries no detail.
    SigningFailed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "input ended before the value was complete",
            Error::TrailingBytes => "trailing bytes after the value",
            Error::NonCanonical => "value is not in its canonical encoding",
            Error::Malformed => "malformed encoding",
            Error::UnknownVariant => "unknown enum variant",
            Error::TooLong => "field exceeds its length bound",
            Error::InvalidUtf8 => "string is not valid UTF-8",
            Error::Unsupported => "well-formed but unsupported by this signer",
            Error::BufferTooSmall => "output buffer too small",
            Error::NotATransaction => "action is not a transaction",
            Error::InvalidKey => "invalid secret key",
            Error::InvalidSignature => "invalid signature",
            Error::SigningFailed => "signing failed",
        })
    }
}

impl core::error::Error for Error {}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        use postcard::Error as P;
        match e {
            P::DeserializeUnexpectedEnd => Error::Truncated,
            P::DeserializeBadEnum => Error::UnknownVariant,
            P::DeserializeBadUtf8 => Error::InvalidUtf8,
            // A serde custom error: heapless raises it for capacity overflow,
            // and serde's derive for an unknown enum tag. Decoders of types
            // with enums read the tags first (`Action::decode`), so what
            // reaches here is an over-long field.
            P::SerdeDeCustom => Error::TooLong,
            P::SerializeBufferFull => Error::BufferTooSmall,
            _ => Error::Malformed,
        }
    }
}
