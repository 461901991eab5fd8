//! Every size bound of tee-core, in one place.
//!
//! The signer runs on microcontrollers with a few KiB of RAM, so every field
//! of every action has a fixed upper bound, enforced when an action is built
//! or decoded ([`crate::Error::TooLong`]). The field bounds are the one
//! build-time choice here:
//!
//! - by default (a microcontroller), they cover what ERC-8004 agents
//!   usually send: URIs are `ipfs://` or `https://` links, tags and
//!   metadata are short. They keep the Cortex-M4 image within 24 KiB of
//!   RAM: decoding an action needs several action-sized temporaries on the
//!   stack (docs/performance.md);
//! - with the `host-bounds` feature (the std signer: tee-store, tee-host, tee-client), URIs,
//!   metadata values and messages take 8 KiB and calldata 16 KiB: an agent
//!   may keep its whole registration file on-chain as a base64 `data:` URI.
//!
//! Everything derived below follows. A device reports its bounds
//! ([`ActionBounds`](crate::action::ActionBounds), in `DeviceInfo`), so a
//! client knows before it asks.

use crate::frame::{HEADER_LEN, encoded_len_bound, wire_len_bound};

#[cfg(not(feature = "host-bounds"))]
mod fields {
    pub const MAX_URI_LEN: usize = 256;
    pub const MAX_METADATA_VALUE_LEN: usize = 128;
    pub const MAX_CALLDATA_LEN: usize = 512;
    pub const MAX_MESSAGE_LEN: usize = 512;
}

#[cfg(feature = "host-bounds")]
mod fields {
    pub const MAX_URI_LEN: usize = 8192;
    pub const MAX_METADATA_VALUE_LEN: usize = 8192;
    pub const MAX_CALLDATA_LEN: usize = 16384;
    pub const MAX_MESSAGE_LEN: usize = 8192;
}

/// `agentURI`, `newURI`, `endpoint`, `feedbackURI`, `responseURI`, `requestURI`
/// (256 bytes; 8 KiB with `host-bounds`).
pub const MAX_URI_LEN: usize = fields::MAX_URI_LEN;
/// `tag1`, `tag2` (reputation) and `tag` (validation).
pub const MAX_TAG_LEN: usize = 64;
/// `metadataKey` in `setMetadata` and `register(string,(string,bytes)[])`.
pub const MAX_METADATA_KEY_LEN: usize = 64;
/// `metadataValue` in `setMetadata` and `register(string,(string,bytes)[])`
/// (128 bytes; 8 KiB with `host-bounds`).
pub const MAX_METADATA_VALUE_LEN: usize = fields::MAX_METADATA_VALUE_LEN;
/// Entries in `register(string,(string,bytes)[])`.
pub const MAX_METADATA_ENTRIES: usize = 4;
/// The `signature` argument of `setAgentWallet` (65 bytes for an EOA; ERC-1271
/// wallets may need more).
pub const MAX_WALLET_SIGNATURE_LEN: usize = 256;
/// Calldata of a generic (blind) transaction (an ERC-20 transfer is 68
/// bytes, a registry call a few hundred): 512 bytes; 16 KiB with
/// `host-bounds`.
pub const MAX_CALLDATA_LEN: usize = fields::MAX_CALLDATA_LEN;
/// Message of an EIP-191 `personal_sign` action (a sign-in message is a few
/// hundred bytes): 512 bytes; 8 KiB with `host-bounds`.
pub const MAX_MESSAGE_LEN: usize = fields::MAX_MESSAGE_LEN;

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
/// Upper bound of an encoded slot record (key and policy), as the device
/// stores it through its key store.
pub const MAX_SLOT_RECORD: usize = 640;

/// Upper bound of any request body (the largest is `Sign`: slot, sequence,
/// action).
pub const MAX_REQUEST_BODY: usize = 1 + 10 + MAX_ACTION_LEN;
/// Upper bound of any response body (the largest is `Attest`).
pub const MAX_RESPONSE_BODY: usize = MAX_QUOTE_LEN + 256;
/// Accumulator a device needs to receive any request frame (COBS-encoded,
/// delimiters excluded).
pub const MAX_REQUEST_FRAME: usize = encoded_len_bound(HEADER_LEN + MAX_REQUEST_BODY);
/// Accumulator a client needs to receive any response frame.
pub const MAX_RESPONSE_FRAME: usize = encoded_len_bound(HEADER_LEN + MAX_RESPONSE_BODY);
/// Buffer that holds any request frame on the wire, delimiters included.
pub const MAX_REQUEST_WIRE: usize = wire_len_bound(HEADER_LEN + MAX_REQUEST_BODY);
/// Buffer that holds any response frame on the wire, delimiters included.
pub const MAX_RESPONSE_WIRE: usize = wire_len_bound(HEADER_LEN + MAX_RESPONSE_BODY);

