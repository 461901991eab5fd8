//! Solidity ABI calldata of the registry calls and the ERC-20 calls.
//!
//! Only what the ERC-8004 registry functions and ERC-20 need: static words, `string` and
//! `bytes`, and the `(string,bytes)[]` metadata array. The encoder streams
//! into a [`Sink`] and computes lengths arithmetically, so the transaction
//! digest is computed without ever materialising the calldata.

use super::types::{MetadataEntry, RegistryCall, TokenCall};
use crate::abi::word;
use crate::error::Result;
use crate::limits::abi_tail;
use crate::primitives::{Address, B256, U256};
use crate::sink::{Sink, SliceWriter};

/// Function selectors: the first four bytes of keccak-256 of each signature.
/// A test recomputes every one; they also match the deployed v2.0.0 ABIs.
pub mod selector {
    /// `register()`
    pub const REGISTER: [u8; 4] = [0x1a, 0xa3, 0xa0, 0x08];
    /// `register(string)`
    pub const REGISTER_WITH_URI: [u8; 4] = [0xf2, 0xc2, 0x98, 0xbe];
    /// `register(string,(string,bytes)[])`
    pub const REGISTER_WITH_METADATA: [u8; 4] = [0x8e, 0xa4, 0x22, 0x86];
    /// `setAgentURI(uint256,string)`
    pub const SET_AGENT_URI: [u8; 4] = [0x0a, 0xf2, 0x8b, 0xd3];
    /// `setMetadata(uint256,string,bytes)`
    pub const SET_METADATA: [u8; 4] = [0x46, 0x66, 0x48, 0xda];
    /// `setAgentWallet(uint256,address,uint256,bytes)`
    pub const SET_AGENT_WALLET: [u8; 4] = [0x2d, 0x1e, 0xf5, 0xae];
    /// `unsetAgentWallet(uint256)`
    pub const UNSET_AGENT_WALLET: [u8; 4] = [0x3f, 0xdd, 0xcf, 0x19];
    /// `giveFeedback(uint256,int128,uint8,string,string,string,string,bytes32)`
    pub const GIVE_FEEDBACK: [u8; 4] = [0x3c, 0x03, 0x6a, 0x7e];
    /// `revokeFeedback(uint256,uint64)`
    pub const REVOKE_FEEDBACK: [u8; 4] = [0x4a, 0xb3, 0xca, 0x99];
    /// `appendResponse(uint256,address,uint64,string,bytes32)`
    pub const APPEND_RESPONSE: [u8; 4] = [0xc2, 0x34, 0x9a, 0xb2];
    /// `validationRequest(address,uint256,string,bytes32)`
    pub const VALIDATION_REQUEST: [u8; 4] = [0xaa, 0xf4, 0x00, 0xc4];
    /// `validationResponse(bytes32,uint8,string,bytes32,string)`
    pub const VALIDATION_RESPONSE: [u8; 4] = [0x3d, 0x65, 0x9a, 0x96];
    /// ERC-20 `transfer(address,uint256)`
    pub const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
    /// ERC-20 `approve(address,uint256)`
    pub const APPROVE: [u8; 4] = [0x09, 0x5e, 0xa7, 0xb3];
    /// ERC-20 `transferFrom(address,address,uint256)`
    pub const TRANSFER_FROM: [u8; 4] = [0x23, 0xb8, 0x72, 0xdd];
}

