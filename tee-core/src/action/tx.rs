//! Transactions: signing hash, signed encoding, and strict decoders.
//!
//! EIP-1559: `0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas,
//! gasLimit, to, value, data, accessList])` is hashed for signing; the signed
//! form appends `yParity, r, s`. Access lists are always empty.
//!
//! Legacy with EIP-155: `rlp([nonce, gasPrice, gasLimit, to, value, data,
//! chainId, 0, 0])` is hashed for signing; the signed form replaces the last
//! three with `v = chainId * 2 + 35 + yParity, r, s`.
//!
//! Contract creation is not supported (see [`crate::action::TxParams`]).

use sha3::{Digest, Keccak256};

use super::calldata::AbiCall;
use super::types::{Action, Envelope, GenericTx, LegacyTxParams, Transaction, TxBody, TxParams};
use crate::error::{Error, Result};
use crate::primitives::{Address, B256, U256};
use crate::rlp::{self, Reader};
use crate::signer::Signature;
use crate::sink::{Sink, SliceWriter};

/// The EIP-2718 type byte of EIP-1559 transactions.
pub const TX_TYPE_EIP1559: u8 = 0x02;

/// Calldata: raw bytes, or a typed call encoded on the fly.
#[derive(Clone, Copy)]
pub(crate) enum CallData<'a> {
    Raw(&'a [u8]),
    Abi(AbiCall<'a>),
}

/// The fields of a transaction action, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct TxView<'a> {
    params: &'a Envelope,
    to: &'a Address,
    value: U256,
    data: CallData<'a>,
}

impl<'a> TxView<'a> {
    /// A transaction's fields, whatever its envelope and body.
    pub(crate) fn new(tx: &'a Transaction<'a>) -> Self {
        let data = match &tx.body {
            TxBody::Registry(r) => CallData::Abi(AbiCall::Registry(&r.call)),
            TxBody::Generic(g) => CallData::Raw(g.data),
            TxBody::Token(t) => CallData::Abi(AbiCall::Token(&t.call)),
        };
        TxView { params: &tx.envelope, to: tx.body.to(), value: tx.body.value(), data }
    }

    pub(crate) fn of(action: &'a Action<'a>) -> Result<Self> {
        action.transaction().map(TxView::new).ok_or(Error::NotATransaction)
    }

    fn data_field_len(&self) -> usize {
        match self.data {
            CallData::Raw(b) => rlp::bytes_len(b),
            // Typed calldata is at least a 4-byte selector, never one byte.
            CallData::Abi(c) => {
                let n = c.calldata_len();
                rlp::header_len(n) + n
            }
        }
    }

    fn put_data<S: Sink>(&self, s: &mut S) {
        match self.data {
            CallData::Raw(b) => rlp::put_bytes(s, b),
            CallData::Abi(c) => {
                rlp::put_string_header(s, c.calldata_len());
                c.write_calldata(s);
            }
        }
    }

    /// `to, value, data`: the fields both types share, in the same order.
    fn call_len(&self) -> usize {
        21 + rlp::uint_len(&self.value.0) + self.data_field_len()
    }

    fn put_call<S: Sink>(&self, s: &mut S) {
        rlp::put_bytes(s, &self.to.0);
        rlp::put_uint(s, &self.value.0);
        self.put_data(s);
    }

    fn payload_len(&self, sig: Option<&Signature>) -> usize {
        let sig_len = |v: &[u8]| match sig {
            Some(sig) => rlp::uint_len(v) + rlp::uint_len(&sig.r) + rlp::uint_len(&sig.s),
            None => 0,
        };
        match self.params {
            Envelope::Eip1559(p) => {
                rlp::uint_len(&p.chain_id.to_be_bytes())
                    + rlp::uint_len(&p.nonce.to_be_bytes())
                    + rlp::uint_len(&p.max_priority_fee_per_gas.to_be_bytes())
                    + rlp::uint_len(&p.max_fee_per_gas.to_be_bytes())
                    + rlp::uint_len(&p.gas_limit.to_be_bytes())
                    + self.call_len()
                    + 1
                    + sig_len(&[u8::from(sig.is_some_and(|s| s.y_parity))])
            }
            Envelope::Legacy(p) => {
                let tail = match sig {
                    // v, r, s
                    Some(sig) => sig_len(&eip155_v(p.chain_id, sig.y_parity).to_be_bytes()),
                    // chainId, 0, 0
                    None => rlp::uint_len(&p.chain_id.to_be_bytes()) + 2,
                };
                rlp::uint_len(&p.nonce.to_be_bytes())
                    + rlp::uint_len(&p.gas_price.to_be_bytes())
                    + rlp::uint_len(&p.gas_limit.to_be_bytes())
                    + self.call_len()
                    + tail
            }
        }
    }

