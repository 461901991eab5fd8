//! Every size bound of tee-core, in one place.
//!
//! Actions borrow their strings and byte fields from the frame they were
//! decoded from, so no type has a size that depends on a field's bound.
//! How long a field may be is a device's choice at run time, an
//! [`ActionBounds`]: a device is opened with its bounds, reports them in
//! `DeviceInfo` and refuses an action with a longer field
//! ([`DeviceError::OverBound`](crate::protocol::DeviceError::OverBound),
//! naming the field, its length and the bound). Two sets are defined here:
//!
//! - [`ActionBounds::MCU`]: what ERC-8004 agents usually send (URIs are
//!   `ipfs://` or `https://` links, tags and metadata short), sized for a
//!   Cortex-M4's receive buffer;
//! - [`ActionBounds::HOST`] (the std signer): URIs and messages of 64 KiB,
//!   metadata values of 16 KiB, calldata of 128 KiB: an agent may keep its
//!   whole registration file or an attestation bundle on-chain as a
//!   `data:` URI.
//!
//! Everything derived from a set of bounds (the largest action, request
//! body and frame) is a `const fn` of it below, so a device's receive
//! buffer is sized from the bounds it reports. The `MAX_REQUEST_*` and
//! `MAX_ACTION_LEN` constants are the host's: the most any device of this
//! project accepts, what a client sizes its buffers to.

use crate::action::ActionBounds;
use crate::frame::{HEADER_LEN, encoded_len_bound, wire_len_bound};

/// `tag1`, `tag2` (reputation) and `tag` (validation).
pub const MAX_TAG_LEN: usize = 64;
/// `metadataKey` in `setMetadata` and `register(string,(string,bytes)[])`.
pub const MAX_METADATA_KEY_LEN: usize = 64;
/// Entries in `register(string,(string,bytes)[])` (the one bound that is a
/// capacity: an action holds its entries inline).
pub const MAX_METADATA_ENTRIES: usize = 4;
/// The `signature` argument of `setAgentWallet` (65 bytes for an EOA; ERC-1271
/// wallets may need more).
pub const MAX_WALLET_SIGNATURE_LEN: usize = 256;

// ---- the device and its protocol ----

/// Key slots of a device by default (a microcontroller may offer fewer; a
/// host more, up to [`MAX_SLOTS`]).
pub const NUM_SLOTS: usize = 8;
/// The most key slots a device may offer: slot numbers are a byte, and 255
/// is [`DEVICE_SLOT`](crate::protocol::DEVICE_SLOT), the device's identity.
pub const MAX_SLOTS: usize = 255;
/// Longest key-derivation path of `DeriveKey`.
pub const MAX_PATH_LEN: usize = 64;
/// Longest `Echo` payload.
pub const MAX_ECHO_LEN: usize = 256;
/// Longest TDX quote an `Attest` response carries.
pub const MAX_QUOTE_LEN: usize = 8192;
/// Largest chunk a `GetEvidence` response carries.
pub const MAX_EVIDENCE_CHUNK: usize = MAX_QUOTE_LEN;
/// Entries per `GetAuditLog` response.
pub const AUDIT_BATCH: usize = 8;
/// Entries the device's audit ring holds.
pub const AUDIT_CAPACITY: usize = 16;
/// Entries in a policy's chain list.
pub const MAX_POLICY_CHAINS: usize = 4;
/// Entries in a policy's contract list.
pub const MAX_POLICY_CONTRACTS: usize = 8;
/// Entries in a policy's agent list.
pub const MAX_POLICY_AGENTS: usize = 4;
/// Entries in a policy's EIP-712 domain list.
pub const MAX_POLICY_DOMAINS: usize = 4;
/// Tokens a policy names: two, so that the largest slot record (every
/// token with a cap) fits one journal record and a microcontroller's flash
/// record (four would make it 1,105 bytes).
pub const MAX_POLICY_TOKENS: usize = 2;
/// Entries in a policy's recipient list.
pub const MAX_POLICY_RECIPIENTS: usize = 4;
/// Approvers a policy's approval rule names (the n of m-of-n), and the
/// most approvals a `SignApproved` carries.
pub const MAX_POLICY_APPROVERS: usize = 3;
/// Upper bound of an encoded slot record (key and policy), as the device
/// stores it through its key store.
/// (the largest, a derived key's longest path with every policy list full
/// and an approval rule, is 1,068 bytes; a test holds it within).
pub const MAX_SLOT_RECORD: usize = 1088;