/// One argument of a call, typed: the calldata encoder writes it, and the
/// display (`display.rs`) shows it, from the same list.
pub(super) enum Arg<'a> {
    /// `uint<N>` that fits in 64 bits.
    Uint(u64),
    /// `uint256`.
    U256(&'a U256),
    /// `int128`.
    Int(i128),
    /// `address`.
    Address(&'a Address),
    /// `bytes32`.
    B256(&'a B256),
    /// `string`.
    Str(&'a str),
    /// `bytes`.
    Bytes(&'a [u8]),
    /// `(string,bytes)[]`.
    Metadata(&'a [MetadataEntry<'a>]),
}

impl Arg<'_> {
    /// A static argument's 32-byte word; `None` for a dynamic one.
    fn word(&self) -> Option<[u8; 32]> {
        match self {
            Arg::Uint(v) => Some(word::uint(*v)),
            Arg::U256(v) => Some(v.0),
            Arg::Int(v) => Some(word::int(*v)),
            Arg::Address(a) => Some(word::address(a)),
            Arg::B256(b) => Some(b.0),
            Arg::Str(_) | Arg::Bytes(_) | Arg::Metadata(_) => None,
        }
    }

    /// Bytes this argument occupies after the head.
    fn tail_len(&self) -> usize {
        match self {
            Arg::Str(t) => abi_tail(t.len()),
            Arg::Bytes(b) => abi_tail(b.len()),
            Arg::Metadata(entries) => 32 + entries.iter().map(|e| 32 + entry_len(e)).sum::<usize>(),
            _ => 0,
        }
    }

    fn write_tail<S: Sink>(&self, s: &mut S) {
        match self {
            Arg::Str(t) => write_bytes(s, t.as_bytes()),
            Arg::Bytes(b) => write_bytes(s, b),
            Arg::Metadata(entries) => {
                s.put(&U256::from_u64(entries.len() as u64).0);
                // An array of dynamic tuples is itself head (offsets) + tails.
                let mut offset = 32 * entries.len();
                for e in *entries {
                    s.put(&U256::from_u64(offset as u64).0);
                    offset += entry_len(e);
                }
                for e in *entries {
                    write_body(s, &entry_args(e));
                }
            }
            _ => {}
        }
    }
}

/// A dynamic `bytes`/`string` tail: length word, data, zero padding.
fn write_bytes<S: Sink>(s: &mut S, b: &[u8]) {
    s.put(&U256::from_u64(b.len() as u64).0);
    s.put(b);
    s.put_zeros(b.len().next_multiple_of(32) - b.len());
}

fn entry_args<'a>(e: &MetadataEntry<'a>) -> [Arg<'a>; 2] {
    [Arg::Str(e.key), Arg::Bytes(e.value)]
}

fn entry_len(e: &MetadataEntry<'_>) -> usize {
    body_len(&entry_args(e))
}

/// Head plus tails of a tuple of arguments.
fn body_len(args: &[Arg<'_>]) -> usize {
    32 * args.len() + args.iter().map(Arg::tail_len).sum::<usize>()
}

fn write_body<S: Sink>(s: &mut S, args: &[Arg<'_>]) {
    let mut offset = 32 * args.len();
    for a in args {
        match a.word() {
            Some(w) => s.put(&w),
            None => {
                s.put(&U256::from_u64(offset as u64).0);
                offset += a.tail_len();
            }
        }
    }
    for a in args.iter().filter(|a| a.word().is_none()) {
        a.write_tail(s);
    }
}

impl RegistryCall<'_> {
    /// Calls `f` with the function's selector and name and the arguments
    /// in ABI order: the one table of each call's fields, which the
    /// calldata and the display both read.
    pub(super) fn with_args<R>(&self, f: impl FnOnce([u8; 4], &str, &[Arg<'_>]) -> R) -> R {
        use Arg as A;
        use RegistryCall as C;
        use selector as sel;
        match self {
            C::Register => f(sel::REGISTER, "register", &[]),
            C::RegisterWithUri { agent_uri } => {
                f(sel::REGISTER_WITH_URI, "register", &[A::Str(agent_uri)])
            }
            C::RegisterWithMetadata { agent_uri, metadata } => f(
                sel::REGISTER_WITH_METADATA,
                "register",
                &[A::Str(agent_uri), A::Metadata(metadata)],
            ),
            C::SetAgentUri { agent_id, new_uri } => {
                f(sel::SET_AGENT_URI, "setAgentURI", &[A::U256(agent_id), A::Str(new_uri)])
            }
            C::SetMetadata { agent_id, key, value } => f(
                sel::SET_METADATA,
                "setMetadata",
                &[A::U256(agent_id), A::Str(key), A::Bytes(value)],
            ),
            C::SetAgentWallet { agent_id, new_wallet, deadline, signature } => f(
                sel::SET_AGENT_WALLET,
                "setAgentWallet",
                &[
                    A::U256(agent_id),
                    A::Address(new_wallet),
                    A::Uint(*deadline),
                    A::Bytes(signature),
                ],
            ),
            C::UnsetAgentWallet { agent_id } => {
                f(sel::UNSET_AGENT_WALLET, "unsetAgentWallet", &[A::U256(agent_id)])
            }
            C::GiveFeedback {
                agent_id,
                value,
                value_decimals,
                tag1,
                tag2,
                endpoint,
                feedback_uri,
                feedback_hash,
            } => f(
                sel::GIVE_FEEDBACK,
                "giveFeedback",
                &[
                    A::U256(agent_id),
                    A::Int(*value),
                    A::Uint(u64::from(*value_decimals)),
                    A::Str(tag1),
                    A::Str(tag2),
                    A::Str(endpoint),
                    A::Str(feedback_uri),
                    A::B256(feedback_hash),
                ],
            ),
            C::RevokeFeedback { agent_id, feedback_index } => f(
                sel::REVOKE_FEEDBACK,
                "revokeFeedback",
                &[A::U256(agent_id), A::Uint(*feedback_index)],
            ),
            C::AppendResponse {
                agent_id,
                client_address,
                feedback_index,
                response_uri,
                response_hash,
            } => f(
                sel::APPEND_RESPONSE,
                "appendResponse",
                &[
                    A::U256(agent_id),
                    A::Address(client_address),
                    A::Uint(*feedback_index),
                    A::Str(response_uri),
                    A::B256(response_hash),
                ],
            ),
            C::ValidationRequest { validator_address, agent_id, request_uri, request_hash } => f(
                sel::VALIDATION_REQUEST,
                "validationRequest",
                &[
                    A::Address(validator_address),
                    A::U256(agent_id),
                    A::Str(request_uri),
                    A::B256(request_hash),
                ],
            ),
            C::ValidationResponse { request_hash, response, response_uri, response_hash, tag } => {
                f(
                    sel::VALIDATION_RESPONSE,
                    "validationResponse",
                    &[
                        A::B256(request_hash),
                        A::Uint(u64::from(*response)),
                        A::Str(response_uri),
                        A::B256(response_hash),
                        A::Str(tag),
                    ],
                )
            }
        }
    }

    /// The function selector.
    #[must_use]
    pub fn selector(&self) -> [u8; 4] {
        self.with_args(|sel, _, _| sel)
    }

    /// Length of the calldata (selector included).
    #[must_use]
    pub fn calldata_len(&self) -> usize {
        AbiCall::Registry(self).calldata_len()
    }

    /// Writes the calldata into `buf` ([`Self::calldata_len`] bytes) and
    /// returns it.
    pub fn calldata<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
        AbiCall::Registry(self).calldata(buf)
    }
}

impl TokenCall {
    /// Calls `f` with the function's selector and name and the arguments
    /// in ABI order, as [`RegistryCall::with_args`].
    pub(super) fn with_args<R>(&self, f: impl FnOnce([u8; 4], &str, &[Arg<'_>]) -> R) -> R {
        use Arg as A;
        match self {
            TokenCall::Transfer { to, amount } => {
                f(selector::TRANSFER, "transfer", &[A::Address(to), A::U256(amount)])
            }
            TokenCall::Approve { spender, amount } => {
                f(selector::APPROVE, "approve", &[A::Address(spender), A::U256(amount)])
            }
            TokenCall::TransferFrom { from, to, amount } => f(
                selector::TRANSFER_FROM,
                "transferFrom",
                &[A::Address(from), A::Address(to), A::U256(amount)],
            ),
        }
    }

    /// Writes the calldata into `buf` (at most 100 bytes) and returns it.
    pub fn calldata<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
        AbiCall::Token(self).calldata(buf)
    }
}

/// A call whose calldata the core writes from its typed fields: a
/// registry function or an ERC-20 one.
#[derive(Clone, Copy)]
pub(crate) enum AbiCall<'a> {
    Registry(&'a RegistryCall<'a>),
    Token(&'a TokenCall),
}

impl AbiCall<'_> {
    fn with_args<R>(&self, f: impl FnOnce([u8; 4], &str, &[Arg<'_>]) -> R) -> R {
        match self {
            AbiCall::Registry(c) => c.with_args(f),
            AbiCall::Token(c) => c.with_args(f),
        }
    }

    /// Length of the calldata (selector included).
    pub(crate) fn calldata_len(&self) -> usize {
        self.with_args(|_, _, args| 4 + body_len(args))
    }

    pub(crate) fn write_calldata<S: Sink>(&self, s: &mut S) {
        self.with_args(|selector, _, args| {
            s.put(&selector);
            write_body(s, args);
        });
    }

    fn calldata<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
        let mut w = SliceWriter::new(buf);
        self.write_calldata(&mut w);
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::keccak256;
    use crate::sink::Counter;

    #[test]
    fn selectors_are_keccak_of_signatures() {
        for (sig, sel) in [
            ("register()", selector::REGISTER),
            ("register(string)", selector::REGISTER_WITH_URI),
            ("register(string,(string,bytes)[])", selector::REGISTER_WITH_METADATA),
            ("setAgentURI(uint256,string)", selector::SET_AGENT_URI),
            ("setMetadata(uint256,string,bytes)", selector::SET_METADATA),
            ("setAgentWallet(uint256,address,uint256,bytes)", selector::SET_AGENT_WALLET),
            ("unsetAgentWallet(uint256)", selector::UNSET_AGENT_WALLET),
            (
                "giveFeedback(uint256,int128,uint8,string,string,string,string,bytes32)",
                selector::GIVE_FEEDBACK,
            ),
            ("revokeFeedback(uint256,uint64)", selector::REVOKE_FEEDBACK),
            ("appendResponse(uint256,address,uint64,string,bytes32)", selector::APPEND_RESPONSE),
            ("validationRequest(address,uint256,string,bytes32)", selector::VALIDATION_REQUEST),
            (
                "validationResponse(bytes32,uint8,string,bytes32,string)",
                selector::VALIDATION_RESPONSE,
            ),
            ("transfer(address,uint256)", selector::TRANSFER),
            ("approve(address,uint256)", selector::APPROVE),
            ("transferFrom(address,address,uint256)", selector::TRANSFER_FROM),
        ] {
            assert_eq!(keccak256(sig.as_bytes()).0[..4], sel, "{sig}");
        }
    }

    #[test]
    fn set_agent_uri_layout() {
        let call = RegistryCall::SetAgentUri { agent_id: U256::from_u64(7), new_uri: "ipfs://x" };
        let mut buf = [0u8; 256];
        let cd = call.calldata(&mut buf).unwrap();
        assert_eq!(cd.len(), 4 + 4 * 32);
        assert_eq!(&cd[..4], &selector::SET_AGENT_URI);
        assert_eq!(cd[4 + 31], 7);
        assert_eq!(cd[4 + 63], 0x40); // offset of the string
        assert_eq!(cd[4 + 95], 8); // its length
        assert_eq!(&cd[4 + 96..4 + 104], b"ipfs://x");
        assert!(cd[4 + 104..].iter().all(|&b| b == 0));
    }

    #[test]
    fn length_arithmetic_matches_writer() {
        let e = |key, value| MetadataEntry { key, value };
        let call = RegistryCall::RegisterWithMetadata {
            agent_uri: "https://agent.example/card.json",
            metadata: heapless::Vec::from_slice(&[
                e("a", &[1; 33]),
                e("", &[]),
                e("key", &[9; 64]),
            ])
            .unwrap(),
        };
        let mut c = Counter::default();
        AbiCall::Registry(&call).write_calldata(&mut c);
        assert_eq!(c.0, call.calldata_len());
        assert_eq!(call.calldata(&mut [0u8; 16]), Err(crate::Error::BufferTooSmall));
    }
}