    fn write<S: Sink>(&self, s: &mut S, sig: Option<&Signature>) {
        match self.params {
            Envelope::Eip1559(p) => {
                s.put_byte(TX_TYPE_EIP1559);
                rlp::put_list_header(s, self.payload_len(sig));
                rlp::put_uint(s, &p.chain_id.to_be_bytes());
                rlp::put_uint(s, &p.nonce.to_be_bytes());
                rlp::put_uint(s, &p.max_priority_fee_per_gas.to_be_bytes());
                rlp::put_uint(s, &p.max_fee_per_gas.to_be_bytes());
                rlp::put_uint(s, &p.gas_limit.to_be_bytes());
                self.put_call(s);
                rlp::put_list_header(s, 0);
                if let Some(sig) = sig {
                    rlp::put_uint(s, &[u8::from(sig.y_parity)]);
                    rlp::put_uint(s, &sig.r);
                    rlp::put_uint(s, &sig.s);
                }
            }
            Envelope::Legacy(p) => {
                rlp::put_list_header(s, self.payload_len(sig));
                rlp::put_uint(s, &p.nonce.to_be_bytes());
                rlp::put_uint(s, &p.gas_price.to_be_bytes());
                rlp::put_uint(s, &p.gas_limit.to_be_bytes());
                self.put_call(s);
                match sig {
                    Some(sig) => {
                        rlp::put_uint(s, &eip155_v(p.chain_id, sig.y_parity).to_be_bytes());
                        rlp::put_uint(s, &sig.r);
                        rlp::put_uint(s, &sig.s);
                    }
                    None => {
                        rlp::put_uint(s, &p.chain_id.to_be_bytes());
                        rlp::put_uint(s, &[]);
                        rlp::put_uint(s, &[]);
                    }
                }
            }
        }
    }

    fn encoded_len(&self, sig: Option<&Signature>) -> usize {
        let payload = self.payload_len(sig);
        let type_byte = usize::from(matches!(self.params, Envelope::Eip1559(_)));
        type_byte + rlp::header_len(payload) + payload
    }
}

/// EIP-155 `v`: `chainId * 2 + 35 + yParity` (a `u128`: chain ids are `u64`).
fn eip155_v(chain_id: u64, y_parity: bool) -> u128 {
    u128::from(chain_id) * 2 + 35 + u128::from(y_parity)
}

/// A transaction's signing hash (EIP-1559, or legacy with EIP-155).
pub(crate) fn signing_hash(view: &TxView<'_>) -> B256 {
    let mut h = Keccak256::new();
    view.write(&mut h, None);
    B256(h.finalize().into())
}

/// The unsigned transaction (`0x02 ‖ rlp(fields)`, or a legacy
/// transaction's `rlp([nonce, gasPrice, gas, to, value, data, chainId, 0, 0])`),
/// whose keccak is the signing hash. Fails with [`Error::NotATransaction`] for other actions.
pub fn encode_unsigned<'b>(action: &Action<'_>, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
    let view = TxView::of(action)?;
    let mut w = SliceWriter::new(buf);
    view.write(&mut w, None);
    w.finish()
}

/// The signed transaction, ready for `eth_sendRawTransaction` (at most
/// [`crate::limits::MAX_SIGNED_TX_LEN`] bytes).
pub fn encode_signed<'b>(
    action: &Action<'_>,
    sig: &Signature,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8]> {
    let view = TxView::of(action)?;
    let mut w = SliceWriter::new(buf);
    view.write(&mut w, Some(sig));
    w.finish()
}

/// Length of [`encode_signed`]'s output.
pub fn signed_len(action: &Action<'_>, sig: &Signature) -> Result<usize> {
    Ok(TxView::of(action)?.encoded_len(Some(sig)))
}

