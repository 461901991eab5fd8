"""The signer's errors, as Python exceptions.

The native module raises these, carrying the device's typed reason where
it gave one: catch `Refused` and read `reason` (`"KindNotAllowed"`,
`"Replay { high_water: 7 }"`, ...) rather than parsing messages.
"""

from __future__ import annotations


class TeeSignerError(Exception):
    """Anything the signer or its client refused or could not do."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The device's typed reason, when it gave one.
        self.reason = reason


class Refused(TeeSignerError):
    """The device refused: its policy (`reason` is the violation, e.g.
    `"KindNotAllowed"`; `"SpendCapExceeded"` for a spend cap or a token's
    cap, whose message says what the window has left and when it ends;
    `"TokenNotAllowed"`, `"TokenAmountTooHigh"`, `"RecipientNotAllowed"`,
    `"UnlimitedApproval"`, `"PayerIsNotSigner"` for the token rules;
    `"ApprovalRequired"` is raised as `ApprovalRequired`, and
    `"ApprovalExpired"`, `"ApprovalTooLong"` refuse approvals), a used
    sequence (`"Replay { .. }"`), a malformed action."""


class ApprovalRequired(Refused):
    """The slot's policy holds the action until enough of its approvers
    approve it. `request` is what they sign: `request["typedData"]` is
    EIP-712 typed data any wallet signs (eth-account's
    `Account.sign_typed_data(key, full_message=...)`), and
    `request["approvalRequest"]` says who may approve, how many must, the
    sequence and the expiry. Sign again with their signatures:
    `account.approved(error.request, signatures).sign_transaction(tx)`."""

    def __init__(self, message: str, reason: str | None = None, request: str | None = None) -> None:
        super().__init__(message, reason)
        import json

        #: The approval request and its typed data.
        self.request: dict = json.loads(request) if request else {}


class InvalidRequest(TeeSignerError):
    """The request is not an action the signer takes (the field is named)."""


class Unavailable(TeeSignerError):
    """The signer could not be reached or did not answer in time."""


class AttestationError(TeeSignerError):
    """Evidence that does not parse or does not verify."""


class UnsupportedOperation(TeeSignerError):
    """What a key-holding account can do and this one never does: hand out
    its key, encrypt it, sign a raw hash."""
