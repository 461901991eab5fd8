"""`TeeAccount`: an eth_account `LocalAccount` whose key never leaves the
signer.

web3.py's signing middleware, coinbase-agentkit's wallet provider and the
ERC-8004 SDKs take a `LocalAccount`; this one is accepted wherever they are
and signs every request through the signer: a transaction (web3.py's
filled dict) or typed data is sent as the JSON a wallet receives, decoded
by the signer into its canonical action (a transaction to an ERC-8004
registry as the typed call), checked against the slot's policy and signed
with an attestation (`last_attestation`). There is no key to read:
`key` is a handle that holds none (`tee_signer.route`), and `encrypt` and
`unsafe_sign_hash` raise `UnsupportedOperation`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from eth_account.datastructures import SignedMessage, SignedTransaction
from eth_account.messages import SignableMessage
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes

from ._native import Signer
from .errors import InvalidRequest, UnsupportedOperation
from .route import TeeKey

# Numbers above 2^53 do not survive JSON readers in other languages: the
# signer takes them as strings.
_JSON_SAFE = 1 << 53


def _quantity(value: Any) -> Any:
    """A JSON-RPC quantity as the signer reads it: ints as numbers (hex
    strings above 2^53), strings as given."""
    if isinstance(value, bool):
        raise InvalidRequest(f"not a number: {value!r}")
    if isinstance(value, int):
        return value if 0 <= value <= _JSON_SAFE else hex(value)
    return value


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)


def _rsv(signature_hex: str) -> tuple[int, int, int, HexBytes]:
    sig = HexBytes(signature_hex)
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64], sig


class TeeAccount(LocalAccount):
    """A slot of the signer as an eth_account account.

    `signer` is a `tee_signer.Signer` or an endpoint string
    (`"unix:/run/tee-signer.sock"`); `slot` the key slot.
    """

    # LocalAccount's constructor takes a key; this account has none, so it
    # sets its own fields instead.
    def __init__(self, signer: Signer | str, slot: int = 0) -> None:  # noqa: D107
        self._signer = signer if isinstance(signer, Signer) else Signer(signer)
        self._slot = slot
        self._address = self._signer.address(slot)
        self._publicapi = None
        #: The last signature's JSON (digest, signature, attestation, ...).
        self.last_signature: dict[str, Any] | None = None
        self._approvals: tuple[str, list[bytes]] | None = None

    def approved(self, request: Mapping[str, Any], signatures: list[Any]) -> TeeAccount:
        """This account, for one signature the slot's policy held for
        approval: `request` is `ApprovalRequired.request`, `signatures` the
        approvers' signatures over its `typedData` (bytes or hex). Sign the
        same transaction or typed data again with the account returned; the
        approvals name the sequence, so they are good for that one
        signature."""
        account = TeeAccount.__new__(TeeAccount)
        account.__dict__.update(self.__dict__)
        account._approvals = (json.dumps(dict(request)), [bytes(HexBytes(s)) for s in signatures])
        return account

    @property
    def address(self) -> str:  # type: ignore[override]
        """The slot's address, EIP-55."""
        return self._address

    @property
    def slot(self) -> int:
        """The signer's slot."""
        return self._slot

    @property
    def signer(self) -> Signer:
        """The signer this account signs with."""
        return self._signer

    @property
    def last_attestation(self) -> dict[str, Any] | None:
        """The attestation of the last signature: a quote bound to its
        digest, with the event log and key chain a validator checks."""
        return None if self.last_signature is None else self.last_signature["attestation"]

    @property
    def key(self) -> TeeKey:  # type: ignore[override]
        """A handle naming this account, no secret: SDKs that sign with
        `w3.eth.account.sign_transaction(tx, account.key)` sign in the signer
        once `tee_signer.use_with()` routes eth_account; anything else that
        gets it fails naming it (`tee_signer.route`)."""
        return TeeKey(self)

    def encrypt(self, password: str, kdf: str | None = None, iterations: int | None = None) -> Any:  # type: ignore[override]
        raise UnsupportedOperation("the key stays in the signer: there is none to encrypt")

    def unsafe_sign_hash(self, message_hash: Any) -> SignedMessage:  # type: ignore[override]
        raise UnsupportedOperation(
            "the signer never signs a raw hash: sign the transaction, message or typed data"
        )

    def sign_authorization(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise UnsupportedOperation("EIP-7702 authorizations are not signed")

    def _sign(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if self._approvals is None:
            out = json.loads(self._signer.sign_json(self._slot, json.dumps(request)))
        else:
            asked, signatures = self._approvals
            out = json.loads(
                self._signer.sign_json_approved(self._slot, json.dumps(request), asked, signatures)
            )
        self.last_signature = out
        return out

    def _message(self, out: dict[str, Any]) -> SignedMessage:
        self.last_signature = out
        r, s, v, sig = _rsv(out["signature"])
        return SignedMessage(
            message_hash=HexBytes(out["digest"]), r=r, s=s, v=v, signature=sig
        )

    def sign_transaction(  # type: ignore[override]
        self, transaction_dict: Mapping[str, Any], blobs: Any = None
    ) -> SignedTransaction:
        """Signs a transaction dict as web3.py fills it (numbers as ints or
        hex strings, `from` present or not): EIP-1559 (type 2) or legacy
        (type 0, EIP-155). `from`, if given, must be this account."""
        if blobs:
            raise InvalidRequest("blob transactions are not signed")
        request: dict[str, Any] = {}
        for field, value in transaction_dict.items():
            if field in ("data", "input"):
                request[field] = _hex(value)
            elif field in ("to", "from"):
                request[field] = str(value)
            elif field == "accessList":
                request[field] = list(value)
            else:
                request[field] = _quantity(value)
        out = self._sign(request)
        r, s, v, _ = _rsv(out["signature"])
        y = v - 27
        legacy = out["request"]["type"] == "0x0"
        chain_id = int(out["request"]["chainId"], 16)
        return SignedTransaction(
            raw_transaction=HexBytes(out["rawTransaction"]),
            hash=HexBytes(out["transactionHash"]),
            r=r,
            s=s,
            v=chain_id * 2 + 35 + y if legacy else y,
        )

    def sign_message(self, signable_message: SignableMessage) -> SignedMessage:  # type: ignore[override]
        """Signs an EIP-191 message: version `0x45` (`encode_defunct`:
        `personal_sign`) or `0x01` (`encode_typed_data`: the domain
        separator and struct hash, the pre-hashed EIP-712 action)."""
        version = bytes(signable_message.version)
        if version == b"E":
            out = self._signer.sign_personal(self._slot, bytes(signable_message.body))
        elif version == b"\x01":
            out = self._signer.sign_prehashed(
                self._slot, bytes(signable_message.header), bytes(signable_message.body)
            )
        else:
            raise UnsupportedOperation(
                f"EIP-191 version {version.hex()} is not signed (0x45 and 0x01 are)"
            )
        return self._message(json.loads(out))

    def sign_typed_data(  # type: ignore[override]
        self,
        domain_data: dict[str, Any] | None = None,
        message_types: dict[str, Any] | None = None,
        message_data: dict[str, Any] | None = None,
        full_message: dict[str, Any] | None = None,
    ) -> SignedMessage:
        """Signs EIP-712 typed data, whole (`full_message`) or in parts: the
        identity registry's `AgentWalletSet` in its domain, a `TaskReceipt`,
        and an EIP-3009 `TransferWithAuthorization` or
        `ReceiveWithAuthorization` in a token's domain (an x402 payment) are
        typed actions under the slot's rules; other typed data is the
        pre-hashed (blind) action."""
        if full_message is None:
            if domain_data is None or message_types is None or message_data is None:
                raise InvalidRequest("give full_message, or domain_data, message_types and message_data")
            full_message = _full_message(domain_data, message_types, message_data)
        return self._message(self._sign(_jsonable(full_message)))


_DOMAIN_FIELDS = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
]


def _full_message(
    domain: dict[str, Any], types: dict[str, Any], message: dict[str, Any]
) -> dict[str, Any]:
    """The `eth_signTypedData_v4` form of typed data given in parts, as
    eth_account's `encode_typed_data` reads them: the domain's type from its
    fields, the primary type the one no other type refers to."""
    types = {k: v for k, v in types.items() if k != "EIP712Domain"}
    referenced = {f["type"].rstrip("[]0123456789") for fields in types.values() for f in fields}
    primary = [t for t in types if t not in referenced]
    if len(primary) != 1:
        raise InvalidRequest(f"typed data has {len(primary)} primary types, not one")
    domain_type = [{"name": n, "type": t} for n, t in _DOMAIN_FIELDS if n in domain]
    return {
        "types": {"EIP712Domain": domain_type, **types},
        "primaryType": primary[0],
        "domain": domain,
        "message": message,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value > _JSON_SAFE:
        return str(value)
    return value
