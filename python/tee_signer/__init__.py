"""The ERC-8004 TEE signer from Python.

- `TeeAccount`: an eth_account `LocalAccount` whose key stays in the
  signer (web3.py, coinbase-agentkit, the ERC-8004 SDKs accept it);
- `use_with`: eth_account routes a `TeeAccount.key` handle to its account,
  for SDKs that sign with `w3.eth.account.sign_transaction(tx, account.key)`;
- `Signer`: the native client (python/src/lib.rs, over tee-client and tee-verify,
  JSON actions and verifier);
- `PhalaDstackTEE`: chaoschain-sdk's `phala-dstack` TEE provider;
- `pin_policy`: a validator's policy pinned to a deployment;
- `onchain`: TEE trust on the ERC-8004 registries (attestation bundle,
  registration file, the validator's checks);
- `errors`: the exceptions, with the device's typed reason.
"""

from ._native import PROVIDER_NAME, Signer, pin_policy, simulated_deployment
from .account import TeeAccount
from .route import TeeKey, use_with
from .tee import PhalaDstackTEE
from . import onchain
from .errors import (
    ApprovalRequired,
    AttestationError,
    InvalidRequest,
    Refused,
    TeeSignerError,
    Unavailable,
    UnsupportedOperation,
)

__all__ = [
    "PROVIDER_NAME",
    "ApprovalRequired",
    "AttestationError",
    "InvalidRequest",
    "PhalaDstackTEE",
    "Refused",
    "Signer",
    "TeeAccount",
    "TeeKey",
    "TeeSignerError",
    "Unavailable",
    "UnsupportedOperation",
    "onchain",
    "pin_policy",
    "simulated_deployment",
    "use_with",
]