/// The transaction hash: keccak-256 of the signed encoding.
pub fn tx_hash(action: &Action<'_>, sig: &Signature) -> Result<B256> {
    let view = TxView::of(action)?;
    let mut h = Keccak256::new();
    view.write(&mut h, Some(sig));
    Ok(B256(h.finalize().into()))
}

impl<'a> Transaction<'a> {
    /// Decodes an unsigned transaction, strictly, the calldata borrowed
    /// from `bytes`: EIP-1559 (`0x02 ‖ rlp(...)`, empty access list) or
    /// legacy with EIP-155 (`rlp([nonce, gasPrice, gas, to, value, data,
    /// chainId, 0, 0])`). The body is generic: raw calldata is not read as
    /// a registry call.
    pub fn decode_unsigned(bytes: &'a [u8]) -> Result<Transaction<'a>> {
        if is_legacy(bytes) {
            let (mut tx, mut f) = decode_legacy(bytes)?;
            tx.chain_id = f.u64()?;
            if f.u64()? != 0 || f.u64()? != 0 || !f.is_empty() {
                return Err(Error::Malformed);
            }
            return Ok(tx.into_transaction());
        }
        let (tx, fields) = decode_common(bytes)?;
        if !fields.is_empty() {
            return Err(Error::Malformed);
        }
        Ok(tx)
    }

    /// Decodes a signed transaction of either envelope, strictly (a legacy
    /// one with an EIP-155 `v`); the signature must be in range and low-S,
    /// as Ethereum requires.
    pub fn decode_signed(bytes: &'a [u8]) -> Result<(Transaction<'a>, Signature)> {
        if is_legacy(bytes) {
            let (mut tx, mut f) = decode_legacy(bytes)?;
            let (chain_id, y_parity) = eip155_chain(f.u128()?)?;
            tx.chain_id = chain_id;
            return Ok((tx.into_transaction(), read_rs(y_parity, &mut f)?));
        }
        let (tx, mut fields) = decode_common(bytes)?;
        let sig = read_signature(&mut fields)?;
        Ok((tx, sig))
    }
}

/// An RLP list: a legacy transaction (EIP-2718 types are below 0x80).
fn is_legacy(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|&b| b >= 0xc0)
}

/// A legacy transaction read so far (its chain id comes last).
struct Legacy<'a> {
    chain_id: u64,
    nonce: u64,
    gas_price: u128,
    gas_limit: u64,
    body: GenericTx<'a>,
}

impl<'a> Legacy<'a> {
    fn into_transaction(self) -> Transaction<'a> {
        let Legacy { chain_id, nonce, gas_price, gas_limit, body } = self;
        Transaction {
            envelope: Envelope::Legacy(LegacyTxParams { chain_id, nonce, gas_price, gas_limit }),
            body: TxBody::Generic(body),
        }
    }
}

/// A legacy transaction's first six fields (the chain id left zero), and
/// the reader after them.
fn decode_legacy(bytes: &[u8]) -> Result<(Legacy<'_>, Reader<'_>)> {
    let mut f = open_legacy(bytes)?;
    let (nonce, gas_price, gas_limit) = (f.u64()?, f.u128()?, f.u64()?);
    let to = read_to(&mut f)?;
    let value = f.u256()?;
    let data = f.bytes()?;
    let body = GenericTx { to, value, data };
    Ok((Legacy { chain_id: 0, nonce, gas_price, gas_limit, body }, f))
}

/// A legacy transaction's field list: the reader over its items.
fn open_legacy(bytes: &[u8]) -> Result<Reader<'_>> {
    let mut outer = Reader::new(bytes);
    let f = outer.list()?;
    if !outer.is_empty() {
        return Err(Error::TrailingBytes);
    }
    Ok(f)
}

/// The recipient: 20 bytes; empty (contract creation) is not supported.
fn read_to(f: &mut Reader<'_>) -> Result<Address> {
    match f.bytes()? {
        [] => Err(Error::Unsupported),
        b => Ok(Address(b.try_into().map_err(|_| Error::Malformed)?)),
    }
}

