"""`PhalaDstackTEE`: chaoschain-sdk's `TEEProvider` (`phala-dstack`) over
the signer.

chaoschain-sdk 0.4.1 names this provider (`get_phala_dstack_tee`) but ships
none. This one keeps the key in the signer: `generate_key` hands out the
public key and a handle (`private_key` is `"tee-signer:slot/N@ENDPOINT"`,
never a key), with an attestation bound to the key and a fresh challenge;
`sign` signs EIP-191 (`personal_sign`, a blind kind the slot's policy must
name) with an attestation bound to that signature's digest;
`verify_attestation` runs the full verifier under the validator's pinned
policy and keeps its report (`last_report`). When chaoschain-sdk is
installed, its own `TEEKeypair` and `TEESignature` dataclasses are used.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from ._native import PROVIDER_NAME, Signer
from .errors import InvalidRequest

try:  # the SDK's own dataclasses, when it is installed
    from chaoschain_sdk.providers.tee.base import TEEKeypair, TEESignature
except ImportError as _e:  # pragma: no cover - exercised without chaoschain-sdk
    import importlib.util
    import warnings

    #: Why chaoschain-sdk's dataclasses are not used (None: they are, or it
    #: is not installed).
    CHAOSCHAIN_IMPORT_ERROR: str | None = None
    if importlib.util.find_spec("chaoschain_sdk") is not None:
        # Installed, but it does not import: say why rather than hand the
        # SDK dataclasses its isinstance checks will not accept.
        _flask = (
            " (chaoschain-sdk 0.4.1 imports flask without declaring it: pip install flask)"
            if "flask" in str(_e)
            else ""
        )
        CHAOSCHAIN_IMPORT_ERROR = (
            f"chaoschain-sdk is installed but chaoschain_sdk.providers.tee.base does not import: "
            f"{type(_e).__name__}: {_e}{_flask}. PhalaDstackTEE returns tee_signer's own "
            "TEEKeypair and TEESignature, which chaoschain-sdk's checks do not take for its own."
        )
        warnings.warn(CHAOSCHAIN_IMPORT_ERROR, RuntimeWarning, stacklevel=2)

    @dataclass
    class TEEKeypair:  # type: ignore[no-redef]
        """chaoschain-sdk's `TEEKeypair`, field for field."""

        public_key: str
        private_key: str
        attestation: dict[str, Any]
        provider: str

    @dataclass
    class TEESignature:  # type: ignore[no-redef]
        """chaoschain-sdk's `TEESignature`, field for field."""

        signature: bytes
        attestation: dict[str, Any]
        verified: bool
        provider: str

else:
    CHAOSCHAIN_IMPORT_ERROR = None


#: Where the signer listens unless told otherwise.
DEFAULT_ENDPOINT = "unix:/run/tee-signer.sock"
_HANDLE = "tee-signer:slot/"