/// Upper bound of any request body of a device with `bounds` (the largest
/// is `Sign`: slot, sequence, action).
#[must_use]
pub const fn request_body_len(bounds: &ActionBounds) -> usize {
    1 + 10 + bounds.action as usize
}

/// Accumulator a device with `bounds` needs to receive any request frame
/// (COBS-encoded, delimiters excluded).
#[must_use]
pub const fn request_frame_len(bounds: &ActionBounds) -> usize {
    encoded_len_bound(HEADER_LEN + request_body_len(bounds))
}

/// Buffer that holds any request frame to a device with `bounds` on the
/// wire, delimiters included.
#[must_use]
pub const fn request_wire_len(bounds: &ActionBounds) -> usize {
    wire_len_bound(HEADER_LEN + request_body_len(bounds))
}

/// Upper bound of any request body ([`ActionBounds::HOST`]'s, the largest).
pub const MAX_REQUEST_BODY: usize = request_body_len(&ActionBounds::HOST);
/// Upper bound of any response body (the largest is `Attest`).
pub const MAX_RESPONSE_BODY: usize = MAX_QUOTE_LEN + 256;
/// Accumulator that receives any request frame of any device of this
/// project ([`ActionBounds::HOST`]'s).
pub const MAX_REQUEST_FRAME: usize = request_frame_len(&ActionBounds::HOST);
/// A microcontroller's receive accumulator ([`ActionBounds::MCU`]'s).
pub const MCU_REQUEST_FRAME: usize = request_frame_len(&ActionBounds::MCU);
/// Accumulator a client needs to receive any response frame.
pub const MAX_RESPONSE_FRAME: usize = encoded_len_bound(HEADER_LEN + MAX_RESPONSE_BODY);
/// Buffer that holds any request frame on the wire, delimiters included
/// ([`ActionBounds::HOST`]'s).
pub const MAX_REQUEST_WIRE: usize = request_wire_len(&ActionBounds::HOST);
/// Buffer that holds any response frame on the wire, delimiters included.
pub const MAX_RESPONSE_WIRE: usize = wire_len_bound(HEADER_LEN + MAX_RESPONSE_BODY);

// ---- actions ----

/// Upper bound of the canonical (postcard) encoding of any [`crate::Action`]
/// a device with [`ActionBounds::HOST`] takes.
pub const MAX_ACTION_LEN: usize = ActionBounds::HOST.action as usize;

/// Upper bound of the ABI calldata of any registry call within [`ActionBounds::HOST`].
pub const MAX_REGISTRY_CALLDATA_LEN: usize = registry_calldata_len(&ActionBounds::HOST);

/// Upper bound of a signed transaction within [`ActionBounds::HOST`].
pub const MAX_SIGNED_TX_LEN: usize = signed_tx_len(&ActionBounds::HOST);