/// The chain id and y parity of an EIP-155 `v`; a pre-EIP-155 `v` (27 or
/// 28, bound to no chain) is [`Error::Unsupported`].
fn eip155_chain(v: u128) -> Result<(u64, bool)> {
    let v = v.checked_sub(35).ok_or(Error::Unsupported)?;
    Ok((u64::try_from(v / 2).map_err(|_| Error::Malformed)?, v % 2 == 1))
}

/// The signature that ends a signed EIP-1559 transaction's fields (y
/// parity, r, s), in range and low-S, and nothing after it.
fn read_signature(fields: &mut Reader<'_>) -> Result<Signature> {
    let y_parity = match fields.u64()? {
        0 => false,
        1 => true,
        _ => return Err(Error::InvalidSignature),
    };
    read_rs(y_parity, fields)
}

/// `r, s` ending a signed transaction's fields, in range and low-S, and
/// nothing after them.
fn read_rs(y_parity: bool, fields: &mut Reader<'_>) -> Result<Signature> {
    let r = fields.u256()?.0;
    let s = fields.u256()?.0;
    if !fields.is_empty() {
        return Err(Error::Malformed);
    }
    let mut rsv = [0u8; 65];
    rsv.get_mut(..32).ok_or(Error::Malformed)?.copy_from_slice(&r);
    rsv.get_mut(32..64).ok_or(Error::Malformed)?.copy_from_slice(&s);
    if let Some(v) = rsv.get_mut(64) {
        *v = u8::from(y_parity);
    }
    Signature::from_bytes(&rsv)
}

/// A signed transaction of any calldata length, EIP-1559 or legacy with
/// EIP-155, read strictly: its signing hash (the digest its signature is
/// over) and its signature. What a verifier checks a raw transaction handed
/// out with a signature against.
pub fn signing_hash_of_signed(bytes: &[u8]) -> Result<(B256, Signature)> {
    if is_legacy(bytes) {
        legacy_signing_hash_of_signed(bytes)
    } else {
        eip1559_signing_hash_of_signed(bytes)
    }
}

fn eip1559_signing_hash_of_signed(bytes: &[u8]) -> Result<(B256, Signature)> {
    let mut f = open_fields(bytes)?;
    let all = f.remaining();
    read_unsigned(&mut f)?;
    let unsigned = all.get(..all.len() - f.remaining().len()).ok_or(Error::Malformed)?;
    let sig = read_signature(&mut f)?;
    let mut h = Keccak256::new();
    h.put_byte(TX_TYPE_EIP1559);
    rlp::put_list_header(&mut h, unsigned.len());
    h.put(unsigned);
    Ok((B256(h.finalize().into()), sig))
}

/// `rlp([nonce, gasPrice, gas, to, value, data, v, r, s])` with an EIP-155
/// `v`; a pre-EIP-155 `v` (27 or 28, bound to no chain) is refused as
/// [`Error::Unsupported`].
fn legacy_signing_hash_of_signed(bytes: &[u8]) -> Result<(B256, Signature)> {
    let mut f = open_legacy(bytes)?;
    let all = f.remaining();
    f.u64()?; // nonce
    f.u128()?; // gasPrice
    f.u64()?; // gas
    read_to(&mut f)?;
    f.u256()?; // value
    f.bytes()?; // data
    let unsigned = all.get(..all.len() - f.remaining().len()).ok_or(Error::Malformed)?;
    let (chain_id, y_parity) = eip155_chain(f.u128()?)?;
    let sig = read_rs(y_parity, &mut f)?;
    let chain_id = chain_id.to_be_bytes();
    let mut h = Keccak256::new();
    rlp::put_list_header(&mut h, unsigned.len() + rlp::uint_len(&chain_id) + 2);
    h.put(unsigned);
    rlp::put_uint(&mut h, &chain_id);
    rlp::put_uint(&mut h, &[]);
    rlp::put_uint(&mut h, &[]);
    Ok((B256(h.finalize().into()), sig))
}

/// The nine unsigned fields of an EIP-1559 transaction, the calldata
/// borrowed.
struct Unsigned<'a> {
    tx: TxParams,
    to: Address,
    value: U256,
    data: &'a [u8],
}

