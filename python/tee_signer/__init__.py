"""The ERC-8004 TEE signer from Python.

- `TeeAccount`: an eth_account `LocalAccount` whose key stays in the
  signer (web3.py, coinbase-agentkit, the ERC-8004 SDKs accept it);
- `Signer`: the native client (python/src/lib.rs, over tee-std's client,
  JSON actions and verifier);
- `errors`: the exceptions, with the device's typed reason.
"""

from ._native import PROVIDER_NAME, Signer
from .account import TeeAccount
from .errors import (
    AttestationError,
    InvalidRequest,
    Refused,
    TeeSignerError,
    Unavailable,
    UnsupportedOperation,
)

__all__ = [
    "PROVIDER_NAME",
    "AttestationError",
    "InvalidRequest",
    "Refused",
    "Signer",
    "TeeAccount",
    "TeeSignerError",
    "Unavailable",
    "UnsupportedOperation",
]