// ---- actions ----

/// Upper bound of the canonical (postcard) encoding of any [`crate::Action`].
/// A test builds the largest action of every kind and checks this bound is
/// reached exactly.
pub const MAX_ACTION_LEN: usize = 1 + max(
    max(AGENT_WALLET_SET_LEN, max(REGISTRY_TX_LEN, LEGACY_REGISTRY_TX_LEN)),
    max(
        max(GENERIC_TX_LEN, LEGACY_GENERIC_TX_LEN),
        max(PERSONAL_MESSAGE_LEN, EIP712_PREHASHED_LEN),
    ),
);

/// Upper bound of the ABI calldata of any registry call.
pub const MAX_REGISTRY_CALLDATA_LEN: usize = max(
    // register(string,(string,bytes)[])
    4 + 2 * 32
        + abi_tail(MAX_URI_LEN)
        + 32
        + MAX_METADATA_ENTRIES
            * (32 + 2 * 32 + abi_tail(MAX_METADATA_KEY_LEN) + abi_tail(MAX_METADATA_VALUE_LEN)),
    // giveFeedback: eight head words, four strings
    4 + 8 * 32 + 2 * abi_tail(MAX_TAG_LEN) + 2 * abi_tail(MAX_URI_LEN),
);

/// Upper bound of the calldata of any transaction action.
pub const MAX_TX_CALLDATA_LEN: usize = max(MAX_REGISTRY_CALLDATA_LEN, MAX_CALLDATA_LEN);

/// Upper bound of a signed transaction: an EIP-1559 one's type byte, list
/// header and twelve fields at their largest (a legacy transaction's nine
/// fields are shorter: no type byte, one fee, `v` at most 17 bytes against
/// chain id, second fee, access list and y parity).
pub const MAX_SIGNED_TX_LEN: usize = 1 + rlp_header(SIGNED_TX_PAYLOAD_LEN) + SIGNED_TX_PAYLOAD_LEN;

const SIGNED_TX_PAYLOAD_LEN: usize = 3 * 9 // chain id, nonce, gas limit
    + 2 * 17 // fees
    + 21 // to
    + 33 // value
    + rlp_header(MAX_TX_CALLDATA_LEN) + MAX_TX_CALLDATA_LEN
    + 1 // empty access list
    + 1 // y parity
    + 2 * 33; // r, s

// postcard sizes: u64 varint <= 10 bytes, u128/i128 varint <= 19, length
// prefixes are varints.
const TX_PARAMS_LEN: usize = 3 * 10 + 2 * 19;
const LEGACY_TX_PARAMS_LEN: usize = 3 * 10 + 19;
const AGENT_WALLET_SET_LEN: usize = 10 + 20 + 32 + 20 + 20 + 10;
const REGISTRY_TX_LEN: usize =
    TX_PARAMS_LEN + 20 + 1 + max(REGISTER_WITH_METADATA_LEN, GIVE_FEEDBACK_LEN);
const REGISTER_WITH_METADATA_LEN: usize = pc_bytes(MAX_URI_LEN)
    + varint_len(MAX_METADATA_ENTRIES)
    + MAX_METADATA_ENTRIES * (pc_bytes(MAX_METADATA_KEY_LEN) + pc_bytes(MAX_METADATA_VALUE_LEN));
const GIVE_FEEDBACK_LEN: usize =
    32 + 19 + 1 + 2 * pc_bytes(MAX_TAG_LEN) + 2 * pc_bytes(MAX_URI_LEN) + 32;
const LEGACY_REGISTRY_TX_LEN: usize = REGISTRY_TX_LEN - TX_PARAMS_LEN + LEGACY_TX_PARAMS_LEN;
const GENERIC_TX_LEN: usize = TX_PARAMS_LEN + 20 + 32 + pc_bytes(MAX_CALLDATA_LEN);
const LEGACY_GENERIC_TX_LEN: usize = GENERIC_TX_LEN - TX_PARAMS_LEN + LEGACY_TX_PARAMS_LEN;
const PERSONAL_MESSAGE_LEN: usize = pc_bytes(MAX_MESSAGE_LEN);
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