/// A type-2 transaction's field list: the reader over its items.
fn open_fields(bytes: &[u8]) -> Result<Reader<'_>> {
    let (&ty, rest) = bytes.split_first().ok_or(Error::Truncated)?;
    if ty != TX_TYPE_EIP1559 {
        return Err(Error::Unsupported);
    }
    let mut outer = Reader::new(rest);
    let f = outer.list()?;
    if !outer.is_empty() {
        return Err(Error::TrailingBytes);
    }
    Ok(f)
}

/// The nine fields every EIP-1559 transaction has (a recipient, an empty
/// access list); leaves the reader after the access list.
fn read_unsigned<'a>(f: &mut Reader<'a>) -> Result<Unsigned<'a>> {
    let tx = TxParams {
        chain_id: f.u64()?,
        nonce: f.u64()?,
        max_priority_fee_per_gas: f.u128()?,
        max_fee_per_gas: f.u128()?,
        gas_limit: f.u64()?,
    };
    let to = read_to(f)?;
    let value = f.u256()?;
    let data = f.bytes()?;
    if !f.list()?.is_empty() {
        return Err(Error::Unsupported);
    }
    Ok(Unsigned { tx, to, value, data })
}

/// The nine fields as a generic transaction; returns the reader
/// positioned after the access list.
fn decode_common(bytes: &[u8]) -> Result<(Transaction<'_>, Reader<'_>)> {
    let mut f = open_fields(bytes)?;
    let u = read_unsigned(&mut f)?;
    let body = TxBody::Generic(GenericTx { to: u.to, value: u.value, data: u.data });
    Ok((Transaction { envelope: Envelope::Eip1559(u.tx), body }, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Action<'static> {
        Action::Transaction(Transaction {
            envelope: Envelope::Eip1559(TxParams {
                chain_id: 1,
                nonce: 0,
                max_priority_fee_per_gas: 2_000_000_000,
                max_fee_per_gas: 100_000_000_000,
                gas_limit: 21_000,
            }),
            body: TxBody::Generic(GenericTx {
                to: Address([0x35; 20]),
                value: U256::from_u64(1_000_000_000_000_000_000),
                data: &[],
            }),
        })
    }

    #[test]
    fn unsigned_round_trip_and_hash() {
        let a = sample();
        let mut buf = [0u8; 512];
        let enc = encode_unsigned(&a, &mut buf).unwrap().to_vec();
        assert_eq!(crate::primitives::keccak256(&enc), a.digest());
        let Action::Transaction(t) = &a else { unreachable!() };
        assert_eq!(&Transaction::decode_unsigned(&enc).unwrap(), t);
        // Trailing byte after the list, and a wrong type byte.
        let mut t = enc.clone();
        t.push(0);
        assert_eq!(Transaction::decode_unsigned(&t), Err(Error::TrailingBytes));
        t = enc.clone();
        t[0] = 0x01;
        assert_eq!(Transaction::decode_unsigned(&t), Err(Error::Unsupported));
        assert_eq!(Transaction::decode_unsigned(&[]), Err(Error::Truncated));
    }

    /// A signed transaction reads back to the digest it was signed over
    /// and its signature, whatever its calldata's length (a registry call
    /// with metadata is longer than a generic transaction may be); any
    /// change to a field changes the hash.
    #[test]
    fn a_signed_transaction_reads_back_to_its_digest() {
        let key = crate::signer::SigningKey::from_bytes(&[7; 32]).unwrap();
        let mut big = sample();
        if let Action::Transaction(Transaction { body: TxBody::Generic(g), .. }) = &mut big {
            g.data = &[0xab; 300];
        }
        for a in [sample(), big] {
            let sig = key.sign_digest(&a.digest()).unwrap();
            let mut buf = [0u8; 1024];
            let raw = encode_signed(&a, &sig, &mut buf).unwrap().to_vec();
            assert_eq!(signing_hash_of_signed(&raw), Ok((a.digest(), sig)));
            let mut edited = raw.clone();
            edited[5] ^= 1;
            assert_ne!(signing_hash_of_signed(&edited).map(|(h, _)| h), Ok(a.digest()));
            assert!(signing_hash_of_signed(&raw[..raw.len() - 1]).is_err());
        }
    }

    #[test]
    fn not_a_transaction() {
        let a = Action::PersonalMessage(crate::action::PersonalMessage { message: b"hi" });
        assert_eq!(encode_unsigned(&a, &mut [0u8; 64]), Err(Error::NotATransaction));
    }
}