/// Upper bound of the canonical encoding of an action within `b` (a
/// test builds the largest action of every kind and checks it is reached
/// exactly).
#[must_use]
pub const fn action_len(b: &ActionBounds) -> usize {
    let (uri, value) = (b.uri as usize, b.metadata_value as usize);
    let (calldata, message) = (b.calldata as usize, b.message as usize);
    let register_with_metadata = pc_bytes(uri)
        + varint_len(MAX_METADATA_ENTRIES)
        + MAX_METADATA_ENTRIES * (pc_bytes(MAX_METADATA_KEY_LEN) + pc_bytes(value));
    let give_feedback = 32 + 19 + 1 + 2 * pc_bytes(MAX_TAG_LEN) + 2 * pc_bytes(uri) + 32;
    // A registry call: the registry, the call's tag, its arguments.
    let registry_body = 20 + 1 + max(register_with_metadata, give_feedback);
    let generic_body = 20 + 32 + pc_bytes(calldata);
    // The envelope's tag and the larger envelope, the body's tag and body.
    let transaction = 1 + TX_PARAMS_LEN + 1 + max(registry_body, generic_body);
    // EIP-3009: kind, chain, token, name, version, from, to, value,
    // validAfter, validBefore, nonce.
    let authorization = 1 + 10 + 20 + 2 * pc_bytes(MAX_TAG_LEN) + 20 + 20 + 32 + 10 + 10 + 32;
    1 + max(
        max(max(AGENT_WALLET_SET_LEN, transaction), authorization),
        max(pc_bytes(message), EIP712_PREHASHED_LEN),
    )
}

/// Upper bound of the ABI calldata of any registry call within `b`.
#[must_use]
pub const fn registry_calldata_len(b: &ActionBounds) -> usize {
    let (uri, value) = (b.uri as usize, b.metadata_value as usize);
    max(
        // register(string,(string,bytes)[])
        4 + 2 * 32
            + abi_tail(uri)
            + 32
            + MAX_METADATA_ENTRIES
                * (32 + 2 * 32 + abi_tail(MAX_METADATA_KEY_LEN) + abi_tail(value)),
        // giveFeedback: eight head words, four strings
        4 + 8 * 32 + 2 * abi_tail(MAX_TAG_LEN) + 2 * abi_tail(uri),
    )
}

/// Upper bound of a signed transaction within `b`: an EIP-1559 one's type
/// byte, list header and twelve fields at their largest (a legacy
/// transaction's nine fields are shorter: no type byte, one fee, `v` at
/// most 17 bytes against chain id, second fee, access list and y parity).
#[must_use]
pub const fn signed_tx_len(b: &ActionBounds) -> usize {
    let calldata = max(registry_calldata_len(b), b.calldata as usize);
    let payload = 3 * 9 // chain id, nonce, gas limit
        + 2 * 17 // fees
        + 21 // to
        + 33 // value
        + rlp_header(calldata) + calldata
        + 1 // empty access list
        + 1 // y parity
        + 2 * 33; // r, s
    1 + rlp_header(payload) + payload
}

// postcard sizes: u64 varint <= 10 bytes, u128/i128 varint <= 19, length
// prefixes are varints.
const TX_PARAMS_LEN: usize = 3 * 10 + 2 * 19;
const AGENT_WALLET_SET_LEN: usize = 10 + 20 + 32 + 20 + 20 + 10;
const EIP712_PREHASHED_LEN: usize = 64;
const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Length of a postcard varint.
const fn varint_len(n: usize) -> usize {
    let mut len = 1;
    let mut v = n >> 7;
    while v > 0 {
        len += 1;
        v >>= 7;
    }
    len
}

/// Postcard length-prefixed byte string of at most `n` bytes.
const fn pc_bytes(n: usize) -> usize {
    varint_len(n) + n
}

/// ABI tail of a dynamic `bytes`/`string`: length word plus padded data.
pub(crate) const fn abi_tail(len: usize) -> usize {
    32 + len.div_ceil(32) * 32
}

/// RLP header length for a payload of `len` bytes (string or list).
pub(crate) const fn rlp_header(len: usize) -> usize {
    if len < 56 {
        1
    } else {
        let mut n = 1;
        let mut v = len >> 8;
        while v > 0 {
            n += 1;
            v >>= 8;
        }
        1 + n
    }
}
