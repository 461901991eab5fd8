"""TEE trust on the ERC-8004 v2 registries (docs/onchain.md), from Python.

The agent's side: `attested_bundle` (its TEE signer's attestation bound to
the agent on its registry and chain, the bytes whose keccak256 is the
validation request's `requestHash`) and `registration_file` (the ERC-8004
registration file trusting `tee-attestation`). The validator's side:
`validate` (every check of the Rust validator, under the pinned policy the
`Signer` was made with). The transactions (`register`, `setAgentWallet`,
`validationRequest`, `validationResponse`) go through `TeeAccount` like any
other; `TAG` and `METADATA_KEY` are what they carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ._native import Signer
from ._native import registration_file as _registration_file
from ._native import task_receipt as _task_receipt

#: The Validation Registry tag of a TEE attestation verdict.
TAG = "tee-attestation"
#: The identity registry metadata key naming the agent's TEE signer (20 bytes).
METADATA_KEY = "tee-signer"


@dataclass(frozen=True)
class AttestationBundle:
    """An attestation bundle: `content` is what to publish (as is: its
    keccak256 is `request_hash`), `data_uri` holds it on-chain whole."""

    content: bytes
    request_hash: bytes
    data_uri: str
    signer: str
    challenge: bytes


def attested_bundle(
    signer: Signer, slot: int, chain_id: int, identity_registry: str, agent_id: int
) -> AttestationBundle:
    """`slot`'s attestation bound to agent `agent_id` of `identity_registry`
    on `chain_id`, made now."""
    out = json.loads(signer.agent_bundle(slot, chain_id, identity_registry, str(agent_id)))
    return AttestationBundle(
        content=out["bundle"].encode(),
        request_hash=bytes.fromhex(out["requestHash"][2:]),
        data_uri=out["dataUri"],
        signer=out["signer"],
        challenge=bytes.fromhex(out["challenge"][2:]),
    )


def registration_file(
    bundle: AttestationBundle | bytes,
    name: str,
    description: str = "",
    services: Iterable[Mapping[str, str]] = (),
    image: str | None = None,
    bundle_uri: str | None = None,
) -> dict[str, Any]:
    """The ERC-8004 registration file of the agent `bundle` names, trusting
    `tee-attestation`, its `tee` section naming the signer and the bundle
    (at `bundle_uri`; by default a data: URI holding it)."""
    content = bundle.content if isinstance(bundle, AttestationBundle) else bundle
    file: dict[str, Any] = json.loads(
        _registration_file(content, name, description, json.dumps(list(services)), image, bundle_uri)
    )
    return file


def validate(
    signer: Signer,
    *,
    chain_id: int,
    identity_registry: str,
    request_hash: bytes,
    agent_id: int,
    agent_wallet: str | None,
    tee_signer: str | None,
    bundle: bytes,
    max_age: int = 30 * 24 * 3600,
    now: int | None = None,
) -> dict[str, Any]:
    """The validator's checks of `bundle` for the request (as the chain
    holds it) under `signer`'s pinned verifier policy: the report, with
    `response` (100 or 0), `reasons`, `report` (the bytes to publish, as
    text) and `responseHash`."""
    request = {
        "chainId": chain_id,
        "identityRegistry": identity_registry,
        "requestHash": "0x" + request_hash.hex(),
        "agentId": str(agent_id),
        "agentWallet": agent_wallet,
        "teeSigner": tee_signer,
    }
    out: dict[str, Any] = json.loads(
        signer.validate_bundle(json.dumps(request), bundle, max_age, now)
    )
    return out


def reputation(
    signer: Signer,
    *,
    rpc: str,
    reputation_registry: str,
    validation_registry: str,
    agent_id: int,
    validators: list[str],
    allow_http: bool = False,
    allow_private_hosts: bool = False,
    from_block: int = 0,
    now: int | None = None,
) -> dict[str, Any]:
    """An agent's feedback on the Reputation Registry at `rpc` (what
    `tee-signer reputation` prints): `all` and `teeVerified` summaries
    (`count`, `average`), `validated` (the `validators`' TEE verdicts pass),
    `teeSigners`, and each feedback with `teeVerified` and, where it is
    not, its `reason`. A feedback is TEE-verified when its file (fetched
    under the rules given, hashed against `feedbackHash`) carries a
    `teeReceipt` (`typedData`: the agent's `TaskReceipt`; `signature`: its
    signature with the attestation) signed by the agent's TEE signer and
    verified under `signer`'s pinned verifier policy."""
    query = {
        "rpc": rpc,
        "reputationRegistry": reputation_registry,
        "validationRegistry": validation_registry,
        "agentId": str(agent_id),
        "validators": list(validators),
        "allowHttp": allow_http,
        "allowPrivateHosts": allow_private_hosts,
        "fromBlock": from_block,
    }
    out: dict[str, Any] = json.loads(signer.reputation(json.dumps(query), now))
    return out


def task_receipt(chain_id: int, identity_registry: str, agent_id: int, task: bytes,
                 result: bytes, completed_at: int) -> dict[str, Any]:
    """The agent's `TaskReceipt` for `task` and its `result` (their
    keccak-256 hashes), as eth_signTypedData_v4 typed data, written by the
    signer's own code: what `TeeAccount.sign_typed_data` signs as the typed
    kind `TaskReceipt`."""
    from eth_utils import keccak

    out: dict[str, Any] = json.loads(_task_receipt(
        chain_id, identity_registry, str(agent_id), keccak(task), keccak(result), completed_at
    ))
    return out