class PhalaDstackTEE:
    """The `phala-dstack` TEE provider.

    `endpoint`: the signer (default `$TEE_SIGNER_ENDPOINT`, else
    `unix:/run/tee-signer.sock`). `verifier_policy`: the validator's pinned
    policy (a dict, JSON text, or a path; default `$TEE_SIGNER_VERIFIER_POLICY`);
    without one, `verify_attestation` is always False. `admin_key`: only for
    deriving a key into a slot (`generate_key(path=..., policy=...)`). DCAP
    collateral: stored (`collateral`, dcap-qvl JSON) or from a PCCS (`pccs`,
    its URL), kept per platform in `collateral_cache` (a directory) until its
    nextUpdate.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        slot: int = 0,
        verifier_policy: dict[str, Any] | str | None = None,
        admin_key: bytes | None = None,
        collateral: str | None = None,
        pccs: str | None = None,
        collateral_cache: str | None = None,
    ) -> None:
        self.endpoint = endpoint or os.environ.get("TEE_SIGNER_ENDPOINT", DEFAULT_ENDPOINT)
        self.slot = slot
        policy = verifier_policy or os.environ.get("TEE_SIGNER_VERIFIER_POLICY")
        if isinstance(policy, str) and not policy.lstrip().startswith("{"):
            with open(policy, encoding="utf-8") as f:
                policy = f.read()
        if isinstance(policy, dict):
            policy = json.dumps(policy)
        self.pinned = policy is not None
        self._signer = Signer(
            self.endpoint, policy, admin_key, collateral, pccs, collateral_cache
        )
        #: The verifier's report of the last `verify_attestation`.
        self.last_report: dict[str, Any] | None = None

    @property
    def provider_name(self) -> str:
        return PROVIDER_NAME

    @property
    def is_available(self) -> bool:
        return self._signer.is_available()

    def handle(self, slot: int) -> str:
        """The handle `TEEKeypair.private_key` carries for `slot`."""
        return f"{_HANDLE}{slot}@{self.endpoint}"

    def _slot_of(self, keypair: Any) -> int:
        handle = str(keypair.private_key)
        prefix, _, endpoint = handle.partition("@")
        if not prefix.startswith(_HANDLE) or endpoint != self.endpoint:
            raise InvalidRequest(f"{handle!r} is not a key of the signer at {self.endpoint}")
        return int(prefix[len(_HANDLE):])

    def generate_key(self, **kwargs: Any) -> TEEKeypair:
        """The key in `slot` (default: this provider's), attested with a
        fresh challenge. With `path` and `policy` (the slot policy's TOML),
        the admin first derives dstack's key for `path` into the slot (needs
        `admin_key`)."""
        slot = int(kwargs.get("slot", self.slot))
        if "path" in kwargs:
            if "policy" not in kwargs:
                raise InvalidRequest("deriving a key needs the slot's policy (policy=TOML)")
            key = json.loads(self._signer.generate_key(slot, kwargs["path"], kwargs["policy"]))
        else:
            key = json.loads(self._signer.key(slot))
        attestation = dict(key["attestation"])
        attestation["address"] = key["address"]
        return TEEKeypair(
            public_key=key["publicKey"],
            private_key=self.handle(slot),
            attestation=attestation,
            provider=PROVIDER_NAME,
        )

    def sign(self, message: bytes, keypair: Any) -> TEESignature:
        """Signs `message` (EIP-191 `personal_sign`) with the keypair's
        slot; the attestation is the whole signed record (digest, signature,
        address, a quote bound to the digest) a validator verifies."""
        out = json.loads(self._signer.sign_personal(self._slot_of(keypair), bytes(message)))
        return TEESignature(
            signature=bytes.fromhex(out["signature"][2:]),
            attestation=out,
            verified=False,
            provider=PROVIDER_NAME,
        )

    def verify_attestation(self, signature: Any) -> bool:
        """The full verifier on `signature` under the pinned policy: the
        binding, the signature, the boot-time identity, measurements, DCAP
        and the KMS chain. The report is kept in `last_report`."""
        report = json.loads(self._signer.verify(json.dumps(signature.attestation)))
        self.last_report = report
        return bool(report["verified"])

    def tcb(self, now: int | None = None) -> dict[str, Any]:
        """The TCB of the signer's platform: status, Intel advisory IDs,
        FMSPC, TCB evaluation numbers, whether the policy accepts it, and how
        long the collateral lasts (`secondsLeft`; a TCB recovery or an expiry
        turns every verdict to 0): what `tee-signer tcb -c` prints."""
        return dict(json.loads(self._signer.tcb(now)))

    def get_attestation_report(self) -> dict[str, Any]:
        """An attestation of this provider's slot for a fresh challenge:
        quote, event log, key chain and info, with the challenge."""
        challenge = secrets.token_bytes(32)
        report = json.loads(self._signer.attestation_report(self.slot, challenge))
        report["challenge"] = "0x" + challenge.hex()
        return report

    def register_agent(
        self,
        w3: Any,
        keypair: Any,
        *,
        identity_registry: str,
        name: str,
        description: str = "",
        services: Any = (),
        tee_attestation: bool = True,
        validation_registry: str | None = None,
        validator: str | None = None,
        bundle_uri: str | None = None,
        timeout: int = 120,
    ) -> dict[str, Any]:
        """Registers the agent whose key is `keypair` on the ERC-8004 v2
        identity registry through `w3`, every transaction signed by that key
        in the signer (its slot's policy must name `register(string)`,
        `setAgentURI` and, with `tee_attestation`, `validationRequest`).

        With `tee_attestation`: the agent's attestation bundle (bound to its
        agent id on this registry and chain), a registration file whose
        `supportedTrust` is `["tee-attestation"]` naming the signer and the
        bundle, and a `validationRequest` to `validator` carrying the bundle
        whole (a `data:` URI) with `requestHash = keccak256(bundle)`.
        Returns `agentId`, `registrationFile`, `bundle` (an
        `onchain.AttestationBundle`, or None) and `transactions`: each one's
        signature record with the attestation bound to its digest."""
        from web3.logs import DISCARD

        from . import onchain
        from .account import TeeAccount

        account = TeeAccount(self._signer, self._slot_of(keypair))
        transactions: list[dict[str, Any]] = []

        def send(call: Any) -> Any:
            tx = call.build_transaction({
                "from": account.address,
                "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            })
            signed = account.sign_transaction(tx)
            receipt = w3.eth.wait_for_transaction_receipt(
                w3.eth.send_raw_transaction(signed.raw_transaction), timeout=timeout
            )
            if receipt["status"] != 1:
                raise InvalidRequest(f"transaction {signed.hash.hex()} reverted")
            transactions.append(dict(account.last_signature or {}))
            return receipt

        identity = w3.eth.contract(address=identity_registry, abi=_IDENTITY_ABI)
        registered = identity.events.Registered().process_receipt(
            send(identity.functions.register("")), errors=DISCARD
        )
        agent_id = int(registered[0]["args"]["agentId"])
        bundle = None
        if tee_attestation:
            if validation_registry is None or validator is None:
                raise InvalidRequest("tee_attestation needs validation_registry and validator")
            bundle = onchain.attested_bundle(
                self._signer, account.slot, w3.eth.chain_id, identity_registry, agent_id
            )
            registration = onchain.registration_file(
                bundle, name, description, services, bundle_uri=bundle_uri
            )
        else:
            registration = {"type": "https://eips.ethereum.org/EIPS/eip-8004#registration-v1",
                            "name": name, "description": description, "services": list(services)}
        uri = "data:application/json;base64," + base64.b64encode(
            json.dumps(registration).encode()).decode()
        send(identity.functions.setAgentURI(agent_id, uri))
        if bundle is not None:
            validation = w3.eth.contract(address=validation_registry, abi=_VALIDATION_ABI)
            send(validation.functions.validationRequest(
                validator, agent_id, bundle.data_uri, bundle.request_hash
            ))
        return {
            "agentId": agent_id,
            "registrationFile": registration,
            "bundle": bundle,
            "transactions": transactions,
        }


def _fn(name: str, inputs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "function", "name": name, "stateMutability": "nonpayable", "outputs": [],
            "inputs": [{"name": n, "type": t} for n, t in inputs]}


#: The ERC-8004 v2.0.0 functions `register_agent` calls (their selectors
#: are what the signer decodes and its policy names).
_IDENTITY_ABI = [
    _fn("register", [("agentURI", "string")]),
    _fn("setAgentURI", [("agentId", "uint256"), ("newURI", "string")]),
    {"type": "event", "name": "Registered", "anonymous": False, "inputs": [
        {"name": "agentId", "type": "uint256", "indexed": True},
        {"name": "agentURI", "type": "string", "indexed": False},
        {"name": "owner", "type": "address", "indexed": True},
    ]},
]
_VALIDATION_ABI = [
    _fn("validationRequest", [("validatorAddress", "address"), ("agentId", "uint256"),
                              ("requestURI", "string"), ("requestHash", "bytes32")]),
]
